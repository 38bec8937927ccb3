//! Model-name matching that tolerates provider prefixes, region prefixes, version and date
//! suffixes, so that the name an agent logs (`claude-sonnet-4-20250514`,
//! `anthropic/claude-3-5-sonnet-20241022`, `us.anthropic.claude-3-7-sonnet-20250219-v1:0`) finds
//! LiteLLM's key for it.
//!
//! Two normal forms, tried after the exact key, each computed the same way for the query and for
//! every table key:
//! - the *base* form: lowercased; everything up to the last `/` dropped (`openai/`,
//!   `bedrock/us-gov-west-1/`, `openrouter/anthropic/` …); leading dotted segments made only of
//!   letters, `-` and `_` dropped (`us.`, `eu.`, `global.`, `us-gov.`, `anthropic.`, `meta.` …; a
//!   segment with a digit, like `gpt-4` in `gpt-4.1`, stops it); a trailing Bedrock version
//!   `-v1:0` (`-v<n>:<n>` or `-<n>:<n>`) dropped. A dated name stays dated, so
//!   `openai/gpt-4o-2024-05-13` finds that snapshot's own price.
//! - the *family* form: the base form without a trailing `-latest`, `@…` (Vertex's
//!   `@20240620`, `@default`) or date (`-20250514`, `-2024-08-06`), and with a `.` between two
//!   digits made a `-` (`claude-haiku-4.5` and `claude-haiku-4-5` are one family).
//!
//! Several table keys share a normal form (the same model from many providers). The one kept is
//! the first-party provider's (the model's maker, see FIRST_PARTY); among resellers one with a
//! cache-read price; then the shortest key, then the first in byte order: deterministic whatever
//! the order the table was read in.
//!
//! A name is looked up as: the exact key; the base form's key if first-party; the family form's
//! key if first-party; the base form's key; the family form's key. So a dated snapshot keeps its
//! own price where its maker lists it, and the maker's undated entry beats a reseller's dated one
//! (`claude-sonnet-4.5` finds Anthropic's `claude-sonnet-4-5`, not a gateway's
//! `…/claude-sonnet-4.5`).

use super::ModelPrice;

/// `litellm_provider` values of the models' makers, preferred when several keys share a name.
/// (`vertex_ai-language-models` is Google's own Gemini on Vertex; Vertex's Claude is
/// `vertex_ai-anthropic_models` and is not first-party.)
const FIRST_PARTY: &[&str] = &[
    "anthropic",
    "openai",
    "text-completion-openai",
    "gemini",
    "vertex_ai-language-models",
    "mistral",
    "codestral",
    "text-completion-codestral",
    "xai",
    "deepseek",
    "cohere",
    "cohere_chat",
    "ai21",
    "meta",
    "amazon_nova",
    "moonshot",
    "dashscope",
    "zai",
    "minimax",
];

/// Whether `provider` is the maker of its models (FIRST_PARTY).
pub(crate) fn is_first_party(provider: Option<&str>) -> bool {
    provider.is_some_and(|p| FIRST_PARTY.contains(&p))
}

/// Ordering of candidate keys for one normal form, smaller preferred: first-party first; among
/// the others, one with a cache-read price (a reseller's entry without one would bill cache
/// reads at the full input price); then the shortest key, then byte order.
pub(crate) fn preference<'a>(key: &'a str, price: &ModelPrice) -> (bool, bool, usize, &'a str) {
    let first_party = is_first_party(price.provider());
    (
        !first_party,
        !first_party && price.cache_read.is_none(),
        key.len(),
        key,
    )
}

/// The base form (see the module doc).
pub(crate) fn base_form(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let mut s = lower.rsplit('/').next().unwrap_or("");
    while let Some((head, rest)) = s.split_once('.') {
        let vendor_like = !head.is_empty()
            && head
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_');
        if !vendor_like || rest.is_empty() {
            break;
        }
        s = rest;
    }
    strip_bedrock_version(s).to_string()
}

/// The family form of a base form (see the module doc).
pub(crate) fn family_form(base: &str) -> String {
    let mut s = base;
    if let Some(i) = s.rfind('@') {
        if i > 0 {
            s = &s[..i];
        }
    }
    s = s.strip_suffix("-latest").unwrap_or(s);
    let s = strip_date(s);
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let between_digits = prev.is_some_and(|p| p.is_ascii_digit())
            && chars.peek().is_some_and(|n| n.is_ascii_digit());
        out.push(if c == '.' && between_digits { '-' } else { c });
        prev = Some(c);
    }
    out
}

/// `claude-3-5-sonnet-20241022-v2:0` → `claude-3-5-sonnet-20241022`; `gpt-oss-120b-1:0` →
/// `gpt-oss-120b`.
fn strip_bedrock_version(s: &str) -> &str {
    let Some(i) = s.rfind('-') else { return s };
    let tail = &s[i + 1..];
    let tail = tail.strip_prefix('v').unwrap_or(tail);
    let is_version = tail
        .split_once(':')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && all_digits(a) && all_digits(b));
    if is_version && i > 0 {
        &s[..i]
    } else {
        s
    }
}

/// A trailing `-YYYYMMDD` or `-YYYY-MM-DD` (a year 20xx) dropped.
fn strip_date(s: &str) -> &str {
    // On bytes: a name may hold non-ASCII characters, and a cut is only made just before an
    // ASCII '-', which is always a character boundary.
    let b = s.as_bytes();
    let n = b.len();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    // -YYYY-MM-DD
    if n > 11 {
        let t = &b[n - 11..];
        if t[0] == b'-'
            && t[5] == b'-'
            && t[8] == b'-'
            && t[1..3] == *b"20"
            && digits(&t[1..5])
            && digits(&t[6..8])
            && digits(&t[9..11])
        {
            return &s[..n - 11];
        }
    }
    // -YYYYMMDD
    if n > 9 && b[n - 9] == b'-' && b[n - 8..n - 6] == *b"20" && digits(&b[n - 8..]) {
        return &s[..n - 9];
    }
    s
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}
