//! The command line: parses flags into a configuration and runs one command. The only module
//! that writes to stdout outside the MCP stdio transport.
#![allow(clippy::print_stdout)]

mod args;
mod serve;
mod table;

pub use args::*;
use serve::{serve_http, warm_anomaly_memo};

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;

use crate::catalog::{self, CallError};
use crate::dashboard::Dashboard;
use crate::demo::{self, DemoConfig};
use crate::ingest::{self, Source};
use crate::mcp::DashboardServer;
use crate::store::{self, Missing, SqliteStore};
use crate::time::{self, Clock, Zone};
use crate::wire::{
    BudgetAction, BudgetEntry, BudgetPeriod, BudgetsInput, ImportReport, SetBudgetInput,
};

/// Parse the process arguments and run. The binary's `main` is this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if matches!(cli.command, Command::Serve { .. }) {
        "info,rmcp=warn"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DASHBOARD_MCP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Bad input (a flag's value) exits 2, like clap's own errors and the tools' bad input.
            match e.downcast_ref::<crate::Error>() {
                Some(e) if e.is_invalid_input() => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

/// `println!` without its panic when stdout is a closed pipe (`dashboard-mcp query … | head`):
/// what nobody reads any more is dropped.
macro_rules! outln {
    ($($arg:tt)*) => {
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("error: cannot write to stdout: {e}");
            }
        }
    };
}

// After `outln!`, which it uses.
mod alert;
mod sources;

/// The default database path: `<data dir>/dashboard-mcp/usage.db`.
pub fn default_db_path() -> PathBuf {
    dirs::data_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("dashboard-mcp")
        .join("usage.db")
}

struct Context_ {
    dashboard: Dashboard,
}

/// What a command may do when its database does not exist.
fn missing_for(command: &Command, allow_writes: bool) -> Missing {
    match command {
        // Reading a database that is not there must not create an empty one and answer zeros.
        Command::Query { .. } if !allow_writes => Missing::Refuse,
        Command::Budget {
            command: BudgetCommand::List { .. } | BudgetCommand::Rm { .. },
        }
        | Command::Alert {
            command: AlertCommand::List { .. } | AlertCommand::Rm { .. } | AlertCommand::Test { .. },
        } => Missing::Refuse,
        _ => Missing::Create,
    }
}

/// The database path of `--db`, or the default one (whose directory is created when the command
/// may create the database), checked before anything touches the disk.
fn db_path(global: &Global, missing: Missing) -> anyhow::Result<PathBuf> {
    let invalid = |m: String| crate::Error::invalid("--db", m);
    let Some(path) = &global.db else {
        let path = default_db_path();
        if let (Missing::Create, Some(dir)) = (missing, path.parent()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("cannot create the database directory {}", dir.display())
            })?;
        }
        return store::check_path(&path, missing)
            .map(|()| path)
            .map_err(|m| {
                invalid(format!(
                    "{m}; this is the default (--db or DASHBOARD_MCP_DB choose another): \
                     fill it with `dashboard-mcp import FILE…` or `dashboard-mcp demo`"
                ))
                .into()
            });
    };
    store::check_path(path, missing).map_err(|m| {
        let hint = if missing == Missing::Refuse && store::check_location(path).is_ok() {
            "; check the path for a typo, or fill one with `dashboard-mcp import FILE…` or \
             `dashboard-mcp demo`"
        } else {
            ""
        };
        invalid(format!("{m}{hint}"))
    })?;
    Ok(path.clone())
}

