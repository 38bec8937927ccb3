//! Demo data: realistic, deterministic synthetic usage (skewed agent activity, diurnal and weekly
//! traffic, several models at plausible prices, errors with status codes, latencies that grow
//! with output length). The same settings and clock always give the same executions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::money::{self, Nanos};
use crate::store::Execution;
use crate::time::{format_utc, Millis, Window, DAY, HOUR};
use crate::wire::AnomalyMetric;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct DemoConfig {
    pub agents: usize,
    pub models: usize,
    pub days: u32,
    pub events: u64,
    pub seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            agents: 12,
            models: 6,
            days: 30,
            events: 50_000,
            seed: 42,
        }
    }
}

/// A model and its list prices in USD per million tokens (input, output), base latency and
/// milliseconds per output token.
struct ModelSpec {
    name: String,
    input: i64,
    output: i64,
    base_ms: f64,
    ms_per_token: f64,
    caches: bool,
}

/// Prices in micro-dollars per million tokens = nano-dollars per thousand tokens.
const MODELS: &[(&str, i64, i64, f64, f64, bool)] = &[
    (
        "claude-sonnet-4-5",
        3_000_000,
        15_000_000,
        600.0,
        12.0,
        true,
    ),
    ("gpt-4o-mini", 150_000, 600_000, 300.0, 6.0, false),
    ("claude-haiku-4-5", 1_000_000, 5_000_000, 350.0, 6.0, true),
    ("gpt-4o", 2_500_000, 10_000_000, 500.0, 10.0, false),
    ("gemini-2.5-flash", 300_000, 2_500_000, 300.0, 5.0, false),
    (
        "claude-opus-4-1",
        15_000_000,
        75_000_000,
        1200.0,
        25.0,
        true,
    ),
    ("gemini-2.5-pro", 1_250_000, 10_000_000, 900.0, 14.0, false),
    ("o3", 2_000_000, 8_000_000, 2500.0, 15.0, false),
    ("mistral-large-2", 2_000_000, 6_000_000, 500.0, 9.0, false),
    ("llama-3.3-70b", 900_000, 900_000, 400.0, 7.0, false),
];

const ROLES: &[(&str, &str)] = &[
    ("planner", "Planner"),
    ("researcher", "Researcher"),
    ("coder", "Coder"),
    ("reviewer", "Code Reviewer"),
    ("summarizer", "Summarizer"),
    ("support-bot", "Support Bot"),
    ("triage", "Ticket Triage"),
    ("sql-analyst", "SQL Analyst"),
    ("doc-writer", "Doc Writer"),
    ("qa-tester", "QA Tester"),
    ("translator", "Translator"),
    ("scheduler", "Scheduler"),
    ("extractor", "Data Extractor"),
    ("router", "Request Router"),
    ("critic", "Critic"),
    ("memory", "Memory Keeper"),
];

const ERRORS: &[(i64, &str, bool)] = &[
    // status, message, whether the prompt was billed
    (429, "rate_limit_exceeded", false),
    (429, "rate_limit_exceeded", false),
    (500, "internal_server_error", false),
    (503, "overloaded", false),
    (400, "invalid_request: context length exceeded", true),
    (504, "timeout", true),
];

fn models(n: usize) -> Vec<ModelSpec> {
    (0..n.max(1))
        .map(|i| {
            let (name, input, output, base_ms, ms_per_token, caches) = MODELS[i % MODELS.len()];
            let name = if i < MODELS.len() {
                name.to_owned()
            } else {
                format!("{name}-v{}", i / MODELS.len() + 1)
            };
            ModelSpec {
                name,
                input,
                output,
                base_ms,
                ms_per_token,
                caches,
            }
        })
        .collect()
}

