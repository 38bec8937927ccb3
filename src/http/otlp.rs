//! `POST /v1/traces`: an OTLP/HTTP trace receiver. The body (protobuf or OTLP/JSON, gzip or not)
//! is read by `sources::otlp` into ingest records, one per GenAI span, and written through the
//! same ingest path as `POST /api/usage`. Behind the same guard as every route; like
//! `/api/usage`, it answers 403 unless the server runs with `--allow-writes`.
//!
//! Answers follow OTLP/HTTP: a 200 carries an `ExportTraceServiceResponse` in the request's
//! encoding, with `partial_success` only when spans were rejected; a failure carries a
//! `google.rpc.Status` (415 for a content type or encoding not spoken, 413 past the body cap,
//! before or after decompression, 400 for a body that cannot be decoded).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::sources::otlp::{self, Encoding, Problem};

/// Records written per ingest call (the most one `dashboard_record_usage` call takes).
const RECORDS_PER_CALL: usize = 10_000;

pub(crate) async fn traces(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = text(header::CONTENT_TYPE).map(str::to_owned);
    let content_encoding = text(header::CONTENT_ENCODING).map(str::to_owned);
    // Failures answer in the request's encoding when it names one we speak, else in JSON.
    let encoding = Encoding::of_content_type(content_type.as_deref()).unwrap_or(Encoding::Json);
    if !st.server.allow_writes() {
        return failure(
            encoding,
            StatusCode::FORBIDDEN,
            otlp::RPC_PERMISSION_DENIED,
            "POST /v1/traces changes stored data and is available only when the server runs with --allow-writes",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return failure(
                encoding,
                StatusCode::PAYLOAD_TOO_LARGE,
                otlp::RPC_RESOURCE_EXHAUSTED,
                &format!(
                    "the request body is larger than this server accepts ({} bytes); send fewer spans per export",
                    st.max_body_bytes
                ),
            )
        }
        Err(e) => {
            return failure(
                encoding,
                StatusCode::BAD_REQUEST,
                otlp::RPC_INVALID_ARGUMENT,
                &format!("the request body could not be read: {}", e.body_text()),
            )
        }
    };
    let store = st.server.dashboard().store.clone();
    let max = st.max_body_bytes;
    let work = tokio::task::spawn_blocking(move || {
        let (encoding, decoded) = otlp::decode(
            &body,
            content_type.as_deref(),
            content_encoding.as_deref(),
            max,
        )?;
        drop(body);
        let otlp::Decoded {
            spans,
            ignored,
            records,
            record_spans,
            rejected,
            reasons,
        } = decoded;
        let mut report = Outcome {
            encoding,
            spans,
            ignored,
            accepted: 0,
            duplicates: 0,
            rejected,
            reasons,
        };
        for (n, chunk) in records.chunks(RECORDS_PER_CALL).enumerate() {
            let r = crate::ingest::import_values_with(&*store, chunk, "otlp", false)
                .map_err(Failed::Store)?;
            report.accepted += r.accepted;
            report.duplicates += r.duplicates;
            report.rejected += r.rejected;
            // Each ingest error names its record by number (1-based within the chunk).
            for e in r.files.iter().flat_map(|f| &f.errors) {
                if report.reasons.len() < otlp::MAX_REASONS {
                    let i = n * RECORDS_PER_CALL + (e.line as usize).saturating_sub(1);
                    let span = record_spans.get(i).map_or("?", String::as_str);
                    report.reasons.push(format!("span {span}: {}", e.reason));
                }
            }
        }
        Ok::<_, Failed>(report)
    })
    .await;
    let report = match work {
        Ok(Ok(r)) => r,
        Ok(Err(Failed::Problem(p))) => {
            let status = match p {
                Problem::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Problem::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                Problem::Malformed(_) => StatusCode::BAD_REQUEST,
            };
            tracing::debug!(
                status = status.as_u16(),
                problem = p.message(),
                "otlp export refused"
            );
            return failure(encoding, status, p.rpc_code(), p.message());
        }
        Ok(Err(Failed::Store(e))) => {
            tracing::error!(error = %e, "otlp export: the store failed");
            return failure(
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                otlp::RPC_INTERNAL,
                "internal error; the server log has the details",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "otlp export task failed");
            return failure(
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                otlp::RPC_INTERNAL,
                "internal error; the server log has the details",
            );
        }
    };
    let genai = report.spans - report.ignored;
    tracing::info!(
        spans = report.spans,
        genai,
        ignored = report.ignored,
        accepted = report.accepted,
        duplicates = report.duplicates,
        rejected = report.rejected,
        "otlp export received (ignored: spans without gen_ai.* attributes)"
    );
    let message = if report.rejected > 0 {
        otlp::rejection_message(report.rejected, genai, &report.reasons)
    } else {
        String::new()
    };
    respond(
        report.encoding,
        StatusCode::OK,
        otlp::response_body(report.encoding, report.rejected, &message),
    )
}

/// What became of an export's spans.
#[derive(Debug)]
struct Outcome {
    encoding: Encoding,
    spans: u64,
    ignored: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    reasons: Vec<String>,
}

enum Failed {
    Problem(Problem),
    Store(crate::error::Error),
}

impl From<Problem> for Failed {
    fn from(p: Problem) -> Self {
        Failed::Problem(p)
    }
}

fn failure(encoding: Encoding, status: StatusCode, code: i32, message: &str) -> Response {
    respond(encoding, status, otlp::status_body(encoding, code, message))
}

fn respond(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        )],
        body,
    )
        .into_response()
}