fn open(global: &Global, missing: Missing) -> anyhow::Result<Context_> {
    let clock = match &global.now {
        Some(s) => Clock::Fixed(time::parse_rfc3339("--now", s)?),
        None => Clock::System,
    };
    let zone = match &global.tz {
        Some(z) => Zone::parse(z)?,
        None => Zone::default(),
    };
    let store = match global.db.as_deref().and_then(|p| p.to_str()) {
        Some(url) if store::is_postgres(url) => store::open(url, missing)?,
        _ => {
            let path = db_path(global, missing)?;
            Arc::new(SqliteStore::open_with(&path, missing)?)
        }
    };
    Ok(Context_ {
        dashboard: Dashboard::new(store, clock, zone),
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    sources::load_prices(&cli.global.prices)?;
    if let Command::Prices {
        model,
        json,
        reprice: false,
    } = cli.command
    {
        return sources::prices(model, json);
    }
    // Writing demo data to a file needs no database: don't create one as a side effect.
    if let Command::Demo {
        config,
        out: Some(path),
    } = &cli.command
    {
        let now = match &cli.global.now {
            Some(s) => time::parse_rfc3339("--now", s)?,
            None => Clock::System.now(),
        };
        let (executions, drawn) = demo_executions(config, now)?;
        write_demo_file(&executions, path)?;
        eprintln!(
            "wrote {} demo executions to {path}{}",
            executions.len(),
            injected(config, drawn, executions.len())
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Bench {
        events,
        iterations,
        raw_iterations,
        seed,
        json,
    } = cli.command
    {
        // The benchmark owns its database: `--db` (built when empty, else reused) or a fresh
        // file in the temporary directory named after the size.
        let db = cli.global.db.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("dashboard-mcp-bench-{events}.db"))
        });
        let cfg = crate::bench::BenchConfig {
            events,
            db,
            seed,
            iterations,
            raw_iterations,
            exe: std::env::current_exe().ok(),
        };
        let report = crate::bench::run(&cfg, &mut |m| eprintln!("bench: {m}"))?;
        if json {
            outln!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            outln!("{}", report.table().trim_end_matches('\n'));
        }
        return Ok(ExitCode::SUCCESS);
    }
    // `--allow-writes` before the subcommand is accepted where it does something.
    let allow_writes = cli.global.allow_writes
        || match &cli.command {
            Command::Serve { writes, .. } | Command::Query { writes, .. } => writes.allow_writes,
            _ => false,
        };
    if cli.global.allow_writes
        && !matches!(cli.command, Command::Serve { .. } | Command::Query { .. })
    {
        return Err(crate::Error::invalid(
            "--allow-writes",
            "only `serve` and `query` have write tools to allow; `import`, `demo` and `budget` \
             write without it",
        )
        .into());
    }
    // Bad demo settings are refused before a database is opened (or created).
    if let Command::Demo { config, .. } = &cli.command {
        config.check()?;
    }
    let ctx = open(&cli.global, missing_for(&cli.command, allow_writes))?;
    match cli.command {
        Command::Serve {
            demo, http, watch, ..
        } => {
            let kinds = watch
                .iter()
                .map(|w| crate::sources::Kind::parse(w))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crate::Error::invalid("--watch", e))?;
            if demo && ctx.dashboard.store.is_empty()? {
                let d = DemoConfig::default();
                let args = DemoArgs {
                    agents: d.agents as u32,
                    models: d.models as u32,
                    days: d.days,
                    events: d.events,
                    seed: d.seed,
                    no_anomalies: false,
                };
                let (executions, _) = demo_executions(&args, ctx.dashboard.now())?;
                let n = ingest::insert_all(&*ctx.dashboard.store, executions)?;
                tracing::info!(executions = n, "filled the empty database with demo data");
            }
            let warming = warm_anomaly_memo(&ctx.dashboard);
            // Alert rules are evaluated by every server (stdio, HTTP, --watch).
            let alerting = crate::alerts::Alerts::start(ctx.dashboard.clone(), Default::default());
            let watching = (!kinds.is_empty())
                .then(|| crate::sources::watch::Watch::start(ctx.dashboard.store.clone(), kinds));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let server = DashboardServer::new(ctx.dashboard, allow_writes);
            let served = if let Some(addr) = http.http.clone() {
                rt.block_on(serve_http(server, addr, http))
            } else {
                tracing::info!(db = %server.dashboard().store.describe(), allow_writes, "serving MCP over stdio");
                rt.block_on(server.serve_stdio())
            };
            // Let go of the store everywhere (tasks of the runtime, the warming thread) so that
            // it closes: the last connection to close checkpoints the write-ahead log and
            // removes the `-wal` and `-shm` files.
            drop(rt);
            warming.finish();
            alerting.stop();
            if let Some(w) = watching {
                w.stop();
            }
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Prices {
            reprice: true,
            json,
            ..
        } => sources::reprice(&*ctx.dashboard.store, json),
        // Answered before a database is opened (above).
        Command::Prices { model, json, .. } => sources::prices(model, json),
        Command::Import {
            files,
            from: Some(from),
            json,
            ..
        } => sources::import_logs(&*ctx.dashboard.store, &from, &files, json),
        Command::Import {
            files,
            strict,
            json,
            from: None,
        } => {
            let mut sources = Vec::new();
            for f in &files {
                let reader: Box<dyn std::io::Read> = if f == "-" {
                    Box::new(std::io::stdin().lock())
                } else {
                    Box::new(std::fs::File::open(f).with_context(|| format!("cannot open {f}"))?)
                };
                sources.push(Source {
                    name: f.clone(),
                    reader,
                });
            }
            let started = std::time::Instant::now();
            let store = &ctx.dashboard.store;
            let report = store.bulk(|| ingest::import(&**store, sources, strict))?;
            let secs = started.elapsed().as_secs_f64();
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report, secs);
            }
            // Failure: a strict refusal, or records given and none of them stored or already there.
            let nothing = report.accepted + report.duplicates == 0 && report.rejected > 0;
            Ok(if report.committed && !nothing {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Demo { config, out: _ } => {
            let (executions, drawn) = demo_executions(&config, ctx.dashboard.now())?;
            let total = executions.len();
            let n = ingest::insert_all(&*ctx.dashboard.store, executions)?;
            outln!(
                "stored {n} demo executions in {}{}; {} were already there",
                ctx.dashboard.store.describe(),
                injected(&config, drawn, total),
                total as u64 - n,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            tool,
            args,
            json,
            compact,
            ..
        } => {
            let args: serde_json::Value =
                serde_json::from_str(&args).context("the arguments are not valid JSON")?;
            let serde_json::Value::Object(args) = args else {
                bail!("the arguments must be a JSON object, e.g. '{{\"timeframe\":\"week\"}}'")
            };
            let name = if tool.starts_with("dashboard_") {
                tool
            } else {
                format!("dashboard_get_{tool}")
            };
            match catalog::call(&ctx.dashboard, allow_writes, &name, Some(args)) {
                Ok(v) => {
                    let text = if compact {
                        serde_json::to_string(&v)?
                    } else if json || !std::io::stdout().is_terminal() {
                        serde_json::to_string_pretty(&v)?
                    } else {
                        // A person reads this: a table, wrapped to the terminal's width.
                        // (A terminal that reports no width, or a tiny one, is not wrapped.)
                        let width = comfy_table::Table::new().width().filter(|w| *w >= 40);
                        table::render(&name, &v, width).trim_end().to_owned()
                    };
                    outln!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(CallError::Tool(e)) if e.is_invalid_input() => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(2))
                }
                Err(e @ (CallError::UnknownTool(..) | CallError::WritesDisabled(_))) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(2))
                }
                Err(CallError::Tool(e)) => Err(e.into()),
            }
        }
        Command::Bench { .. } => unreachable!("handled before opening the store"),
        Command::Alert { command } => match alert::alert(&ctx.dashboard, command) {
            Err(e) if e.is_invalid_input() => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(2))
            }
            other => Ok(other?),
        },
        Command::Budget { command } => match budget(&ctx.dashboard, command) {
            Err(e) if e.is_invalid_input() => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(2))
            }
            other => Ok(other.map(|()| ExitCode::SUCCESS)?),
        },
    }
}

