//! `import --from claude-code|codex` (with a progress bar on a terminal) and `prices`.
#![allow(clippy::print_stdout)]

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::ingest::price;
use crate::prices::{ModelPrice, PriceTable};
use crate::sources::logs::{self, Progress, Quiet};
use crate::sources::Kind;
use crate::store::Store;

/// Load `--prices FILE` over the built-in table (before any record is read).
pub fn load_prices(path: &Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(p) = path {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("--prices: cannot read {}", p.display()))?;
        let table = PriceTable::from_litellm_json(&text)
            .map_err(|e| crate::Error::invalid("--prices", format!("{}: {e}", p.display())))?;
        price::set_overrides(table);
    }
    Ok(())
}

/// A bar of bytes read, with records stored per second and the time left.
struct Bar(ProgressBar, u64);

impl Progress for Bar {
    fn start(&mut self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&mut self, bytes: u64, records: u64) {
        self.1 += records;
        self.0.inc(bytes);
        let secs = self.0.elapsed().as_secs_f64().max(1e-3);
        self.0.set_message(format!(
            "{} records, {:.0} records/s",
            self.1,
            self.1 as f64 / secs
        ));
    }
    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

/// `import --from SOURCE [DIR...]`.
pub fn import_logs(
    store: &dyn Store,
    from: &str,
    dirs: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let kind = Kind::parse(from).map_err(|e| crate::Error::invalid("--from", e))?;
    let given = !dirs.is_empty();
    let roots: Vec<PathBuf> = if given {
        dirs.iter().map(PathBuf::from).collect()
    } else {
        logs::default_roots(kind)
    };
    let files = logs::discover(kind, &roots, given)?;
    if files.is_empty() {
        eprintln!(
            "no {} logs found under {}",
            kind.name(),
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let started = std::time::Instant::now();
    let report = if !json && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg}, {eta} left")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        store.bulk(|| logs::import(store, kind, &files, &mut Bar(bar, 0)))?
    } else {
        store.bulk(|| logs::import(store, kind, &files, &mut Quiet))?
    };
    let secs = started.elapsed().as_secs_f64();
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        super::print_report(&report, secs);
        outln!("{} log files looked at", files.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn price_json(key: &str, p: &ModelPrice) -> serde_json::Value {
    json!({
        "model": key,
        "provider": p.provider(),
        "inputUsdPerMTok": p.input_usd_per_mtok(),
        "outputUsdPerMTok": p.output_usd_per_mtok(),
        "cacheReadUsdPerMTok": p.cache_read_usd_per_mtok(),
        "cacheWrite5mUsdPerMTok": p.cache_write_5m_usd_per_mtok(),
        "cacheWrite1hUsdPerMTok": p.cache_write_1h_usd_per_mtok(),
        "inputAbove200kUsdPerMTok": p.input_above_200k_usd_per_mtok(),
        "outputAbove200kUsdPerMTok": p.output_above_200k_usd_per_mtok(),
    })
}

fn shown(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x}"))
}

/// `prices [MODEL]`.
pub fn prices(model: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let table = price::table();
    let rows: Vec<(String, &ModelPrice)> = match &model {
        Some(m) => match table.lookup(m) {
            Some((key, p)) => vec![(key.to_owned(), p)],
            None => {
                return Err(crate::Error::invalid(
                    "model",
                    format!(
                        "{m:?} has no price in the table ({} models); records of it without a cost are stored as unpriced (cost 0). Add it with --prices FILE",
                        table.len()
                    ),
                )
                .into())
            }
        },
        None => table.entries().map(|(k, p)| (k.to_owned(), p)).collect(),
    };
    if json {
        let items: Vec<_> = rows.iter().map(|(k, p)| price_json(k, p)).collect();
        let v = match model {
            Some(m) => json!({"query": m, "price": items[0]}),
            None => json!({"models": items}),
        };
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if let Some(m) = &model {
            outln!("{m} → {}", rows[0].0);
        }
        outln!("model\tinput\toutput\tcache read\tcache write 5m\tcache write 1h  (USD per million tokens)");
        for (k, p) in &rows {
            outln!(
                "{k}\t{}\t{}\t{}\t{}\t{}",
                shown(p.input_usd_per_mtok()),
                shown(p.output_usd_per_mtok()),
                shown(p.cache_read_usd_per_mtok()),
                shown(p.cache_write_5m_usd_per_mtok()),
                shown(p.cache_write_1h_usd_per_mtok())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `prices --reprice`.
pub fn reprice(store: &dyn Store, json: bool) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let r = store.reprice(&price::pricer)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "lookedAt": r.looked_at,
                "changed": r.changed,
                "costBefore": crate::money::to_usd(r.cost_before),
                "costAfter": crate::money::to_usd(r.cost_after),
            }))?
        );
    } else {
        outln!(
            "{} estimated or unpriced executions priced again in {:.2} s: {} changed, their cost ${} → ${}",
            r.looked_at,
            started.elapsed().as_secs_f64(),
            r.changed,
            crate::money::to_usd(r.cost_before),
            crate::money::to_usd(r.cost_after)
        );
    }
    Ok(ExitCode::SUCCESS)
}
