//! The command line: parses flags into a configuration and runs one command. The only module
//! that writes to stdout outside the MCP stdio transport.
#![allow(clippy::print_stdout)]

mod table;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::catalog::{self, CallError};
use crate::dashboard::Dashboard;
use crate::demo::{self, DemoConfig};
use crate::http::{HttpConfig, HttpServer};
use crate::ingest::{self, Source};
use crate::mcp::DashboardServer;
use crate::store::{self, Missing, Store};
use crate::time::{self, Clock, Zone};
use crate::wire::{
    BudgetAction, BudgetEntry, BudgetPeriod, BudgetsInput, ImportReport, SetBudgetInput,
};

#[derive(Debug, Parser)]
#[command(
    name = "dashboard-mcp",
    version,
    about = "Usage log of LLM agents (cost, tokens, latency, errors) in embedded SQLite, answered as MCP tools, a REST API and a CLI"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The database file, a plain path [default: <data dir>/dashboard-mcp/usage.db, created with
    /// its directory]. Another path is created only when its directory exists; `query` and
    /// `budget list` / `rm` need an existing database.
    #[arg(long, global = true, env = "DASHBOARD_MCP_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Pin the clock to this instant (e.g. 2026-11-23T12:00:00Z): windows end here instead of
    /// now, so answers are reproducible.
    #[arg(long, global = true, value_name = "RFC3339")]
    pub now: Option<String>,
    /// For `serve` and `query`: list and allow the write tools (also accepted after them).
    #[arg(long)]
    pub allow_writes: bool,
    /// IANA time zone for day buckets and budget periods [default: UTC].
    #[arg(long, global = true, env = "DASHBOARD_MCP_TZ", value_name = "ZONE")]
    pub tz: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio (logs go to stderr), or everything over HTTP with --http.
    Serve {
        /// Fill an empty database with demo data first.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        writes: WriteArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Import executions from JSONL, JSON or CSV files (`-` for stdin), idempotent by id.
    Import {
        /// Files of records: JSONL, a JSON array or CSV with the record's field names as columns
        /// (schemas/ingest-record.json); `-` reads stdin.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        /// Refuse the whole import, writing nothing, if any record is bad.
        #[arg(long)]
        strict: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Generate deterministic demo usage into the database (or a JSONL file).
    Demo {
        #[command(flatten)]
        config: DemoArgs,
        /// Write JSONL here instead of into the database (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
    },
    /// Run one tool: a table on a terminal, its JSON answer otherwise (or with --json).
    Query {
        /// Tool name, e.g. dashboard_get_overview (the `dashboard_get_` prefix may be left out).
        tool: String,
        /// Arguments as a JSON object, e.g. '{"timeframe":"week"}'.
        #[arg(default_value = "{}")]
        args: String,
        /// Print the JSON answer even on a terminal (it is printed anyway when stdout is not one).
        #[arg(long)]
        json: bool,
        /// The JSON answer on one line instead of pretty-printed (implies --json).
        #[arg(long)]
        compact: bool,
        #[command(flatten)]
        writes: WriteArgs,
    },
    /// Build the benchmark's reference dataset (BENCHMARKS.md: 90 days, 200 agents, 20 models)
    /// and measure import, storage, every read tool at every timeframe (uncached, cached, raw
    /// SQL), peak RSS and stdio cold start.
    Bench {
        /// Executions in the dataset (the reference figures of BENCHMARKS.md are at 10,000,000).
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Timed calls per tool and timeframe.
        #[arg(long, default_value_t = 20)]
        iterations: usize,
        /// Timed calls per tool and timeframe of the raw-SQL baseline (0 skips it).
        #[arg(long, default_value_t = 3)]
        raw_iterations: usize,
        /// Seed of the dataset's generator (each day is generated with seed·1000 + day).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List, set or remove spending budgets (your own shell: no --allow-writes needed).
    Budget {
        #[command(subcommand)]
        command: BudgetCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// List every budget with its spend, projection and status now.
    List {
        /// Print the JSON of dashboard_get_budgets.
        #[arg(long)]
        json: bool,
    },
    /// Create or replace a budget: SCOPE is "global" or an agent id, LIMIT is USD per period.
    Set {
        /// "global" or an agent id.
        scope: String,
        /// USD per period, e.g. 50 or 12.5.
        limit: String,
        /// day, week (ISO, from Monday) or month, in the --tz zone (default UTC).
        #[arg(long)]
        period: String,
        /// Alert thresholds in percent, increasing [default: 50,80,100].
        #[arg(long, value_delimiter = ',', value_name = "PERCENTS")]
        thresholds: Option<Vec<i64>>,
        /// Print the JSON of dashboard_set_budget.
        #[arg(long)]
        json: bool,
    },
    /// Remove the budget of SCOPE.
    Rm {
        /// "global" or an agent id.
        scope: String,
    },
}

/// `--allow-writes` where it does something: `serve` and `query`.
#[derive(Debug, Clone, Copy, Args)]
pub struct WriteArgs {
    /// List and allow the write tools (dashboard_record_usage, dashboard_set_budget).
    #[arg(long)]
    pub allow_writes: bool,
}

/// `serve --http`: one port for MCP Streamable HTTP (/mcp), legacy MCP HTTP+SSE (/sse), REST
/// (/api), /openapi.json and /healthz.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Serve over HTTP on this address (e.g. 127.0.0.1:8080; port 0 picks a free one) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Bearer token required on every route but /healthz; mandatory for a non-loopback address.
    #[arg(
        long,
        env = "DASHBOARD_MCP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        requires = "http"
    )]
    pub token: Option<String>,
    /// A browser origin allowed besides loopback ones, e.g. https://app.example:8443 (repeatable; `:*` for any port).
    #[arg(long = "allowed-origin", value_name = "ORIGIN", requires = "http")]
    pub allowed_origins: Vec<String>,
    /// A Host name accepted besides loopback ones, e.g. behind a reverse proxy (repeatable).
    #[arg(long = "allowed-host", value_name = "HOST", requires = "http")]
    pub allowed_hosts: Vec<String>,
    /// Largest request body in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = crate::http::DEFAULT_MAX_BODY_BYTES, requires = "http")]
    pub max_body_bytes: usize,
    /// Seconds a client has to send each request head; a keep-alive connection idle that long is closed too.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), requires = "http")]
    pub header_timeout: u64,
    /// Most connections open at once [default: 1024, fewer under a low open-file limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000), requires = "http")]
    pub max_connections: Option<u64>,
}

/// The most executions `demo` draws: all of them are held in memory (about 600 bytes each)
/// before they are written. The benchmark (`bench`) builds bigger datasets a day at a time.
pub const MAX_DEMO_EVENTS: u64 = 5_000_000;

#[derive(Debug, Clone, Copy, Args)]
pub struct DemoArgs {
    /// Agents (1 to 10,000); the first is the busiest, agent i about 1/i^1.1 as busy.
    #[arg(long, value_name = "N", default_value_t = DemoConfig::default().agents as u32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub agents: u32,
    /// Models (1 to 1,000), priced like real ones; each agent uses one to three of them.
    #[arg(long, value_name = "N", default_value_t = DemoConfig::default().models as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub models: u32,
    /// Days of history before now (or --now), 1 to 3,650.
    #[arg(long, value_name = "N", default_value_t = DemoConfig::default().days,
          value_parser = clap::value_parser!(u32).range(1..=3_650))]
    pub days: u32,
    /// Executions to draw, 1 to 5,000,000 (the injected anomalies then add and remove a few).
    /// With the anomalies, at least 24 × agents × days: one call per agent and hour on average.
    #[arg(long, value_name = "N", default_value_t = DemoConfig::default().events,
          value_parser = clap::value_parser!(u64).range(1..=MAX_DEMO_EVENTS))]
    pub events: u64,
    /// Seed of the random generator: the same settings and clock give the same executions.
    #[arg(long, value_name = "N", default_value_t = DemoConfig::default().seed)]
    pub seed: u64,
    /// Leave out the labelled anomalies (a call drop, a runaway loop, an error burst, a latency
    /// regression, a cost spike) that are injected by default.
    #[arg(long)]
    pub no_anomalies: bool,
}

