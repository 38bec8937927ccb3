//! The tool catalog: every tool's name, title, description, annotations and schemas, and the
//! dispatch from a tool name and JSON arguments to the dashboard. The MCP server, the REST API
//! and the `query` command all go through `call`, so they answer identically by construction.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cache::Key;
use crate::dashboard::Dashboard;
use crate::error::{Error, Result};
use crate::input::parse_args;
use crate::time::Clock;
use crate::wire::*;

/// One tool of the catalog.
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// Changes stored data; listed only with `--allow-writes`.
    pub write: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub input_schema: fn() -> JsonObject,
    pub output_schema: fn() -> JsonObject,
    run: RunFn,
}

/// Parses the arguments, runs the tool, serialises the answer.
type RunFn = fn(&Dashboard, Option<Map<String, Value>>) -> Result<Value>;

/// The JSON Schema of what `T` accepts (tool inputs, the ingest record).
pub fn input_schema<T: JsonSchema>() -> JsonObject {
    let mut o = schema_object::<T>(SchemaSettings::draft2020_12());
    // Optional inputs read `null` as "not given", so the schema need not say "or null".
    for v in o.values_mut() {
        slim(v, true);
    }
    o
}

/// The JSON Schema of what `T` writes (tool outputs).
pub fn output_schema<T: JsonSchema>() -> JsonObject {
    let mut o = schema_object::<T>(SchemaSettings::draft2020_12().for_serialize());
    for v in o.values_mut() {
        slim(v, false);
    }
    o
}