fn agents(n: usize) -> Vec<(String, String)> {
    (0..n.max(1))
        .map(|i| {
            let (id, name) = ROLES[i % ROLES.len()];
            if i < ROLES.len() {
                (id.to_owned(), name.to_owned())
            } else {
                let k = i / ROLES.len() + 1;
                (format!("{id}-{k}"), format!("{name} {k}"))
            }
        })
        .collect()
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Traffic intensity at `t` relative to the busiest hour: a daytime peak at 14:00 UTC, a quiet
/// night, and weekends at 40 %.
pub fn intensity(t: Millis) -> f64 {
    let hour = (t.rem_euclid(DAY) / HOUR) as f64 + (t.rem_euclid(HOUR) as f64 / HOUR as f64);
    let day = 0.25
        + 0.75 * (0.5 + 0.5 * ((hour - 14.0) / 24.0 * 2.0 * std::f64::consts::PI).cos()).powf(1.5);
    // 1970-01-01 was a Thursday, so (days + 3) mod 7 counts from Monday = 0.
    let weekday = (t.div_euclid(DAY) + 3).rem_euclid(7); // 0 = Monday
    if weekday >= 5 {
        day * 0.4
    } else {
        day
    }
}

/// Generate the executions of `cfg` in the `cfg.days` days before `now`, oldest first.
pub fn generate(cfg: &DemoConfig, now: Millis) -> Vec<Execution> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let models = models(cfg.models);
    let agents = agents(cfg.agents);
    // Zipf-like activity: agent i is 1/(i+1)^1.1 as busy as the first.
    let weights: Vec<f64> = (0..agents.len())
        .map(|i| 1.0 / ((i + 1) as f64).powf(1.1))
        .collect();
    let weight_sum: f64 = weights.iter().sum();
    // Each agent uses one to three models, the first most.
    let mixes: Vec<Vec<usize>> = (0..agents.len())
        .map(|_| {
            let k = rng.random_range(1..=3.min(models.len()));
            let mut m: Vec<usize> = Vec::new();
            while m.len() < k {
                let c = rng.random_range(0..models.len());
                if !m.contains(&c) {
                    m.push(c);
                }
            }
            m
        })
        .collect();
    let span = i64::from(cfg.days.max(1)) * DAY;
    let start = now - span;
    let mut out = Vec::with_capacity(cfg.events as usize);
    for i in 0..cfg.events {
        let ts = loop {
            let t = start + rng.random_range(0..span);
            if rng.random::<f64>() < intensity(t) {
                break t;
            }
        };
        let a = {
            let mut x = rng.random::<f64>() * weight_sum;
            let mut k = 0;
            while k + 1 < weights.len() && x >= weights[k] {
                x -= weights[k];
                k += 1;
            }
            k
        };
        let mix = &mixes[a];
        let m = &models[mix[if rng.random::<f64>() < 0.7 {
            0
        } else {
            rng.random_range(0..mix.len())
        }]];
        let prompt = (1500.0 * (0.8 * normal(&mut rng)).exp())
            .round()
            .clamp(20.0, 200_000.0) as i64;
        let mut completion = (300.0 * (0.7 * normal(&mut rng)).exp())
            .round()
            .clamp(1.0, 16_000.0) as i64;
        let (mut cache_read, mut cache_write) = (0, 0);
        if m.caches && rng.random::<f64>() < 0.5 {
            cache_read = (prompt as f64 * rng.random_range(0.5..3.0)) as i64;
            if rng.random::<f64>() < 0.2 {
                cache_write = prompt / 2;
            }
        }
        let failed = rng.random::<f64>() < 0.03;
        let mut duration =
            (m.base_ms + completion as f64 * m.ms_per_token) * (0.25 * normal(&mut rng)).exp();
        let (mut error, mut status) = (None, None);
        let mut prompt_billed = prompt;
        if failed {
            let (code, msg, billed) = ERRORS[rng.random_range(0..ERRORS.len())];
            error = Some(msg.to_owned());
            status = Some(code);
            completion = 0;
            cache_read = 0;
            cache_write = 0;
            if !billed {
                prompt_billed = 0;
            }
            duration = if code == 504 {
                30_000.0
            } else {
                m.base_ms * 0.3 * (0.3 * normal(&mut rng)).exp()
            };
        }
        // Prices are nano-dollars per thousand tokens; cache reads at 10 %, writes at 125 %.
        let cost: Nanos = (prompt_billed * m.input
            + completion * m.output
            + cache_read * m.input / 10
            + cache_write * m.input * 5 / 4)
            / 1000;
        let (agent_id, agent_name) = &agents[a];
        out.push(Execution {
            id: format!("demo-{}-{i}", cfg.seed),
            ts,
            agent_id: agent_id.clone(),
            agent_name: Some(agent_name.clone()),
            model: m.name.clone(),
            prompt_tokens: if failed && status != Some(400) && status != Some(504) {
                0
            } else {
                prompt
            },
            completion_tokens: completion,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            cost,
            duration_ms: if rng.random::<f64>() < 0.02 {
                None
            } else {
                Some((duration * 10.0).round() / 10.0)
            },
            success: !failed,
            error,
            status_code: status,
            session_id: Some(format!("{agent_id}-s{}", (ts - start) / (2 * HOUR))),
            task_type: Some(agent_id.split('-').next().unwrap_or(agent_id).to_owned()),
            metadata: (i % 10 == 0).then(|| {
                json!({"region": if i % 20 == 0 { "us-east-1" } else { "eu-west-1" }}).to_string()
            }),
            revision: None,
            cost_source: Default::default(),
        });
    }
    out.sort_by_key(|e| e.ts);
    out
}