impl DemoArgs {
    /// The fewest executions that give the labelled anomalies something to stand out from: one
    /// call per agent and hour on average. The detector judges hourly series and reports
    /// nothing on an hour of a handful of calls (a drop needs 10 expected calls, an error burst
    /// 20 calls in the hour: docs/anomalies.md), so below this the injected incidents vanish:
    /// `--events 500` over the default 12 agents and 30 days (360 agent-days, 0.06 calls per
    /// agent and hour) stored 503 executions, three of them added by a "runaway loop", and the
    /// anomaly tool found none of the five incidents the help promised.
    pub fn min_events(&self) -> u64 {
        if self.no_anomalies {
            1
        } else {
            24 * u64::from(self.agents) * u64::from(self.days)
        }
    }

    /// Check what clap's ranges cannot: the events against the agents and days.
    fn check(&self) -> crate::Result<()> {
        let min = self.min_events();
        if min > MAX_DEMO_EVENTS {
            return Err(crate::Error::invalid(
                "--agents",
                format!(
                    "{} agents over {} days need at least {min} events for the labelled \
                     anomalies, more than the {MAX_DEMO_EVENTS} a demo holds: give fewer agents \
                     or days, or --no-anomalies",
                    self.agents, self.days
                ),
            ));
        }
        if self.events < min {
            return Err(crate::Error::invalid(
                "--events",
                format!(
                    "{} is too few for the labelled anomalies of {} agents over {} days: give at \
                     least {min} (24 × agents × days, one call per agent and hour on average; \
                     the detector judges hourly series), fewer agents or days, or --no-anomalies",
                    self.events, self.agents, self.days
                ),
            ));
        }
        Ok(())
    }
}

