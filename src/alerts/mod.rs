//! Alerts: rules evaluated when data arrives and on a timer, each crossing recorded once and
//! posted to the rule's webhook with bounded retries.
//!
//! One thread (`Alerts::start`, run by `serve` in every mode) ticks every `tick`:
//! - it evaluates the rules when the store's version changed (any writer: this server's ingest,
//!   an import from another process, another replica), when the rules changed, or when
//!   `interval` passed (the time-driven rules: trailing windows, budget periods), at most once
//!   per `min_gap`;
//! - it claims the deliveries that are due and posts each on a thread of its own, so a receiver
//!   that never answers holds one thread for `timeout` and nothing else: ingest never waits for
//!   a webhook.
//!
//! Everything it decides is in the store (`store::alerts`), so a restart goes on where it
//! stopped: conditions already firing do not fire again, and deliveries claimed but not
//! finished are tried again once their lease ends.

pub mod deliver;
pub mod eval;
pub mod rules;

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::dashboard::Dashboard;
use crate::error::{Error, Result};
use crate::store::alerts::{AlertEvent, Attempt};
use crate::store::Version;
use crate::time::{format_utc, Millis};
use crate::wire::{AlertNotice, NoticeKind};

use deliver::Sent;
use rules::Rule;

/// How long stopping waits for deliveries in flight.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// How the alert thread paces itself.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// How often it looks for changes and due deliveries.
    pub tick: Duration,
    /// The least time between two evaluations.
    pub min_gap: Duration,
    /// Evaluate at least this often even when no data arrives.
    pub interval: Duration,
    /// One delivery attempt gives up after this long.
    pub timeout: Duration,
    /// The wait before the first retry; doubled for each next one (at most 5 minutes).
    pub first_retry: Duration,
    /// Attempts per delivery, the first included.
    pub attempts: u32,
    /// Deliveries in flight at once.
    pub in_flight: usize,
}

impl Default for AlertConfig {
    /// 10 attempts over about 8.5 minutes (waits of 1, 2, 4, … 256 s).
    fn default() -> Self {
        AlertConfig {
            tick: Duration::from_millis(250),
            min_gap: Duration::from_secs(1),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            first_retry: Duration::from_secs(1),
            attempts: 10,
            in_flight: 32,
        }
    }
}

/// The wall clock in milliseconds (deliveries are scheduled on it, whatever `--now` says).
pub fn wall_now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Evaluate every rule once, at the dashboard's now; record what crossed or cleared. Returns
/// the events written. A rule whose evaluation fails is skipped (and logged), never cleared.
pub fn evaluate(d: &Dashboard) -> Result<usize> {
    let log = d.store.alerts();
    let stored = log.rules()?;
    if stored.is_empty() {
        return Ok(0);
    }
    let firing = log.firing()?;
    let (now, due) = (d.now(), wall_now());
    let mut changes = Vec::new();
    for s in &stored {
        let rule = match Rule::from_spec(&s.spec) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(rule = %s.id, error = %e, "skipping an alert rule");
                continue;
            }
        };
        let mine: Vec<_> = firing.iter().filter(|f| f.rule == rule.id).collect();
        match eval::observe(d, &rule, now) {
            Ok(seen) => changes.extend(eval::transitions(&rule, seen, &mine, now, due)),
            Err(e) => {
                tracing::warn!(rule = %rule.id, error = %e, "evaluating an alert rule failed")
            }
        }
    }
    log.record(&changes)
}

/// Post a `test` notice to rule `id`'s webhook now, once; the receiver's status, or why not.
pub fn test(d: &Dashboard, id: &str, timeout: Duration) -> Result<Sent> {
    let rule = d
        .store
        .alerts()
        .rules()?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| {
            Error::invalid("id", format!("no alert rule {}", crate::input::quoted(id)))
        })?;
    let rule = Rule::from_spec(&rule.spec)?;
    let shown = rule.shown();
    let notice = AlertNotice {
        id: 0,
        kind: NoticeKind::Test,
        rule: rule.id.clone(),
        condition: first_condition(&rule),
        key: "test".into(),
        agent_id: rule.agent_id.clone(),
        model: rule.model.clone(),
        summary: format!(
            "Test of alert rule {} ({} for {}): this webhook receives its alerts.",
            rule.id,
            shown.conditions.join(", "),
            rule.scope()
        ),
        value: 0.0,
        threshold: 0.0,
        severity: None,
        at: format_utc(d.now()),
        since: None,
    };
    Ok(deliver::post(&deliver::client(timeout), &rule, &notice))
}

fn first_condition(rule: &Rule) -> crate::wire::AlertCondition {
    use crate::wire::AlertCondition::*;
    if rule.budget_threshold {
        BudgetThreshold
    } else if rule.budget_projection {
        BudgetProjection
    } else if rule.anomaly_severity.is_some() {
        Anomaly
    } else if rule.error_rate_percent.is_some() {
        ErrorRate
    } else {
        Cost
    }
}