/// Drop what costs every agent prompt bytes and tells it nothing: number `format`s, `default:
/// null`, (in inputs) the `null` alternative of optional fields, (in answers) `minimum: 0`.
fn slim(v: &mut Value, input: bool) {
    match v {
        Value::Object(o) => {
            if o.get("default") == Some(&Value::Null) {
                o.remove("default");
            }
            if input {
                if let Some(Value::Array(types)) = o.get("type") {
                    let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                    if rest.len() == 1 {
                        o.insert("type".into(), rest[0].clone());
                    }
                }
            }
            // An answer's integers are counts: `minimum: 0` on each tells an agent nothing.
            if !input && o.get("minimum") == Some(&Value::from(0)) {
                o.remove("minimum");
            }
            // After the collapse above, so that an optional string keeps its format.
            if o.get("format").is_some_and(|f| f.is_string())
                && o.get("type").is_some_and(|t| t != "string")
            {
                o.remove("format");
            }
            if input {
                if let Some(Value::Array(e)) = o.get_mut("enum") {
                    e.retain(|x| !x.is_null());
                }
                if let Some(Value::Array(any)) = o.get("anyOf") {
                    let rest: Vec<Value> = any
                        .iter()
                        .filter(|x| x.get("type") != Some(&Value::from("null")))
                        .cloned()
                        .collect();
                    if rest.len() == 1 && rest.len() < any.len() {
                        o.remove("anyOf");
                        if let Value::Object(inner) = &rest[0] {
                            for (k, x) in inner {
                                o.entry(k.clone()).or_insert_with(|| x.clone());
                            }
                        }
                    }
                }
            }
            for x in o.values_mut() {
                slim(x, input);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| slim(x, input)),
        _ => {}
    }
}

fn schema_object<T: JsonSchema>(settings: SchemaSettings) -> JsonObject {
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let Value::Object(mut o) = serde_json::to_value(schema).unwrap_or_default() else {
        return JsonObject::new();
    };
    // The root's title and doc are the Rust type's: noise in every agent's prompt.
    o.remove("title");
    o.remove("description");
    o.remove("$schema");
    o
}

/// Parse the arguments as `I`, run `f`, serialise the answer.
fn run<I: DeserializeOwned, O: Serialize>(
    d: &Dashboard,
    args: Option<Map<String, Value>>,
    f: fn(&Dashboard, I) -> Result<O>,
) -> Result<Value> {
    let input: I = parse_args(args)?;
    let out = f(d, input)?;
    serde_json::to_value(out)
        .map_err(|e| Error::Internal(format!("cannot serialise the answer: {e}")))
}

macro_rules! spec {
    ($name:literal, $title:literal, $desc:expr, write: $write:expr, destructive: $destr:expr, idempotent: $idem:expr,
     $input:ty => $output:ty, $method:path) => {
        ToolSpec {
            name: $name,
            title: $title,
            description: $desc,
            write: $write,
            destructive: $destr,
            idempotent: $idem,
            input_schema: input_schema::<$input>,
            output_schema: output_schema::<$output>,
            run: |d, args| run::<$input, $output>(d, args, $method),
        }
    };
}

/// Every tool, read tools first.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        spec!("dashboard_get_overview", "Usage overview",
            "Totals of a window: cost (USD), calls, tokens, agents, success rate, errors, latency (avg, p95), trends against the previous window, top agent, budget and anomaly counts. Start here for \"what did my agents spend\"; per agent or model: dashboard_get_agents / dashboard_get_models.",
            write: false, destructive: false, idempotent: true,
            OverviewInput => OverviewOutput, Dashboard::overview),
        spec!("dashboard_get_agents", "Agents ranked",
            "Agents of a window with cost, calls, tokens, success rate, errors and change from the previous window; sorted (cost by default), paged. For \"which agents spend or fail most\".",
            write: false, destructive: false, idempotent: true,
            AgentsInput => AgentsOutput, Dashboard::agents),
        spec!("dashboard_get_models", "Models ranked",
            "Models of a window with cost, calls, tokens, cost per call, success rate, latency and share of cost, most expensive first; optionally for one agent.",
            write: false, destructive: false, idempotent: true,
            ModelsInput => ModelsOutput, Dashboard::models),
        spec!("dashboard_get_timeline", "Time series",
            "One metric per minute, hour or day over a window, with total, average and peak, optionally split by the top 10 agents or models. To chart a trend or find when something happened.",
            write: false, destructive: false, idempotent: true,
            TimelineInput => TimelineOutput, Dashboard::timeline),
        spec!("dashboard_get_anomalies", "Anomalies",
            "Hours where an agent's cost, calls, tokens, error rate or latency broke from its own history, newest first, with severity and a one-line explanation. For \"is anything unusual?\".",
            write: false, destructive: false, idempotent: true,
            AnomaliesInput => AnomaliesOutput, Dashboard::anomalies),
        spec!("dashboard_get_executions", "Execution log",
            "Executions of a window, newest first (time, agent, model, latency, cost, tokens, outcome), filtered by agent, model or status, paged: the calls behind a figure.",
            write: false, destructive: false, idempotent: true,
            ExecutionsInput => ExecutionsOutput, Dashboard::executions),
        spec!("dashboard_get_budgets", "Budgets",
            "Budgets (global or per agent; day, ISO week or month) with spent, percent used, projected spend, on-track, status and thresholds crossed. For \"will we stay within budget\".",
            write: false, destructive: false, idempotent: true,
            BudgetsInput => BudgetsOutput, Dashboard::budgets),
        spec!("dashboard_check_budget", "Check budget",
            "May this agent spend estimatedCostUsd now? Call it before a costly step: allowed, the budget that blocks (its own or the global one) and why. Advisory.",
            write: false, destructive: false, idempotent: true,
            CheckBudgetInput => CheckBudgetOutput, Dashboard::check_budget),
        spec!("dashboard_get_alerts", "Alerts",
            "Alert rules, what is firing now, and recent alerts with their webhook delivery.",
            write: false, destructive: false, idempotent: true,
            AlertsInput => AlertsOutput, Dashboard::alerts),
        ToolSpec {
            run: set_budget,
            ..spec!("dashboard_set_budget", "Set budget",
                "Create or replace the budget of a scope (\"global\" or an agent id): a USD limit per day, week or month, with alert thresholds in percent (default [50, 80, 100]). limitUsd null deletes the budget. Answers with the budget as dashboard_get_budgets reports it.",
                write: true, destructive: true, idempotent: true,
                SetBudgetInput => SetBudgetOutput, Dashboard::set_budget)
        },
        spec!("dashboard_set_alert", "Set alert",
            "Create or replace an alert rule, or remove one (id, remove: true). It posts to url (generic JSON, or slack) when a budget crosses a threshold (budgetThreshold) or is projected over its limit (budgetProjection), an anomaly at or above anomalySeverity appears, or the error rate (errorRatePercent, minCalls) or cost (costUsd) over window reaches the level; once per crossing, and again when it clears. Scope: every agent, agentId or model.",
            write: true, destructive: true, idempotent: true,
            SetAlertInput => SetAlertOutput, Dashboard::set_alert),
        spec!("dashboard_record_usage", "Record usage",
            "Store a batch of executions (1..10000 records: timestamp, agentId, model, tokens, cost, durationMs, success, error, ...). Idempotent by id: re-sending a record never double counts. Answers how many were accepted, duplicates skipped and rejected, with the reason for each rejection.",
            write: true, destructive: false, idempotent: true,
            RecordUsageInput => ImportReport, Dashboard::record_usage),
    ]
}

