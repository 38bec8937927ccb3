//! Reading a source: telling JSONL, JSON arrays and CSV apart, and turning each line, item or row
//! into a record or the reason it was rejected, in bounded memory. A line that is too long or not
//! UTF-8 is one rejected record, named by its line; the rest of the file is read on.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};

use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::record::{parse_record_noting, MAX_RECORD_BYTES};
use crate::error::{Error, Result};
use crate::input::shown;
use crate::store::Execution;

/// Records handed to the sink at a time.
pub(super) const BATCH: usize = 10_000;
/// Columns a CSV row may have.
const MAX_CSV_FIELDS: usize = 1024;
/// Distinct unknown field names listed per source; further names are counted together.
const MAX_LISTED_UNKNOWN: usize = 50;
/// Where unknown fields past `MAX_LISTED_UNKNOWN` names are counted.
pub const OTHER_UNKNOWN_FIELDS: &str = "(other fields)";
/// Characters of an unknown field's name shown in the report.
const MAX_UNKNOWN_NAME_CHARS: usize = 64;

/// A parsed source: each record with its line number, or the reason it was rejected.
pub type Parsed = Vec<(u64, std::result::Result<Execution, String>)>;

/// The format of a source, told from its first non-blank character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    JsonArray,
    Csv,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::JsonArray => "json",
            Format::Csv => "csv",
        }
    }

    pub fn detect(head: &[u8]) -> Format {
        match head
            .iter()
            .find(|b| !b.is_ascii_whitespace() && **b != 0xEF && **b != 0xBB && **b != 0xBF)
        {
            Some(b'{') => Format::Jsonl,
            Some(b'[') => Format::JsonArray,
            _ => Format::Csv,
        }
    }
}

/// How many accepted records carried each unknown field (kept in their `metadata`).
#[derive(Debug, Default)]
pub struct UnknownFields(pub BTreeMap<String, u64>);

impl UnknownFields {
    pub fn note(&mut self, name: &str) {
        if let Some(n) = self.0.get_mut(name) {
            *n += 1;
            return;
        }
        let key = if self.0.len() >= MAX_LISTED_UNKNOWN {
            OTHER_UNKNOWN_FIELDS.to_owned()
        } else {
            crate::input::cut_to(name, MAX_UNKNOWN_NAME_CHARS)
        };
        *self.0.entry(key).or_default() += 1;
    }
}

/// What reading a whole source found besides its records.
#[derive(Debug)]
pub struct SourceSummary {
    pub format: Format,
    pub unknown_fields: UnknownFields,
}

/// The record in one JSON value (a JSON array's item, a tool call's `records[i]`). A string
/// that starts with `{` is read as the JSON text of a record (an NDJSON line).
pub fn record_of_value(
    v: &Value,
    unknown: &mut UnknownFields,
) -> std::result::Result<Execution, String> {
    match v {
        Value::Object(o) => parse_record_noting(o, &mut |k| unknown.note(k)),
        Value::String(s) if s.trim_start().starts_with('{') => {
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(o)) => parse_record_noting(&o, &mut |k| unknown.note(k)),
                Ok(other) => Err(format!("not a JSON object: {}", shown(&other))),
                Err(e) => Err(format!("invalid JSON ({e}): {}", shown(v))),
            }
        }
        other => Err(format!("not a JSON object: {}", shown(other))),
    }
}

/// Fills batches of parsed records and hands them to the sink.
struct Batcher<F> {
    batch: Parsed,
    sink: F,
    unknown: UnknownFields,
}

