//! Where log imports stopped, per source and file (`sources::logs`). Not usage data: writing a
//! cursor moves no generation.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::store::Cursor;

pub fn get(c: &Connection, source: &str) -> Result<HashMap<String, Cursor>> {
    let mut stmt = c.prepare_cached(
        "SELECT path, read_to, line, head, state FROM source_cursors WHERE source = ?1",
    )?;
    let rows = stmt.query_map([source], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Cursor {
                offset: r.get::<_, i64>(1)? as u64,
                line: r.get::<_, i64>(2)? as u64,
                head: r.get(3)?,
                state: r.get(4)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn put(c: &mut Connection, source: &str, cursors: &[(String, Cursor)]) -> Result<()> {
    let tx = c.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO source_cursors (source, path, read_to, line, head, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (source, path) DO UPDATE SET read_to = excluded.read_to,
               line = excluded.line, head = excluded.head, state = excluded.state",
        )?;
        for (path, k) in cursors {
            stmt.execute(params![
                source,
                path,
                k.offset as i64,
                k.line as i64,
                k.head,
                k.state
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}