/// The alert thread of a server (`serve`).
pub struct Alerts {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Alerts {
    pub fn start(d: Dashboard, config: AlertConfig) -> Alerts {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("alerts".into())
            .spawn(move || Runner::new(d, config).run(stopped))
            .expect("a thread can be started");
        Alerts { stop, thread }
    }

    /// Stop the thread; deliveries in flight are finished by their own threads or tried again
    /// after their lease by the next start.
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// A delivery attempt's event and how it went, reported by its thread.
type Done = (AlertEvent, Sent);

struct Runner {
    d: Dashboard,
    config: AlertConfig,
    agent: ureq::Agent,
    done: (mpsc::Sender<Done>, mpsc::Receiver<Done>),
    in_flight: usize,
    seen: Option<(Version, String)>,
    evaluated: Option<Instant>,
}

impl Runner {
    fn new(d: Dashboard, config: AlertConfig) -> Runner {
        Runner {
            agent: deliver::client(config.timeout),
            d,
            config,
            done: mpsc::channel(),
            in_flight: 0,
            seen: None,
            evaluated: None,
        }
    }

    fn run(mut self, stopped: mpsc::Receiver<()>) {
        while stopped.recv_timeout(self.config.tick) == Err(mpsc::RecvTimeoutError::Timeout) {
            if let Err(e) = self.step() {
                tracing::warn!(error = %e, "alerts: a step failed; trying again at the next tick");
            }
        }
        // Record what the deliveries in flight make of it, for a moment: an answer that comes
        // after is lost, and that delivery is made again after its lease (at least once).
        let until = Instant::now() + STOP_WAIT;
        while self.in_flight > 0 {
            let left = until.saturating_duration_since(Instant::now());
            let Ok((event, sent)) = self.done.1.recv_timeout(left) else {
                break;
            };
            self.in_flight -= 1;
            if let Err(e) = self.finished(&event, sent) {
                tracing::warn!(error = %e, "alerts: recording a delivery failed");
            }
        }
    }

    fn step(&mut self) -> Result<()> {
        while let Ok((event, sent)) = self.done.1.try_recv() {
            self.in_flight -= 1;
            self.finished(&event, sent)?;
        }
        let log = self.d.store.alerts();
        let stored = log.rules()?;
        if stored.is_empty() && self.in_flight == 0 {
            self.seen = None;
            return Ok(());
        }
        let rules: HashMap<String, String> = stored.into_iter().map(|r| (r.id, r.spec)).collect();
        let mut specs: Vec<_> = rules.iter().map(|(k, v)| format!("{k}={v}")).collect();
        specs.sort();
        let seen = (self.d.store.version()?, specs.join("\n"));
        let since = self.evaluated.map(|t| t.elapsed());
        let due = match since {
            None => true,
            Some(s) if s < self.config.min_gap => false,
            Some(s) => self.seen.as_ref() != Some(&seen) || s >= self.config.interval,
        };
        if due && !rules.is_empty() {
            self.evaluated = Some(Instant::now());
            // The version from before: data that lands during the evaluation is a change.
            self.seen = Some(seen);
            if let Err(e) = evaluate(&self.d) {
                tracing::warn!(error = %e, "evaluating the alert rules failed; delivering anyway");
            }
        }
        self.deliver(&rules)
    }

    /// Claim what is due and post each on a thread of its own.
    fn deliver(&mut self, rules: &HashMap<String, String>) -> Result<()> {
        let room = self.config.in_flight.saturating_sub(self.in_flight);
        if room == 0 {
            return Ok(());
        }
        let now = wall_now();
        let lease = now + self.config.timeout.as_millis() as Millis + 30_000;
        for event in self.d.store.alerts().claim(now, lease, room)? {
            let rule = rules.get(&event.rule).map(|s| Rule::from_spec(s));
            let notice = serde_json::from_str::<AlertNotice>(&event.notice);
            let (Some(Ok(rule)), Ok(mut notice)) = (rule, notice) else {
                let why = "its rule is gone or unreadable".to_owned();
                self.finished(&event, Err((None, why)))?;
                continue;
            };
            notice.id = event.id;
            let (agent, done) = (self.agent.clone(), self.done.0.clone());
            self.in_flight += 1;
            std::thread::spawn(move || {
                let sent = deliver::post(&agent, &rule, &notice);
                let _ = done.send((event, sent));
            });
        }
        Ok(())
    }

    fn finished(&self, event: &AlertEvent, sent: Sent) -> Result<()> {
        let n = event.attempts + 1;
        let attempt = match sent {
            Ok(status) => Attempt::Delivered { status },
            Err((status, error)) if n >= self.config.attempts => Attempt::Failed { status, error },
            Err((status, error)) => Attempt::Retry {
                status,
                error,
                next: wall_now()
                    + deliver::backoff(self.config.first_retry, n).as_millis() as Millis,
            },
        };
        if let Attempt::Delivered { .. } = attempt {
            tracing::info!(event = event.id, rule = %event.rule, "alert delivered");
        } else {
            tracing::warn!(event = event.id, rule = %event.rule, ?attempt, "alert delivery failed");
        }
        self.d.store.alerts().attempted(event.id, &attempt)
    }
}