/// An execution as an ingest record (a JSONL line).
pub fn to_record(e: &Execution) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(e.id));
    o.insert("timestamp".into(), json!(format_utc(e.ts)));
    o.insert("agentId".into(), json!(e.agent_id));
    if let Some(n) = &e.agent_name {
        o.insert("agentName".into(), json!(n));
    }
    o.insert("model".into(), json!(e.model));
    o.insert("promptTokens".into(), json!(e.prompt_tokens));
    o.insert("completionTokens".into(), json!(e.completion_tokens));
    if e.cache_read_tokens > 0 {
        o.insert("cacheReadTokens".into(), json!(e.cache_read_tokens));
    }
    if e.cache_write_tokens > 0 {
        o.insert("cacheWriteTokens".into(), json!(e.cache_write_tokens));
    }
    // The exact decimal, written as a JSON number.
    o.insert(
        "cost".into(),
        serde_json::from_str::<Value>(&money_text(e.cost)).unwrap_or(json!(0)),
    );
    if let Some(d) = e.duration_ms {
        o.insert("durationMs".into(), json!(d));
    }
    o.insert("success".into(), json!(e.success));
    if let Some(x) = &e.error {
        o.insert("error".into(), json!(x));
    }
    if let Some(x) = e.status_code {
        o.insert("statusCode".into(), json!(x));
    }
    if let Some(x) = &e.session_id {
        o.insert("sessionId".into(), json!(x));
    }
    if let Some(x) = &e.task_type {
        o.insert("taskType".into(), json!(x));
    }
    if let Some(x) = &e.metadata {
        o.insert(
            "metadata".into(),
            serde_json::from_str(x).unwrap_or(Value::Null),
        );
    }
    Value::Object(o)
}

/// Nano-dollars as a plain decimal ("0.000123").
fn money_text(n: Nanos) -> String {
    let s = format!(
        "{}.{:09}",
        n / money::NANOS_PER_USD,
        n % money::NANOS_PER_USD
    );
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_owned()
}

/// The kinds of anomaly `generate_with_anomalies` injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// The agent stops: no calls for three busy hours.
    CallDrop,
    /// A retry loop: five times the calls (and so the cost and tokens) for one hour.
    Runaway,
    /// Ten times the usual cost per call for one hour (a pricier model behind the same name).
    CostSpike,
    /// 70 % of calls fail with 503 for one hour.
    ErrorBurst,
    /// Successful calls take three times as long for two hours.
    LatencyRegression,
}

/// One injected anomaly: what the detector should report at this agent, hour and metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub agent_id: String,
    /// Start of the UTC hour.
    pub hour_start: Millis,
    pub metric: AnomalyMetric,
    pub kind: AnomalyKind,
}

/// Demo executions with labelled anomalies (see `generate_with_anomalies`).
#[derive(Debug, Clone)]
pub struct Labelled {
    pub executions: Vec<Execution>,
    pub labels: Vec<Label>,
    /// Agents whose prompts (and so tokens and cost per call) grow slowly, to twice their size
    /// over the span: a drift that must not be reported as an anomaly.
    pub drifting: Vec<String>,
}

