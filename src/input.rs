//! Reading what callers send: tool arguments (strict about names, forgiving about the usual LLM
//! slips such as a number sent as a string) and the values of ingest records. Every error names
//! the field, the value given and what is allowed.

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Deserialize tool arguments into `T`, turning serde's complaint into an error that names the
/// field. `None` (no arguments) reads as `{}`.
pub fn parse_args<T: DeserializeOwned>(args: Option<Map<String, Value>>) -> Result<T> {
    // Explicit nulls mean "not given": LLMs send them for optional fields.
    let args: Map<String, Value> = args
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .collect();
    let value = Value::Object(args);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(rest) = inner.strip_prefix("unknown field `") {
            // "unknown field `x`, expected one of `a`, `b`" → field x.
            let name = rest.split('`').next().unwrap_or_default().to_owned();
            let allowed = rest
                .split_once(", expected ")
                .map(|x| x.1)
                .unwrap_or("no fields")
                .replace('`', "")
                .replace("one of ", "");
            return Error::invalid(
                cut(&name),
                format!(
                    "unknown field {}; allowed fields are {allowed}",
                    quoted(&name)
                ),
            );
        }
        if let Some(rest) = inner.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or_default().to_owned();
            return Error::invalid(name, "missing; this field is required");
        }
        let field = if path == "." { String::new() } else { path };
        Error::invalid(field, inner)
    })
}

/// Declares a closed set of strings as a Rust enum: case-insensitive parsing with aliases,
/// an error listing the allowed names, and a JSON Schema `enum` of the canonical names.
#[macro_export]
macro_rules! string_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident = $s:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($variant),+ }

        impl $name {
            /// The canonical names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($s),+];

            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $s),+ }
            }

            /// Parse a canonical name or an alias, ignoring case and surrounding space.
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.trim();
                $(if s.eq_ignore_ascii_case($s) $(|| s.eq_ignore_ascii_case($alias))* {
                    return Some(Self::$variant);
                })+
                None
            }

            /// The error message for a value that is none of them.
            pub fn not_one_of(given: &str) -> String {
                format!("{} is not one of {}", $crate::input::quoted(given), Self::NAMES.join(", "))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = serde_json::Value::deserialize(d)?;
                match &v {
                    serde_json::Value::String(s) => Self::parse(s).ok_or_else(|| serde::de::Error::custom(Self::not_one_of(s))),
                    other => Err(serde::de::Error::custom(format!("{} is not one of {}", $crate::input::shown(other), Self::NAMES.join(", ")))),
                }
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": [$($s),+] })
            }
        }
    };
}

/// A JSON value as an integer: a number without a fraction, or a string holding one.
pub fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
        }
        _ => None,
    }
}

/// A JSON value as a finite float: a number, or a string holding one.
pub fn float_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// A JSON value as a boolean: `true`/`false`, or the strings and numbers people use for them.
pub fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Characters of a given value quoted in an error message; the rest is cut (an error never echoes
/// a huge input whole: clients cap the size of what they read).
pub const QUOTED_CHARS: usize = 80;

/// Short rendering of a given value for an error message.
pub fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => quoted(s),
        v => cut(&v.to_string()),
    }
}

/// A given string quoted for an error message: at most `QUOTED_CHARS` characters of it, and its
/// length when it was cut.
pub fn quoted(s: &str) -> String {
    let h = head(s, QUOTED_CHARS);
    if h.len() < s.len() {
        format!("{h:?}… ({} characters)", s.chars().count())
    } else {
        format!("{s:?}")
    }
}

/// `s` cut to `QUOTED_CHARS` characters, with an ellipsis when it was longer.
pub fn cut(s: &str) -> String {
    cut_to(s, QUOTED_CHARS)
}

/// `s` cut to `n` characters, with an ellipsis when it was longer.
pub fn cut_to(s: &str, n: usize) -> String {
    let h = head(s, n);
    if h.len() < s.len() {
        format!("{h}…")
    } else {
        s.to_owned()
    }
}

/// The first `n` characters of `s` (all of it when shorter).
pub fn head(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn head_bytes(s: &str, max: usize) -> &str {
    let end = (0..=max.min(s.len()))
        .rev()
        .find(|&b| s.is_char_boundary(b))
        .unwrap_or(0);
    &s[..end]
}

/// What is wrong with `s` as a key (an agent id, a model, a budget scope), if anything: keys may
/// not be blank, start or end with white space, or hold control characters, so that no
/// invisible difference makes two keys of one, and every agent can have a budget.
pub fn key_problem(s: &str) -> Option<&'static str> {
    if s.trim().is_empty() || s.trim() != s {
        Some("is blank or starts or ends with white space")
    } else if s.chars().any(char::is_control) {
        Some("holds a control character")
    } else {
        None
    }
}

/// `deserialize_with` for an optional integer that may arrive as a string.
pub fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    let digits = match &v {
        Value::Number(n) => n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0 && f > 0.0),
        Value::String(s) => {
            let s = s.trim();
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    };
    match int_of(&v) {
        Some(i) if i >= 0 => Ok(Some(i as u64)),
        None if digits => Err(de::Error::custom(format!(
            "{} is too large; the largest integer allowed is {}",
            shown(&v),
            i64::MAX
        ))),
        _ => Err(de::Error::custom(format!(
            "{} is not a non-negative integer",
            shown(&v)
        ))),
    }
}

/// `deserialize_with` for an optional number that may arrive as a string.
pub fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    float_of(&v)
        .map(Some)
        .ok_or_else(|| de::Error::custom(format!("{} is not a number", shown(&v))))
}

/// `deserialize_with` for an optional string; numbers are taken as their decimal text.
pub fn lenient_string<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(de::Error::custom(format!(
            "{} is not a string",
            shown(&other)
        ))),
    }
}

/// Check `value` lies in `lo..=hi` for `field`.
pub fn check_range(field: &str, value: u64, lo: u64, hi: u64) -> Result<u64> {
    if value < lo || value > hi {
        return Err(Error::invalid(
            field,
            format!("{value} is out of range; allowed is {lo}..={hi}"),
        ));
    }
    Ok(value)
}
