//! The library's one error type: bad input (the caller's fault, always named by field) versus
//! failures of the store or the host (ours, never shown in detail to a remote caller).

use std::fmt;

/// Every fallible operation of the library returns this.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something we cannot accept. `field` names the input, `message` says what
    /// was given and what is allowed.
    #[error("{}", InvalidDisplay(.field, .message))]
    Invalid { field: String, message: String },
    /// The store failed (I/O, corruption, a full disk, a lost connection): the engine's own
    /// message. Not the caller's fault.
    #[error("store error: {0}")]
    Store(String),
    /// Anything else that is ours: I/O on files we were asked to read, a background task panic.
    #[error("{0}")]
    Internal(String),
    /// The request was given up (its client went away or its time ran out) and its work
    /// stopped (`cancel`). Nobody reads this answer.
    #[error("the request was cancelled: its client went away or its time ran out")]
    Cancelled,
}

/// The longest message of an invalid-input error, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 2048;
/// The longest field name of an invalid-input error, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// `s` cut to at most `max` bytes on a character boundary, with an ellipsis when cut.
fn bounded(mut s: String, max: usize) -> String {
    if s.len() > max {
        let keep = crate::input::head_bytes(&s, max - '…'.len_utf8()).len();
        s.truncate(keep);
        s.push('…');
    }
    s
}

struct InvalidDisplay<'a>(&'a String, &'a String);

impl fmt::Display for InvalidDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(self.1)
        } else if self.0.chars().any(|c| c.is_control() || c == ':') {
            // A field named by the caller (an unknown one) that would blur where it ends.
            write!(f, "{:?}: {}", self.0, self.1)
        } else {
            write!(f, "{}: {}", self.0, self.1)
        }
    }
}

impl Error {
    /// Bad input in `field`. The message is cut to `MAX_MESSAGE_BYTES` and the field name to
    /// `MAX_FIELD_BYTES`: the last guard against echoing a huge input (messages quote bounded
    /// prefixes of what they were given, `input::quoted`, but a library's text may not).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: bounded(field.into(), MAX_FIELD_BYTES),
            message: bounded(message.into(), MAX_MESSAGE_BYTES),
        }
    }

    /// Is this the caller's fault (as opposed to ours)?
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }

    /// The offending field, for bad input.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } if !field.is_empty() => Some(field),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(format!("i/o error: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