/// `dashboard_set_budget`: a null `limitUsd` deletes the budget, and `parse_args` reads a null as
/// "not given"; so that a forgotten field never deletes a budget, the field must be sent.
fn set_budget(d: &Dashboard, args: Option<Map<String, Value>>) -> Result<Value> {
    if !args.as_ref().is_some_and(|a| a.contains_key("limitUsd")) {
        return Err(Error::invalid(
            "limitUsd",
            "missing; give the limit in USD (a number > 0), or null to delete the budget",
        ));
    }
    run(d, args, Dashboard::set_budget)
}

/// The catalog as MCP tools, write tools only when allowed.
pub fn tools(allow_writes: bool) -> Vec<Tool> {
    specs()
        .into_iter()
        .filter(|s| allow_writes || !s.write)
        .map(|s| s.tool())
        .collect()
}

impl ToolSpec {
    /// The `tools/list` entry.
    pub fn tool(&self) -> Tool {
        let annotations = ToolAnnotations::with_title(self.title)
            .read_only(!self.write)
            .destructive(self.destructive)
            .idempotent(self.idempotent)
            .open_world(false);
        let mut output = Value::Object((self.output_schema)());
        drop_required(&mut output);
        let Value::Object(output) = output else {
            unreachable!("an object stays an object")
        };
        Tool::new(self.name, self.description, Arc::new((self.input_schema)()))
            .with_title(self.title)
            .with_raw_output_schema(Arc::new(output))
            .with_annotations(annotations)
    }
}

/// The `tools/list` copy of an output schema leaves out `required`: every field of every answer
/// is always present (an absent value is `null`), so the lists only repeat the property names in
/// every agent's prompt (2.9 KB of the read tools' 24 KB). `schemas/*.output.json` keep them,
/// and the tests validate every answer against those.
fn drop_required(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("required");
            o.values_mut().for_each(drop_required);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_required),
        _ => {}
    }
}

/// Why a call could not be made at all (as opposed to a tool answering with an error).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unknown tool {0:?}; available tools are {1}")]
    UnknownTool(String, String),
    #[error(
        "{0:?} changes stored data and is available only when the server runs with --allow-writes"
    )]
    WritesDisabled(String),
    #[error(transparent)]
    Tool(#[from] Error),
}

/// Run tool `name` with `args`. Blocking: call it off the async executor.
pub fn call(
    d: &Dashboard,
    allow_writes: bool,
    name: &str,
    args: Option<Map<String, Value>>,
) -> std::result::Result<Value, CallError> {
    // Built once: every tool call goes through here.
    static SPECS: std::sync::LazyLock<Vec<ToolSpec>> = std::sync::LazyLock::new(specs);
    let specs = &*SPECS;
    let Some(spec) = specs.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = specs
            .iter()
            .filter(|s| allow_writes || !s.write)
            .map(|s| s.name)
            .collect();
        return Err(CallError::UnknownTool(name.to_owned(), names.join(", ")));
    };
    if spec.write && !allow_writes {
        return Err(CallError::WritesDisabled(name.to_owned()));
    }
    let out = run_spec(d, spec, args);
    if matches!(out, Err(CallError::Tool(Error::Cancelled))) {
        d.cancelled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    out
}

/// Run a tool found in the catalog: a write directly, a read through the result cache.
fn run_spec(
    d: &Dashboard,
    spec: &ToolSpec,
    args: Option<Map<String, Value>>,
) -> std::result::Result<Value, CallError> {
    // Alert state changes without a data write (deliveries): never cached.
    if spec.write || spec.name == "dashboard_get_alerts" {
        return Ok(guarded(spec.name, || (spec.run)(d, args))?);
    }
    // Read tools go through the result cache (see `cache` for what the key holds and why).
    let now = d.now();
    let fixed_window = matches!(
        spec.name,
        "dashboard_get_models" | "dashboard_get_timeline" | "dashboard_get_executions"
    ) && args
        .as_ref()
        .and_then(|a| a.get("end"))
        .is_some_and(|e| !e.is_null());
    let key = Key {
        tool: spec.name,
        args: Key::canonical(args.as_ref()),
        now: (!fixed_window).then_some(now),
        version: d.store.version()?,
        rollups: d.store.rollups(),
    };
    // The answer is computed for exactly the `now` of its key.
    let pinned = Dashboard {
        clock: Clock::Fixed(now),
        ..d.clone()
    };
    Ok(d.cache
        .get_or_run(key, || guarded(spec.name, || (spec.run)(&pinned, args)))?)
}

/// Run a tool, turning a panic (a bug) into an internal error for this one call: the server, the
/// other calls and the cache's waiters carry on.
fn guarded(tool: &str, run: impl FnOnce() -> Result<Value>) -> Result<Value> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Internal(format!(
            "{tool} stopped on an internal error ({what}); this is a bug: please report it with the arguments"
        )))
    })
}