/// `generate` plus injected anomalies of every kind, labelled, and one slowly drifting agent.
/// Agents 0–5 get, in order: a call drop, a runaway loop, an error burst, a latency regression,
/// a cost spike, the drift (agents that do not exist are skipped). Each anomaly sits in the
/// agent's busiest weekday hours (UTC) of a three-day slot in the last 12 days, so that it has
/// a full 14-day history when `cfg.days` ≥ 26. The same settings and clock give the same data
/// and labels.
pub fn generate_with_anomalies(cfg: &DemoConfig, now: Millis) -> Labelled {
    let mut executions = generate(cfg, now);
    let ids: Vec<String> = agents(cfg.agents).into_iter().map(|(id, _)| id).collect();
    let span = i64::from(cfg.days.max(1)) * DAY;
    let start = now - span;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xA40_A11E5);
    let mut labels = Vec::new();
    let mut extra = Vec::new();
    let mut label = |agent: &str, hour: Millis, metric, kind| {
        labels.push(Label {
            agent_id: agent.to_owned(),
            hour_start: hour,
            metric,
            kind,
        })
    };

    // (agent index, kind, hours long, slot start in days before now)
    let plan = [
        (0, AnomalyKind::CallDrop, 3, 4),
        (1, AnomalyKind::Runaway, 1, 6),
        (2, AnomalyKind::ErrorBurst, 1, 8),
        (3, AnomalyKind::LatencyRegression, 2, 10),
        (4, AnomalyKind::CostSpike, 1, 12),
    ];
    for (a, kind, len, days_back) in plan {
        let Some(agent) = ids.get(a) else { continue };
        let slot = Window {
            start: (now - days_back * DAY).max(start),
            end: (now - (days_back - 3) * DAY).min(now),
        };
        let Some(first) = busiest_run(&executions, agent, &slot, len) else {
            continue;
        };
        let hours = Window {
            start: first,
            end: first + len * HOUR,
        };
        let hit = |e: &Execution| e.agent_id == *agent && hours.contains(e.ts);
        let before: Vec<Execution> = executions.iter().filter(|e| hit(e)).cloned().collect();
        let extra_before = extra.len();
        match kind {
            AnomalyKind::CallDrop => executions.retain(|e| !hit(e)),
            AnomalyKind::Runaway => {
                for e in executions.iter().filter(|e| hit(e)) {
                    for k in 1..5 {
                        let mut c = e.clone();
                        c.id = format!("{}-loop{k}", e.id);
                        c.ts = first + (e.ts - first + k * 719_993) % HOUR;
                        extra.push(c);
                    }
                }
            }
            AnomalyKind::CostSpike => {
                for e in executions.iter_mut().filter(|e| hit(e)) {
                    e.cost *= 10;
                }
            }
            AnomalyKind::ErrorBurst => {
                for e in executions.iter_mut().filter(|e| hit(e)) {
                    if rng.random::<f64>() < 0.7 {
                        e.success = false;
                        e.error = Some("overloaded".to_owned());
                        e.status_code = Some(503);
                        e.prompt_tokens = 0;
                        e.completion_tokens = 0;
                        e.cache_read_tokens = 0;
                        e.cache_write_tokens = 0;
                        e.cost = 0;
                        e.duration_ms = e.duration_ms.map(|d| (d * 0.1).round());
                    }
                }
            }
            AnomalyKind::LatencyRegression => {
                for e in executions.iter_mut().filter(|e| hit(e) && e.success) {
                    e.duration_ms = e.duration_ms.map(|d| d * 3.0);
                }
            }
        }
        let metrics: &[AnomalyMetric] = match kind {
            AnomalyKind::CallDrop => &[AnomalyMetric::Calls],
            AnomalyKind::Runaway => &[
                AnomalyMetric::Cost,
                AnomalyMetric::Calls,
                AnomalyMetric::Tokens,
            ],
            AnomalyKind::CostSpike => &[AnomalyMetric::Cost],
            AnomalyKind::ErrorBurst => &[AnomalyMetric::ErrorRate],
            AnomalyKind::LatencyRegression => &[AnomalyMetric::Latency],
        };
        let after: Vec<&Execution> = executions
            .iter()
            .filter(|e| hit(e))
            .chain(&extra[extra_before..])
            .collect();
        for h in 0..len {
            let hour = first + h * HOUR;
            let b = hour_totals(before.iter().filter(|e| e.ts / HOUR == hour / HOUR));
            let a = hour_totals(after.iter().copied().filter(|e| e.ts / HOUR == hour / HOUR));
            for m in metrics {
                if reportable(*m, &b, &a) {
                    label(agent, hour, *m, kind);
                }
            }
        }
    }

    // The drift: agent 5's context grows linearly to twice its size over the span.
    let mut drifting = Vec::new();
    if let Some(agent) = ids.get(5) {
        drifting.push(agent.clone());
        for e in executions.iter_mut().filter(|e| e.agent_id == *agent) {
            let growth = 1.0 + (e.ts - start) as f64 / span as f64;
            let grow = |n: i64| (n as f64 * growth).round() as i64;
            e.prompt_tokens = grow(e.prompt_tokens);
            e.cache_read_tokens = grow(e.cache_read_tokens);
            e.cache_write_tokens = grow(e.cache_write_tokens);
            e.cost = grow(e.cost);
        }
    }
    executions.extend(extra);
    executions.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
    labels.sort_by(|a, b| {
        (a.hour_start, &a.agent_id, a.metric).cmp(&(b.hour_start, &b.agent_id, b.metric))
    });
    Labelled {
        executions,
        labels,
        drifting,
    }
}