/// What the labelled anomalies did to the number of executions drawn (`drawn`, now `total`).
fn injected(args: &DemoArgs, drawn: u64, total: usize) -> String {
    if args.no_anomalies {
        return String::new();
    }
    format!(
        " ({drawn} drawn, {:+} by the labelled anomalies: a runaway loop repeats calls, a call \
         drop removes some)",
        total as i64 - drawn as i64
    )
}

fn budget(d: &Dashboard, command: BudgetCommand) -> crate::Result<()> {
    match command {
        BudgetCommand::List { json } => {
            let mut input = BudgetsInput {
                limit: Some(500),
                ..BudgetsInput::default()
            };
            let mut out = d.budgets(input.clone())?;
            while let Some(next) = out.pagination.next_offset {
                input.offset = Some(next);
                let page = d.budgets(input.clone())?;
                out.budgets.extend(page.budgets);
                out.pagination = page.pagination;
            }
            if json {
                outln!("{}", to_json(&out)?);
            } else if out.budgets.is_empty() {
                outln!(
                    "no budgets; set one with `dashboard-mcp budget set global 100 --period month`"
                );
            } else {
                outln!(
                    "{:<24} {:<6} {:>12} {:>12} {:>7} {:>12} {:<9} {:<8} PERIOD START",
                    "SCOPE",
                    "PERIOD",
                    "LIMIT USD",
                    "SPENT USD",
                    "USED %",
                    "PROJECTED",
                    "STATUS",
                    "ON TRACK"
                );
                for b in &out.budgets {
                    outln!(
                        "{:<24} {:<6} {:>12.2} {:>12.2} {:>7.1} {:>12.2} {:<9} {:<8} {}",
                        b.scope,
                        b.period.as_str(),
                        b.limit_usd,
                        b.spent,
                        b.percent_used,
                        b.projected,
                        b.status.as_str(),
                        if b.on_track { "yes" } else { "no" },
                        b.period_start
                    );
                }
            }
        }
        BudgetCommand::Set {
            scope,
            limit,
            period,
            thresholds,
            json,
        } => {
            let limit_usd = limit
                .trim()
                .trim_start_matches('$')
                .parse::<f64>()
                .map_err(|_| {
                    crate::Error::invalid(
                        "LIMIT",
                        format!(
                            "{limit:?} is not a number; give the limit in USD, e.g. 50 or 12.5"
                        ),
                    )
                })?;
            let period = BudgetPeriod::parse(&period).ok_or_else(|| {
                crate::Error::invalid("--period", BudgetPeriod::not_one_of(&period))
            })?;
            let out = d.set_budget(SetBudgetInput {
                scope,
                limit_usd: Some(limit_usd),
                period: Some(period),
                alert_thresholds: thresholds,
            })?;
            if json {
                outln!("{}", to_json(&out)?);
            } else if let Some(b) = &out.budget {
                outln!("{} budget {}", out.action.as_str(), describe(b));
            }
        }
        BudgetCommand::Rm { scope } => {
            let out = d.set_budget(SetBudgetInput {
                scope,
                ..SetBudgetInput::default()
            })?;
            match out.action {
                BudgetAction::Deleted => outln!("deleted the budget of {}", out.scope),
                _ => outln!("{} has no budget; nothing to delete", out.scope),
            }
        }
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> crate::Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| crate::Error::Internal(format!("cannot serialise the answer: {e}")))
}