impl<F: FnMut(Parsed) -> Result<()>> Batcher<F> {
    fn push(&mut self, line: u64, r: std::result::Result<Execution, String>) -> Result<()> {
        self.batch.push((line, r));
        if self.batch.len() >= BATCH {
            (self.sink)(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }

    fn object(&mut self, line: u64, o: &Map<String, Value>) -> Result<()> {
        let unknown = &mut self.unknown;
        let r = parse_record_noting(o, &mut |k| unknown.note(k));
        self.push(line, r)
    }

    fn value(&mut self, line: u64, v: Value) -> Result<()> {
        match v {
            Value::Object(o) => self.object(line, &o),
            other => self.push(line, Err(format!("not a JSON object: {}", shown(&other)))),
        }
    }
}

/// Read a whole source and parse every record in it, calling `sink` with batches of parsed
/// records as they fill (so huge files stream). Bad content is reported record by record; only
/// a failing read (an I/O error) or a failing sink is an `Err`.
pub fn parse_source(
    reader: impl Read,
    sink: impl FnMut(Parsed) -> Result<()>,
) -> Result<SourceSummary> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let head = reader.fill_buf().map_err(read_error)?;
    let format = Format::detect(head);
    let mut out = Batcher {
        batch: Vec::with_capacity(BATCH),
        sink,
        unknown: UnknownFields::default(),
    };
    match format {
        Format::Jsonl => read_jsonl(&mut reader, &mut out)?,
        Format::JsonArray => read_json_array(&mut reader, &mut out)?,
        Format::Csv => read_csv(&mut reader, &mut out)?,
    }
    if !out.batch.is_empty() {
        (out.sink)(out.batch)?;
    }
    Ok(SourceSummary {
        format,
        unknown_fields: out.unknown,
    })
}

fn read_error(e: io::Error) -> Error {
    Error::Internal(format!("read error: {e}"))
}

/// The reason for a line or row of `size` bytes, over the cap.
fn too_long(what: &str, size: u64) -> String {
    format!(
        "record: the {what} is {size} bytes long; allowed are at most {MAX_RECORD_BYTES} bytes (64 KiB) per record; it was skipped"
    )
}

/// The reason for bytes that are not UTF-8.
fn not_utf8(what: &str, bytes: &[u8], e: std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    format!(
        "the {what} is not UTF-8 text: byte 0x{:02X} at byte {} of it is invalid; save the file as UTF-8",
        bytes.get(at).copied().unwrap_or_default(),
        at + 1
    )
}

/// One line read by [`next_line`].
enum Line {
    End,
    /// The line, without its newline, is in the buffer.
    Text,
    /// The line had this many bytes (its newline not counted); none of it was kept.
    TooLong(u64),
}

/// Read the next line into `buf`, keeping at most `max` bytes of it: the rest of a longer line is
/// skipped without being held, so a huge line costs no memory.
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    buf.clear();
    let n = r.by_ref().take(max as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Line::Text);
    }
    if buf.len() <= max {
        return Ok(Line::Text);
    }
    let mut size = buf.len() as u64;
    buf.clear();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            break;
        }
        match avail.iter().position(|&b| b == b'\n') {
            Some(i) => {
                size += i as u64;
                r.consume(i + 1);
                break;
            }
            None => {
                let l = avail.len();
                size += l as u64;
                r.consume(l);
            }
        }
    }
    Ok(Line::TooLong(size))
}

fn read_jsonl<F: FnMut(Parsed) -> Result<()>>(
    reader: &mut impl BufRead,
    out: &mut Batcher<F>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0u64;
    loop {
        let line = next_line(reader, &mut buf, MAX_RECORD_BYTES).map_err(read_error)?;
        n += 1;
        match line {
            Line::End => return Ok(()),
            Line::TooLong(size) => out.push(n, Err(too_long("line", size)))?,
            Line::Text => match std::str::from_utf8(&buf) {
                Err(e) => out.push(n, Err(not_utf8("line", &buf, e)))?,
                Ok(t) => {
                    let t = t.trim().trim_start_matches('\u{feff}');
                    if t.is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Value>(t) {
                        Ok(Value::Object(o)) => out.object(n, &o)?,
                        Ok(other) => {
                            out.push(n, Err(format!("not a JSON object: {}", shown(&other))))?
                        }
                        Err(e) => out.push(n, Err(format!("invalid JSON: {e}")))?,
                    }
                }
            },
        }
    }
}

/// A reader that fails once more than `MAX_RECORD_BYTES` were read since `used` was last reset.
struct Capped<'a, R> {
    inner: R,
    used: &'a Cell<usize>,
    over: &'a Cell<bool>,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = (MAX_RECORD_BYTES + 1).saturating_sub(self.used.get());
        if room == 0 {
            self.over.set(true);
            return Err(io::Error::other("record over the size cap"));
        }
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.used.set(self.used.get() + n);
        Ok(n)
    }
}

