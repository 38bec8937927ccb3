//! Posting a notice to a rule's webhook: the body in the rule's format, the signature header,
//! one attempt with a timeout, and the retry schedule.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wire::{AlertFormat, AlertNotice, NoticeKind};

use super::rules::Rule;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body, keyed by the rule's secret>`.
pub const SIGNATURE_HEADER: &str = "X-Dashboard-Signature";
/// The header carrying the event id (the same on every retry).
pub const EVENT_HEADER: &str = "X-Dashboard-Event";

/// The bytes posted for `notice` in `rule`'s format.
pub fn body(rule: &Rule, notice: &AlertNotice) -> Vec<u8> {
    match rule.format {
        AlertFormat::Generic => serde_json::to_vec(notice).unwrap_or_default(),
        AlertFormat::Slack => {
            serde_json::to_vec(&serde_json::json!({ "text": slack_text(notice) }))
                .unwrap_or_default()
        }
    }
}

/// One line for a Slack channel.
pub fn slack_text(n: &AlertNotice) -> String {
    // Escaped as Slack asks (`&`, `<`, `>`): an agent id such as `<!channel>` stays text.
    let summary = n
        .summary
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    match n.kind {
        NoticeKind::Fired => format!(":rotating_light: [dashboard-mcp] {summary}"),
        NoticeKind::Resolved => format!(":white_check_mark: [dashboard-mcp] Resolved: {summary}"),
        NoticeKind::Test => format!(":wave: [dashboard-mcp] {summary}"),
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` keyed by `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// How an attempt went: the receiver's 2xx status, or the status (if any) and why it failed.
pub type Sent = std::result::Result<u16, (Option<u16>, String)>;

/// A blocking HTTP client whose every request gives up after `timeout`.
pub fn client(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A redirect would turn the POST into a GET and send the signature elsewhere.
        .max_redirects(0)
        .user_agent(concat!("dashboard-mcp/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Post `notice` to `rule`'s webhook once.
pub fn post(agent: &ureq::Agent, rule: &Rule, notice: &AlertNotice) -> Sent {
    let body = body(rule, notice);
    let mut req = agent
        .post(&rule.url)
        .header("Content-Type", "application/json")
        .header(EVENT_HEADER, notice.id.to_string());
    if let Some(secret) = &rule.secret {
        req = req.header(SIGNATURE_HEADER, signature(secret, &body));
    }
    match req.send(&body[..]) {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                Ok(status)
            } else {
                Err((Some(status), format!("the receiver answered HTTP {status}")))
            }
        }
        Err(e) => Err((None, e.to_string())),
    }
}

/// The wait before retry `attempt` (1 for the first retry): `first` doubled each time, at most
/// five minutes.
pub fn backoff(first: Duration, attempt: u32) -> Duration {
    let cap = Duration::from_secs(300);
    first
        .checked_mul(1u32 << attempt.saturating_sub(1).min(16))
        .unwrap_or(cap)
        .min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AlertCondition;

    #[test]
    fn slack_text_escapes_what_slack_would_read_as_markup() {
        let n = AlertNotice {
            id: 1,
            kind: NoticeKind::Fired,
            rule: "r".into(),
            condition: AlertCondition::Cost,
            key: "cost".into(),
            agent_id: None,
            model: None,
            summary: "Cost of agent <!channel> & co".into(),
            value: 0.0,
            threshold: 0.0,
            severity: None,
            at: String::new(),
            since: None,
        };
        assert_eq!(
            slack_text(&n),
            ":rotating_light: [dashboard-mcp] Cost of agent &lt;!channel&gt; &amp; co"
        );
    }

    #[test]
    fn retries_wait_one_second_doubled_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=11)
            .map(|a| backoff(Duration::from_secs(1), a).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        // Waits before attempts 2..=10: the README's "about 8.5 minutes".
        assert_eq!(waits[..9].iter().sum::<u64>(), 511);
    }
}
