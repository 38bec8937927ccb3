//! The command line's grammar: every flag and subcommand (clap), with the checks clap's ranges
//! cannot express (`DemoArgs::check`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::demo::{self, DemoConfig};
use crate::time;

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
    /// Prices that override the built-in table (negotiated prices, new models): a JSON file in
    /// the format of LiteLLM's model_prices_and_context_window.json, whole or in part. Records
    /// without a cost are priced with it.
    #[arg(long, global = true, env = "DASHBOARD_MCP_PRICES", value_name = "FILE")]
    pub prices: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio (logs go to stderr), or everything over HTTP with --http.
    Serve {
        /// Fill an empty database with demo data first.
        #[arg(long)]
        demo: bool,
        /// Follow these agents' logs and ingest new lines as they are written (claude-code,
        /// codex; comma separated), from their usual roots ($CLAUDE_CONFIG_DIR, ~/.claude,
        /// $CODEX_HOME, ~/.codex), as `import --from` reads them.
        #[arg(long, value_delimiter = ',', value_name = "SOURCES")]
        watch: Vec<String>,
        #[command(flatten)]
        writes: WriteArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Import executions from JSONL, JSON or CSV files (`-` for stdin), idempotent by id.
    ///
    /// With --from claude-code or --from codex: the agents' own session logs instead, read on
    /// from where the last import stopped (README "Your real usage").
    Import {
        /// Files of records: JSONL, a JSON array or CSV with the record's field names as columns
        /// (schemas/ingest-record.json); `-` reads stdin. With --from: log folders or files (a
        /// root such as ~/.claude, its `projects` folder, one project's folder or one .jsonl
        /// file; for Codex ~/.codex or its `sessions` folder), default the usual roots.
        #[arg(required_unless_present = "from", value_name = "FILE")]
        files: Vec<String>,
        /// Read the session logs of `claude-code` or `codex`.
        #[arg(long, value_name = "SOURCE", conflicts_with = "strict")]
        from: Option<String>,
        /// Refuse the whole import, writing nothing, if any record is bad.
        #[arg(long)]
        strict: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The price table records without a cost are priced with: every model, or one model's
    /// prices and the table entry its name matches.
    Prices {
        /// A model name as an agent logs it (provider prefixes and dates are tolerated).
        model: Option<String>,
        /// Price every stored execution whose cost was estimated (or that had no price) again
        /// with the table in use (the built-in one and --prices FILE): the costs a newer or
        /// amended table changes are updated, exactly, with every total.
        #[arg(long, conflicts_with = "model")]
        reprice: bool,
        /// Print JSON.
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
    /// Alert rules that post to a webhook (your own shell: no --allow-writes needed); `serve`
    /// evaluates them.
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Create or replace a rule that posts to URL, e.g.
    /// `alert add https://hooks.slack.com/services/… --slack --agent planner --budget --anomaly critical`.
    Add {
        /// The webhook (http:// or https://).
        url: String,
        /// The rule's id (default: derived from the rule).
        #[arg(long)]
        id: Option<String>,
        /// Only this agent (default: every agent).
        #[arg(long)]
        agent: Option<String>,
        /// Only this model (--error-rate and --cost only).
        #[arg(long)]
        model: Option<String>,
        /// When a budget crosses one of its alert thresholds (`budget set --thresholds`).
        #[arg(long)]
        budget: bool,
        /// When a budget is projected over its limit.
        #[arg(long)]
        projection: bool,
        /// On an anomaly at or above SEVERITY: low, medium, high or critical.
        #[arg(long, value_name = "SEVERITY")]
        anomaly: Option<String>,
        /// When the error rate over --window is at or above PERCENT.
        #[arg(long, value_name = "PERCENT")]
        error_rate: Option<f64>,
        /// Calls --window needs before its error rate counts [default: 10].
        #[arg(long)]
        min_calls: Option<u64>,
        /// When the cost over --window is at or above USD.
        #[arg(long, value_name = "USD")]
        cost: Option<f64>,
        /// The trailing window of --error-rate and --cost, 5m..30d [default: 1h].
        #[arg(long)]
        window: Option<String>,
        /// Post Slack's {"text": …} instead of the generic JSON notice.
        #[arg(long)]
        slack: bool,
        /// Sign each body with HMAC-SHA256 (header X-Dashboard-Signature).
        #[arg(long, env = "DASHBOARD_MCP_ALERT_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Print the JSON of dashboard_set_alert.
        #[arg(long)]
        json: bool,
    },
    /// List the rules, what is firing and the recent alerts with their delivery.
    List {
        /// Print the JSON of dashboard_get_alerts.
        #[arg(long)]
        json: bool,
    },
    /// Remove rule ID.
    Rm {
        /// The rule's id (as `alert list` shows it).
        id: String,
    },
    /// Post a test notice to rule ID's webhook now and say what the receiver answered.
    Test {
        /// The rule's id (as `alert list` shows it).
        id: String,
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
    pub(super) fn check(&self) -> crate::Result<()> {
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
pub(super) fn demo_executions(
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
