//! The guard in front of every route: the request-target limit ([`MAX_URI_BYTES`]); then, on
//! every route but `/healthz`, DNS-rebinding protection (the `Host` must be
//! one we serve under, a browser `Origin` must be allowed), the bearer token compared in constant
//! time, the request timeout, and CORS for the allowed origins (a browser page of an allowed
//! origin may read the API; its preflight needs no token, as browsers send none).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;

/// The longest request target (path and query string) served; a longer one is a 414 naming the
/// field `query` (or `path`). Longer than any real query here, far below hyper's own 65,534.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Host names a loopback server answers to.
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

pub(crate) struct Security {
    /// SHA-256 of the token: comparing digests takes the same time whatever the guess's length.
    token: Option<[u8; 32]>,
    /// `None`: any `Host` (a public bind, which the token protects).
    hosts: Option<Vec<String>>,
    origins: Vec<OriginRule>,
    timeout: Duration,
}

/// An allowed browser origin; `port: None` matches any port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginRule {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Security {
    pub fn new(
        token: Option<String>,
        loopback_bind: bool,
        allowed_origins: &[String],
        allowed_hosts: &[String],
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut origins = Vec::new();
        for scheme in ["http", "https"] {
            for host in ["localhost", "127.0.0.1", "[::1]"] {
                origins.push(OriginRule {
                    scheme: scheme.into(),
                    host: host.into(),
                    port: None,
                });
            }
        }
        for o in allowed_origins {
            origins.push(parse_origin(o, true).ok_or_else(|| {
                format!("--allowed-origin {o:?} is not an origin such as https://app.example, https://app.example:8443 or http://app.example:*")
            })?);
        }
        let hosts = if loopback_bind || !allowed_hosts.is_empty() {
            let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
            hosts.extend(allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()));
            Some(hosts)
        } else {
            None
        };
        Ok(Security {
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            hosts,
            origins,
            timeout,
        })
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The `Host` names accepted, `None` for any (also handed to rmcp's own check).
    pub fn allowed_hosts(&self) -> Option<&[String]> {
        self.hosts.as_deref()
    }

    fn check(&self, headers: &HeaderMap, preflight: bool) -> Result<(), ApiError> {
        if let Some(hosts) = &self.hosts {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(host_name);
            if !host.is_some_and(|h| hosts.contains(&h)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_host",
                    "the Host header is not one this server answers to (DNS-rebinding protection); use --allowed-host to add one",
                ));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .ok()
                .and_then(|o| parse_origin(o, false))
                .is_some_and(|o| {
                    self.origins.iter().any(|r| {
                        r.scheme == o.scheme
                            && r.host == o.host
                            && r.port.is_none_or(|p| Some(p) == o.port)
                    })
                });
            if !allowed {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_origin",
                    "the Origin of this request is not allowed (DNS-rebinding protection); use --allowed-origin to allow it",
                ));
            }
        }
        if let Some(expected) = self.token.as_ref().filter(|_| !preflight) {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    let (scheme, token) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                });
            let ok = given.is_some_and(|t| {
                let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
                bool::from(digest.ct_eq(expected))
            });
            if !ok {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    if given.is_some() {
                        "the bearer token is wrong"
                    } else {
                        "this server needs a bearer token: send Authorization: Bearer <token>"
                    },
                ));
            }
        }
        Ok(())
    }
}

/// The middleware: `/healthz` passes untouched; everything else is checked, then given
/// `timeout` to start its response.
pub(crate) async fn guard(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    if let Some(e) = uri_too_long(req.uri()) {
        return e.into_response();
    }
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let preflight = req.method() == Method::OPTIONS
        && origin.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if let Err(e) = sec.check(req.headers(), preflight) {
        tracing::debug!(path = req.uri().path(), code = e.code, "request refused");
        return e.into_response();
    }
    let mut response = if preflight {
        preflight_response()
    } else {
        match tokio::time::timeout(sec.timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than {} s; narrow the window or try again",
                    sec.timeout.as_secs_f64()
                ),
            )
            .into_response(),
        }
    };
    if let Some(origin) = origin {
        // Only reached with an allowed origin: `check` refused the others.
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate"),
        );
    }
    response
}