/// Calls, failures, cost, tokens and successful timed calls of some executions.
#[derive(Default)]
struct Sums {
    calls: i64,
    errors: i64,
    cost: Nanos,
    tokens: i64,
    ok_timed: i64,
}

fn hour_totals<'a>(executions: impl Iterator<Item = &'a Execution>) -> Sums {
    let mut s = Sums::default();
    for e in executions {
        s.calls += 1;
        s.errors += i64::from(!e.success);
        s.cost += e.cost;
        s.tokens +=
            e.prompt_tokens + e.completion_tokens + e.cache_read_tokens + e.cache_write_tokens;
        s.ok_timed += i64::from(e.success && e.duration_ms.is_some());
    }
    s
}

/// Is the change of an hour from `b` to `a` one the detector's documented rules (docs/anomalies.md)
/// require it to report? An injection too small for them (a loop of a cheap model adding cents,
/// an error burst in an hour of 12 calls) is not labelled.
fn reportable(metric: AnomalyMetric, b: &Sums, a: &Sums) -> bool {
    use crate::anomaly as d;
    match metric {
        AnomalyMetric::Cost => (a.cost - b.cost) as f64 >= d::MIN_COST_CHANGE,
        AnomalyMetric::Tokens => (a.tokens - b.tokens) as f64 >= d::MIN_TOKENS_CHANGE,
        AnomalyMetric::Calls if a.calls >= b.calls => {
            (a.calls - b.calls) as f64 >= d::MIN_CALLS_RISE
        }
        AnomalyMetric::Calls => (b.calls - a.calls) as f64 >= d::MIN_CALLS_DROP,
        AnomalyMetric::ErrorRate => a.calls >= d::MIN_RATE_CALLS && a.errors >= d::MIN_ERRORS,
        AnomalyMetric::Latency => a.ok_timed >= d::MIN_LATENCY_CALLS,
    }
}

/// The start of the `len` consecutive weekday (UTC) hours inside `slot` where `agent` made the
/// most calls (the earliest on a tie).
fn busiest_run(executions: &[Execution], agent: &str, slot: &Window, len: i64) -> Option<Millis> {
    let weekday = |h: Millis| !crate::anomaly::is_weekend(&crate::time::Zone::default(), h);
    let first = slot.start.div_euclid(HOUR) * HOUR + HOUR;
    let n = ((slot.end - first) / HOUR - len + 1).max(0);
    let mut calls = vec![0i64; (n + len) as usize];
    for e in executions.iter().filter(|e| e.agent_id == agent) {
        if e.ts >= first {
            if let Some(c) = calls.get_mut(((e.ts - first) / HOUR) as usize) {
                *c += 1;
            }
        }
    }
    (0..n)
        .filter(|i| (0..len).all(|k| weekday(first + (i + k) * HOUR)))
        .map(|i| {
            let total: i64 = calls[i as usize..(i + len) as usize].iter().sum();
            (total, -i)
        })
        .max()
        .map(|(_, i)| first - i * HOUR)
}