/// The demo executions of `args` (with the labelled anomalies unless turned off), and how many
/// were drawn before the anomalies added or removed some.
fn demo_executions(
    args: &DemoArgs,
    now: time::Millis,
) -> crate::Result<(Vec<crate::store::Execution>, u64)> {
    args.check()?;
    let cfg: DemoConfig = (*args).into();
    let executions = if args.no_anomalies {
        demo::generate(&cfg, now)
    } else {
        demo::generate_with_anomalies(&cfg, now).executions
    };
    Ok((executions, cfg.events))
}

impl From<DemoArgs> for DemoConfig {
    fn from(a: DemoArgs) -> Self {
        DemoConfig {
            agents: a.agents as usize,
            models: a.models as usize,
            days: a.days,
            events: a.events,
            seed: a.seed,
        }
    }
}

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

/// Judge the hours of the longest timeframe (a quarter) on a background thread, so the first
/// anomaly question after a start answers from the memo (at 10 M executions it would otherwise
/// take ~0.7 s). It starts a quarter second late: judging takes both cores, and a client's
/// `initialize` and `tools/list` come first (at once, they took up to 49 ms instead of 6). A
/// question asked before it holds the memo judges for itself; one asked during it waits for the
/// memo's lock, as it would have waited for its own judging.
///
/// The thread holds the store, which checkpoints the write-ahead log and removes the `-wal` and
/// `-shm` files only when its last holder lets go: `Warming::finish` stops it (or waits for a
/// judging under way) before the command returns.
fn warm_anomaly_memo(dashboard: &Dashboard) -> Warming {
    let d = dashboard.clone();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // Returns at once when `stop` is dropped, else after the delay.
        if stopped.recv_timeout(std::time::Duration::from_millis(250))
            != Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            return;
        }
        let now = d.now();
        let w = time::Window {
            start: now - 90 * time::DAY,
            end: now,
        };
        if let Err(e) = d.detect_anomalies(&w, None) {
            tracing::warn!(error = %e, "warming the anomaly memo failed");
        }
    });
    Warming { stop, thread }
}

/// The anomaly memo's warming thread (`warm_anomaly_memo`).
struct Warming {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Warming {
    /// Cancel the warming if it has not started, else wait for it to end.
    fn finish(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// What a command may do when its database does not exist.
fn missing_for(command: &Command, allow_writes: bool) -> Missing {
    match command {
        // Reading a database that is not there must not create an empty one and answer zeros.
        Command::Query { .. } if !allow_writes => Missing::Refuse,
        Command::Budget {
            command: BudgetCommand::List { .. } | BudgetCommand::Rm { .. },
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
    let path = db_path(global, missing)?;
    let store = Store::open_with(&path, missing)?;
    Ok(Context_ {
        dashboard: Dashboard::new(Arc::new(store), clock, zone),
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
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
        Command::Serve { demo, http, .. } => {
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
                let n = ingest::insert_all(&ctx.dashboard.store, executions)?;
                tracing::info!(executions = n, "filled the empty database with demo data");
            }
            let warming = warm_anomaly_memo(&ctx.dashboard);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let server = DashboardServer::new(ctx.dashboard, allow_writes);
            let served = if let Some(addr) = http.http.clone() {
                rt.block_on(serve_http(server, addr, http))
            } else {
                tracing::info!(db = %server.dashboard().store.path().display(), allow_writes, "serving MCP over stdio");
                rt.block_on(server.serve_stdio())
            };
            // Let go of the store everywhere (tasks of the runtime, the warming thread) so that
            // it closes: the last connection to close checkpoints the write-ahead log and
            // removes the `-wal` and `-shm` files.
            drop(rt);
            warming.finish();
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            files,
            strict,
            json,
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
            let report = store.bulk(|| ingest::import(store, sources, strict))?;
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
            let n = ingest::insert_all(&ctx.dashboard.store, executions)?;
            outln!(
                "stored {n} demo executions in {}{}; {} were already there",
                ctx.dashboard.store.path().display(),
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

/// `serve --http`: bind, say where on stderr, serve until SIGINT or SIGTERM.
async fn serve_http(server: DashboardServer, addr: String, args: HttpArgs) -> anyhow::Result<()> {
    let mut config = HttpConfig::new(addr);
    config.token = args.token;
    config.allowed_origins = args.allowed_origins;
    config.allowed_hosts = args.allowed_hosts;
    config.max_body_bytes = args.max_body_bytes;
    config.header_read_timeout = std::time::Duration::from_secs(args.header_timeout);
    if let Some(n) = args.max_connections {
        config.max_connections = n as usize;
    }
    let db = server.dashboard().store.path().display().to_string();
    let allow_writes = server.allow_writes();
    let http = HttpServer::bind(server, config).await?;
    let url = format!("http://{}", http.local_addr());
    tracing::info!(%db, allow_writes, "serving HTTP: MCP at {url}/mcp (legacy SSE at {url}/sse), REST at {url}/api, {url}/openapi.json");
    // Scripts and tests read the bound address (port 0 picks one) from this line.
    eprintln!("listening on {url}");
    http.run(shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
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