/// The 414 for a request target over [`MAX_URI_BYTES`].
fn uri_too_long(uri: &axum::http::Uri) -> Option<ApiError> {
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target <= MAX_URI_BYTES {
        return None;
    }
    let query = uri.query().map_or(0, str::len);
    let field = if query > 0 { "query" } else { "path" };
    let mut e = ApiError::new(
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
        format!(
            "{field}: the request target (path and query string) is {target} bytes long (the query string {query}); this server accepts at most {MAX_URI_BYTES}"
        ),
    );
    e.field = Some(field.into());
    Some(e)
}

fn preflight_response() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}

/// The host name of a `Host` header (no port, no brackets), lower case.
fn host_name(authority: &str) -> Option<String> {
    let a: axum::http::uri::Authority = authority.trim().parse().ok()?;
    Some(a.host().trim_matches(['[', ']']).to_ascii_lowercase())
}

/// Parse `scheme://host[:port]`. The port defaults to the scheme's; with `rule`, `:*` means any.
fn parse_origin(s: &str, rule: bool) -> Option<OriginRule> {
    let s = s.trim();
    let s = if rule { s.trim_end_matches('/') } else { s };
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty() || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let (inner, tail) = after.split_once(']')?;
        (format!("[{}]", inner.to_ascii_lowercase()), tail)
    } else {
        let colon = rest.find(':').unwrap_or(rest.len());
        (rest[..colon].to_ascii_lowercase(), &rest[colon..])
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        },
        Some("*") if rule => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => return None,
    };
    if host.is_empty() {
        return None;
    }
    Some(OriginRule { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(scheme: &str, host: &str, port: Option<u16>) -> Option<OriginRule> {
        Some(OriginRule {
            scheme: scheme.into(),
            host: host.into(),
            port,
        })
    }

    #[test]
    fn origins_parse_with_default_and_wildcard_ports() {
        assert_eq!(
            parse_origin("https://App.example", false),
            rule("https", "app.example", Some(443))
        );
        assert_eq!(
            parse_origin("http://localhost:3000", false),
            rule("http", "localhost", Some(3000))
        );
        assert_eq!(
            parse_origin("http://[::1]:8080", false),
            rule("http", "[::1]", Some(8080))
        );
        assert_eq!(
            parse_origin("http://app.example:*", true),
            rule("http", "app.example", None)
        );
        assert_eq!(parse_origin("http://app.example:*", false), None);
        assert_eq!(parse_origin("null", false), None);
        assert_eq!(parse_origin("http://a.example/path", false), None);
    }

    #[test]
    fn loopback_origins_pass_and_foreign_ones_do_not() {
        let sec = Security::new(
            None,
            true,
            &["https://app.example".into()],
            &[],
            Duration::from_secs(1),
        )
        .unwrap();
        let check = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
            h.insert(header::ORIGIN, origin.parse().unwrap());
            sec.check(&h, false).is_ok()
        };
        assert!(check("http://localhost:5173"));
        assert!(check("http://127.0.0.1:8080"));
        assert!(check("https://app.example"));
        assert!(!check("https://app.example:8443"));
        assert!(!check("https://evil.example"));
        assert!(!check("null"));
    }

    #[test]
    fn a_loopback_bind_refuses_foreign_hosts() {
        let sec = Security::new(None, true, &[], &[], Duration::from_secs(1)).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "evil.example:8080".parse().unwrap());
        assert_eq!(sec.check(&h, false).unwrap_err().code, "forbidden_host");
        h.insert(header::HOST, "localhost:8080".parse().unwrap());
        assert!(sec.check(&h, false).is_ok());
        h.insert(header::HOST, "[::1]:8080".parse().unwrap());
        assert!(sec.check(&h, false).is_ok());
    }
}