/// One line saying what a budget is and where it stands.
fn describe(b: &BudgetEntry) -> String {
    let alerts: Vec<String> = b.alert_thresholds.iter().map(u32::to_string).collect();
    format!(
        "{}: {} USD per {} (alerts at {} %); this {} from {}: spent {} USD ({:.1} %), projected {} USD, {}{}",
        b.scope,
        b.limit_usd,
        b.period.as_str(),
        alerts.join(", "),
        b.period.as_str(),
        b.period_start,
        b.spent,
        b.percent_used,
        b.projected,
        b.status.as_str(),
        if b.on_track { ", on track" } else { ", not on track" }
    )
}

/// Write demo executions as JSONL to `path` (`-` for stdout).
fn write_demo_file(executions: &[crate::store::Execution], path: &str) -> anyhow::Result<()> {
    let mut w: Box<dyn Write> = if path == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {path}"))?,
        ))
    };
    for e in executions {
        serde_json::to_writer(&mut w, &demo::to_record(e))?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

fn print_report(r: &ImportReport, secs: f64) {
    for f in &r.files {
        outln!(
            "{}: {} accepted, {} duplicates skipped, {} rejected ({})",
            f.source,
            f.accepted,
            f.duplicates,
            f.rejected,
            f.format
        );
        if f.replaced > 0 {
            outln!(
                "  {} replaced a stored execution of the same id written again with more tokens",
                f.replaced
            );
        }
        for e in &f.errors {
            outln!("  line {}: {}", e.line, e.reason);
        }
        if f.rejected as usize > f.errors.len() {
            outln!(
                "  … and {} more rejected",
                f.rejected as usize - f.errors.len()
            );
        }
        if !f.unknown_fields.is_empty() {
            let named: Vec<String> = f
                .unknown_fields
                .iter()
                .map(|(k, n)| format!("{k:?} ({n})"))
                .collect();
            outln!(
                "  warning: unknown fields kept in metadata: {}; check their spelling",
                named.join(", ")
            );
        }
    }
    let n = r.accepted + r.duplicates + r.rejected;
    outln!(
        "total: {} accepted, {} duplicates, {} rejected in {:.2} s ({:.0} records/s){}",
        r.accepted,
        r.duplicates,
        r.rejected,
        secs,
        n as f64 / secs.max(1e-9),
        if r.committed {
            ""
        } else {
            "; --strict: nothing was written"
        }
    );
}