/// Hands each item of a JSON array to the batcher as it is read.
struct Items<'a, F> {
    used: &'a Cell<usize>,
    index: &'a mut u64,
    out: &'a mut Batcher<F>,
    failed: &'a mut Option<Error>,
}

impl<'de, F: FnMut(Parsed) -> Result<()>> Visitor<'de> for Items<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        loop {
            self.used.set(0);
            let Some(v) = seq.next_element::<Value>()? else {
                return Ok(());
            };
            *self.index += 1;
            if let Err(e) = self.out.value(*self.index, v) {
                *self.failed = Some(e);
                return Err(serde::de::Error::custom("the import stopped"));
            }
        }
    }
}

/// A JSON array, read item by item: each item may take at most `MAX_RECORD_BYTES`. JSON cannot
/// be read on past a syntax error or an oversized item, so the first one ends the file, reported
/// as one rejected record that says so; the items before it are kept.
fn read_json_array<F: FnMut(Parsed) -> Result<()>>(
    reader: &mut impl BufRead,
    out: &mut Batcher<F>,
) -> Result<()> {
    if reader
        .fill_buf()
        .map_err(read_error)?
        .starts_with(b"\xEF\xBB\xBF")
    {
        reader.consume(3);
    }
    let used = Cell::new(0);
    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_reader(Capped {
        inner: reader,
        used: &used,
        over: &over,
    });
    let mut index = 0u64;
    let mut failed = None;
    let res = (&mut de).deserialize_seq(Items {
        used: &used,
        index: &mut index,
        out,
        failed: &mut failed,
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let item = index + 1;
    let res = res.and_then(|()| {
        used.set(0);
        de.end()
    });
    match res {
        Ok(()) => Ok(()),
        Err(_) if over.get() => out.push(
            item,
            Err(format!(
                "record: item {item} of the array is over {MAX_RECORD_BYTES} bytes (64 KiB), the most one record may take; the rest of the file was not read (JSONL skips only the long line)"
            )),
        ),
        Err(e) if e.is_io() => Err(read_error(io::Error::other(e.to_string()))),
        Err(e) => out.push(
            item,
            Err(format!(
                "invalid JSON in item {item} of the array ({e}); the rest of the file was not read (JSONL skips only the bad line)"
            )),
        ),
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// CSV with a header row, read row by row with `csv_core` into a fixed buffer: a row over
/// `MAX_RECORD_BYTES` is skipped without being held.
fn read_csv<F: FnMut(Parsed) -> Result<()>>(
    reader: &mut impl BufRead,
    out: &mut Batcher<F>,
) -> Result<()> {
    let mut core = csv_core::Reader::new();
    let mut fields = vec![0u8; MAX_RECORD_BYTES];
    let mut ends = vec![0usize; MAX_CSV_FIELDS];
    let mut header: Option<Vec<String>> = None;
    // Lines are counted here (`csv_core` counts a CRLF's newline with the next row): the blank
    // lines and line ends before a row, then the newlines inside it.
    let mut next = 1u64;
    loop {
        loop {
            let input = reader.fill_buf().map_err(read_error)?;
            let skip = input
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            next += newlines(&input[..skip]);
            let more = skip > 0 && skip == input.len();
            reader.consume(skip);
            if !more {
                break;
            }
        }
        let line = next;
        let (mut outlen, mut endlen, mut size) = (0usize, 0usize, 0u64);
        let (mut long, mut wide) = (false, false);
        loop {
            let input = reader.fill_buf().map_err(read_error)?;
            let (res, nin, nout, nend) =
                core.read_record(input, &mut fields[outlen..], &mut ends[endlen..]);
            next += newlines(&input[..nin]);
            reader.consume(nin);
            size += nin as u64;
            outlen += nout;
            endlen += nend;
            match res {
                csv_core::ReadRecordResult::InputEmpty => {}
                // Over a cap: keep reading the row to its end, keeping nothing.
                csv_core::ReadRecordResult::OutputFull => {
                    long = true;
                    outlen = 0;
                    endlen = 0;
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    wide = true;
                    outlen = 0;
                    endlen = 0;
                }
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => return Ok(()),
            }
        }
        let problem = if long {
            Some(too_long("row", size))
        } else if wide {
            Some(format!(
                "record: the row has more than {MAX_CSV_FIELDS} columns; allowed are at most {MAX_CSV_FIELDS}"
            ))
        } else {
            None
        };
        let row: Vec<&[u8]> = if problem.is_some() {
            Vec::new()
        } else {
            let mut start = 0;
            ends[..endlen]
                .iter()
                .map(|&end| {
                    let f = &fields[start..end];
                    start = end;
                    f
                })
                .collect()
        };
        let Some(names) = &header else {
            let names: std::result::Result<Vec<String>, String> = match problem {
                Some(p) => Err(p),
                None => row
                    .iter()
                    .map(|f| {
                        std::str::from_utf8(f)
                            .map(|s| s.trim().trim_start_matches('\u{feff}').to_owned())
                            .map_err(|e| not_utf8("header row", f, e))
                    })
                    .collect(),
            };
            match names {
                Ok(names) => header = Some(names),
                Err(reason) => {
                    // Without its header no row can be read: the file is one rejected record.
                    return out.push(
                        line,
                        Err(format!(
                            "{reason}; a CSV file starts with a header row of field names, so the rest of the file was not read"
                        )),
                    );
                }
            }
            continue;
        };
        if let Some(p) = problem {
            out.push(line, Err(p))?;
            continue;
        }
        if row.len() != names.len() {
            out.push(
                line,
                Err(format!(
                    "invalid CSV row: {} fields, but the header row has {}",
                    row.len(),
                    names.len()
                )),
            )?;
            continue;
        }
        let mut obj = Map::new();
        let mut bad = None;
        for (name, f) in names.iter().zip(&row) {
            match std::str::from_utf8(f) {
                Ok(s) => {
                    let s = s.trim();
                    if !s.is_empty() {
                        obj.insert(name.clone(), Value::String(s.to_owned()));
                    }
                }
                Err(e) => {
                    bad = Some(not_utf8(&format!("{name} column"), f, e));
                    break;
                }
            }
        }
        match bad {
            Some(reason) => out.push(line, Err(reason))?,
            None => out.object(line, &obj)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lazily `n` bytes of `x`, then a newline and `tail`: a huge line that is never in memory.
    fn huge_line(n: u64, tail: &'static [u8]) -> impl Read {
        io::repeat(b'x').take(n).chain(&b"\n"[..]).chain(tail)
    }

    #[test]
    fn a_huge_line_is_skipped_without_being_held() {
        let mut r = BufReader::new(huge_line(64 << 20, b"{}\n"));
        let mut buf = Vec::new();
        match next_line(&mut r, &mut buf, MAX_RECORD_BYTES).unwrap() {
            Line::TooLong(n) => assert_eq!(n, 64 << 20),
            _ => panic!("not too long"),
        }
        // Never more than the cap (and the vector's growth) was held.
        assert!(
            buf.capacity() <= 2 * (MAX_RECORD_BYTES + 1),
            "{}",
            buf.capacity()
        );
        assert!(matches!(
            next_line(&mut r, &mut buf, MAX_RECORD_BYTES).unwrap(),
            Line::Text
        ));
        assert_eq!(buf, b"{}");
        assert!(matches!(
            next_line(&mut r, &mut buf, MAX_RECORD_BYTES).unwrap(),
            Line::End
        ));
    }

    #[test]
    fn lines_at_the_cap_are_kept() {
        let line = vec![b'y'; MAX_RECORD_BYTES];
        for tail in [&b"\n"[..], &b""[..]] {
            let text = [&line[..], tail].concat();
            let mut r = BufReader::new(&text[..]);
            let mut buf = Vec::new();
            assert!(matches!(
                next_line(&mut r, &mut buf, MAX_RECORD_BYTES).unwrap(),
                Line::Text
            ));
            assert_eq!(buf.len(), MAX_RECORD_BYTES);
        }
        let over = vec![b'y'; MAX_RECORD_BYTES + 1];
        let mut r = BufReader::new(&over[..]);
        let mut buf = Vec::new();
        assert!(matches!(
            next_line(&mut r, &mut buf, MAX_RECORD_BYTES).unwrap(),
            Line::TooLong(n) if n == MAX_RECORD_BYTES as u64 + 1
        ));
    }

    /// Each record's line and id, or its reason.
    type Rows = Vec<(u64, std::result::Result<String, String>)>;

    fn parse(text: &[u8]) -> (Format, Rows) {
        let mut all = Vec::new();
        let s = parse_source(text, |b| {
            all.extend(b.into_iter().map(|(l, r)| (l, r.map(|e| e.id))));
            Ok(())
        })
        .unwrap();
        (s.format, all)
    }

    #[test]
    fn csv_rows_over_the_cap_or_not_utf8_are_rejected_alone() {
        let mut text = b"id,timestamp,agentId,model\r\nr1,0,a,m\r\n".to_vec();
        text.extend(b"r2,0,a,\"");
        text.extend(std::iter::repeat_n(b'z', MAX_RECORD_BYTES));
        text.extend(b"\"\r\nr3,0,\xFFa,m\r\n\r\nr4,0,\"a\nb\",m\nr5,0,a\n");
        let (format, rows) = parse(&text);
        assert_eq!(format, Format::Csv);
        // r2,0,a," then the field, its closing quote and the row's \r.
        let size = 8 + MAX_RECORD_BYTES + 1 + 1;
        assert_eq!(
            rows,
            vec![
                (2, Ok("r1".into())),
                (3, Err(too_long("row", size as u64))),
                (4, Err("the agentId column is not UTF-8 text: byte 0xFF at byte 1 of it is invalid; save the file as UTF-8".into())),
                (6, Err("agentId: \"a\\nb\" holds a control character".into())),
                (8, Err("invalid CSV row: 3 fields, but the header row has 4".into())),
            ]
        );
    }

    #[test]
    fn a_csv_header_that_is_not_utf8_rejects_the_file_as_one_record() {
        let (_, rows) = parse(b"id,time\xFEstamp\nr1,0\n");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, 1);
        assert_eq!(rows[0].1.as_ref().unwrap_err(), "the header row is not UTF-8 text: byte 0xFE at byte 5 of it is invalid; save the file as UTF-8; a CSV file starts with a header row of field names, so the rest of the file was not read");
    }

    #[test]
    fn json_arrays_stream_and_stop_at_the_first_unreadable_item() {
        let (format, rows) =
            parse(br#"[{"id":"a","timestamp":0,"agentId":"a","model":"m"}, 7, {"id":"c", oops}, {"id":"d"}]"#);
        assert_eq!(format, Format::JsonArray);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], (1, Ok("a".into())));
        assert_eq!(rows[1], (2, Err("not a JSON object: 7".into())));
        assert_eq!(rows[2].0, 3);
        assert!(
            rows[2].1.as_ref().unwrap_err().starts_with(
                "invalid JSON in item 3 of the array (key must be a string at line 1 column"
            ),
            "{:?}",
            rows[2]
        );
        let mut big = b"\xEF\xBB\xBF[{\"id\":\"a\",\"timestamp\":0,\"agentId\":\"a\",\"model\":\"m\"},{\"metadata\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'q', MAX_RECORD_BYTES));
        big.extend(b"\"}]");
        let (_, rows) = parse(&big);
        assert_eq!(rows[0], (1, Ok("a".into())));
        assert_eq!(rows[1], (2, Err("record: item 2 of the array is over 65536 bytes (64 KiB), the most one record may take; the rest of the file was not read (JSONL skips only the long line)".into())));
        assert_eq!(rows.len(), 2);
        let (_, rows) = parse(b"[] x");
        assert!(
            rows[0]
                .1
                .as_ref()
                .unwrap_err()
                .starts_with("invalid JSON in item 1 of the array (trailing characters"),
            "{rows:?}"
        );
    }

    #[test]
    fn unknown_field_names_are_bounded() {
        let mut u = UnknownFields::default();
        for i in 0..60 {
            u.note(&format!("f{i}"));
        }
        u.note("f0");
        u.note(&"n".repeat(100));
        assert_eq!(u.0.len(), 51);
        assert_eq!(u.0["f0"], 2);
        assert_eq!(u.0[OTHER_UNKNOWN_FIELDS], 11);
    }
}
