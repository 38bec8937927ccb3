//! Sources: what agents already write, turned into ingest records. `claude` and `codex` read
//! the two CLIs' session logs, `logs` finds their files and reads each on from where the last
//! import stopped (the store keeps a cursor per file); `otlp` decodes OpenTelemetry GenAI spans.

pub mod claude;
pub mod codex;
pub mod logs;
pub mod otlp;
pub mod watch;

use sha2::{Digest, Sha256};

use crate::ingest::{MAX_AGENT_ID_CHARS, MAX_ID_CHARS};

/// What one source line is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// An ingest record (a JSON object in `schemas/ingest-record.json`'s shape).
    Record(serde_json::Map<String, serde_json::Value>),
    /// A line that carries no usage (a user message, a tool result, metadata).
    Skip,
    /// A line that should carry usage but cannot be read: the reason, naming the field.
    Bad(String),
}

/// The log formats `import --from` and `serve --watch` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    ClaudeCode,
    Codex,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::ClaudeCode => "claude-code",
            Kind::Codex => "codex",
        }
    }

    pub fn parse(s: &str) -> Result<Kind, String> {
        match s.trim() {
            "claude-code" | "claude" => Ok(Kind::ClaudeCode),
            "codex" => Ok(Kind::Codex),
            other => Err(format!(
                "{other:?} is not a log source; allowed are claude-code and codex"
            )),
        }
    }
}

/// `s` if it fits an id field (128 characters), else its first 100 characters and a hash of
/// the whole, so distinct long names stay distinct.
pub fn id_within_cap(s: &str) -> String {
    debug_assert_eq!(MAX_ID_CHARS, MAX_AGENT_ID_CHARS);
    if s.chars().count() <= MAX_ID_CHARS {
        return s.to_owned();
    }
    let head: String = s.chars().take(100).collect();
    let hash = Sha256::digest(s.as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}~{hex}")
}

/// `s` cut to `max` characters.
pub fn text_within(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The project name Claude Code gives a working directory: its path with every character
/// other than a letter, digit or `-` written as `-` (`/home/a/shop` → `-home-a-shop`). Codex
/// projects are named the same way, so one directory has one name in both.
pub fn project_of_path(cwd: &str) -> String {
    cwd.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_keep_a_hash_of_the_whole() {
        let a = "x".repeat(200);
        let b = format!("{}y", "x".repeat(199));
        assert_eq!(id_within_cap("short"), "short");
        let (ia, ib) = (id_within_cap(&a), id_within_cap(&b));
        assert_ne!(ia, ib);
        // 100 characters, "~", 16 hex digits.
        assert_eq!(ia.chars().count(), 117);
    }

    #[test]
    fn projects_are_named_as_claude_code_names_them() {
        assert_eq!(project_of_path("/home/a/my_shop.v2"), "-home-a-my-shop-v2");
    }

    #[test]
    fn kinds_parse_and_refuse_with_the_allowed_names() {
        assert_eq!(Kind::parse("codex"), Ok(Kind::Codex));
        assert_eq!(Kind::parse("claude-code"), Ok(Kind::ClaudeCode));
        let e = Kind::parse("cursor").unwrap_err();
        assert!(e.contains("claude-code and codex"), "{e}");
    }
}
