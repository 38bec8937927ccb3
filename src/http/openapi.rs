//! `/openapi.json`: an OpenAPI 3.1 document of the REST API built from the same catalog specs and
//! schemas the routes and the MCP tools use, so it cannot drift from what is served. Each tool's
//! `$defs` move to `components/schemas` (renamed on a clash) and its `$ref`s follow them.

use serde_json::{json, Map, Value};

use super::rest::{Kind, RestRoute};

/// Said of every query parameter: how an HTML form's empty field is read.
const EMPTY_MEANS_ABSENT: &str = "An empty value (`name=`) counts as not given.";

/// The document for these routes, as JSON text. Write routes appear only when writes are allowed.
pub(crate) fn document(routes: &[RestRoute], allow_writes: bool, token: bool) -> String {
    let mut schemas = Map::new();
    schemas.insert("Error".into(), error_schema());
    let mut paths = Map::new();
    for r in routes.iter().filter(|r| allow_writes || !r.write) {
        let output = absorb(&r.output, &format!("{}.output", r.tool), &mut schemas);
        let input = absorb(&r.input, &format!("{}.input", r.tool), &mut schemas);
        let input_schema = &schemas[&ref_name(&input)].clone();
        let mut op = json!({
            "operationId": operation_id(r),
            "summary": r.title,
            "description": r.description,
            "tags": [if r.write { "write" } else { "read" }],
            "responses": {
                "200": {
                    "description": format!("The JSON of the MCP tool {}, byte for byte.", r.tool),
                    "content": { "application/json": { "schema": output } }
                },
                "400": { "$ref": "#/components/responses/BadRequest" },
                "401": { "$ref": "#/components/responses/Unauthorized" },
                "403": { "$ref": "#/components/responses/Forbidden" },
                "414": { "$ref": "#/components/responses/UriTooLong" },
                "503": { "$ref": "#/components/responses/Timeout" },
            }
        });
        match r.kind {
            Kind::Query => {
                op["parameters"] = Value::Array(query_parameters(input_schema));
            }
            Kind::SetBudget => {
                let mut body = input_schema.clone();
                if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
                    props.remove("scope");
                }
                if let Some(req) = body.get_mut("required").and_then(Value::as_array_mut) {
                    req.retain(|f| f != "scope");
                }
                // What the tool schema leaves to its description (an LLM reads that, and some
                // MCP clients choke on `if`): null deletes, and a limit needs its period.
                if let Some(limit) = body.pointer_mut("/properties/limitUsd") {
                    limit["type"] = json!(["number", "null"]);
                }
                body["if"] = json!({ "properties": { "limitUsd": { "type": "number" } } });
                body["then"] = json!({ "required": ["period"] });
                let scope = input_schema
                    .pointer("/properties/scope")
                    .cloned()
                    .unwrap_or_else(|| json!({ "type": "string" }));
                op["parameters"] = json!([{
                    "name": "scope", "in": "path", "required": true,
                    "description": scope.get("description").cloned().unwrap_or(Value::Null),
                    "schema": scope,
                }]);
                op["requestBody"] = json!({
                    "required": true,
                    "content": { "application/json": { "schema": body } }
                });
            }
            Kind::Body => {
                op["requestBody"] = json!({
                    "required": true,
                    "content": { "application/json": { "schema": input_schema } }
                });
            }
            Kind::RemoveAlert => {
                let id = input_schema
                    .pointer("/properties/id")
                    .cloned()
                    .unwrap_or_else(|| json!({ "type": "string" }));
                op["parameters"] = json!([{
                    "name": "id", "in": "path", "required": true,
                    "description": "The rule's id.",
                    "schema": { "type": id.get("type").cloned().unwrap_or(json!("string")) },
                }]);
            }
            Kind::RecordUsage => {
                let records = input_schema
                    .pointer("/properties/records")
                    .cloned()
                    .unwrap_or_else(|| json!({ "type": "array" }));
                let record = records.get("items").cloned().unwrap_or_else(|| json!({}));
                op["requestBody"] = json!({
                    "required": true,
                    "description": "A JSON array of records, or NDJSON (one record per line).",
                    "content": {
                        "application/json": { "schema": records },
                        "application/x-ndjson": { "schema": record }
                    }
                });
                op["responses"]["413"] = json!({ "$ref": "#/components/responses/TooLarge" });
                op["parameters"] = json!([query_parameter(
                    "strict",
                    false,
                    input_schema
                        .pointer("/properties/strict/description")
                        .and_then(Value::as_str),
                    json!({ "type": "boolean" }),
                )]);
            }
        }
        let path = paths
            .entry(r.path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        path[r.method.as_str().to_ascii_lowercase()] = op;
    }
    paths.insert("/api/stream".into(), stream_path(&schemas));
    if allow_writes {
        paths.insert("/v1/traces".into(), otlp_traces_path());
        schemas.insert(
            "OtlpExportTraceServiceResponse".into(),
            otlp_response_schema(),
        );
        schemas.insert("OtlpStatus".into(), otlp_status_schema());
    }
    paths.insert("/healthz".into(), health_path());
    schemas.insert("Health".into(), health_schema());

    let mut doc = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "dashboard-mcp REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The usage dashboard of LLM agents. Every GET /api/dashboard/<name> answers exactly what the MCP tool dashboard_get_<name> answers, with the tool's inputs as query-string parameters. Errors are {\"error\": {\"code\", \"message\", \"field\"}}.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "BadRequest": error_response("Bad input; `field` names it."),
                "Unauthorized": error_response("Missing or wrong bearer token."),
                "Forbidden": error_response("Foreign Origin or Host, or a write route without --allow-writes."),
                "TooLarge": error_response("The body is larger than the server accepts."),
                "UriTooLong": error_response(&format!("The request target (path and query string) is longer than {} bytes; `field` is `query`.", super::MAX_URI_BYTES)),
                "Timeout": error_response(&format!("The answer did not start within the request timeout ({} s by default), code `timeout`.", super::DEFAULT_REQUEST_TIMEOUT.as_secs())),
            },
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        }
    });
    if token {
        doc["security"] = json!([{ "bearer": [] }]);
    }
    serde_json::to_string(&doc).unwrap_or_default()
}

/// `POST /v1/traces`, the OTLP/HTTP trace receiver (`http/otlp.rs`): not a tool, so described here.
fn otlp_traces_path() -> Value {
    let binary = json!({ "type": "string", "format": "binary" });
    let status = json!({
        "content": {
            "application/json": { "schema": { "$ref": "#/components/schemas/OtlpStatus" } },
            "application/x-protobuf": { "schema": binary },
        }
    });
    let with = |description: &str| {
        let mut s = status.clone();
        s["description"] = json!(description);
        s
    };
    json!({ "post": {
        "operationId": "otlp_export_traces",
        "summary": "Receive OpenTelemetry traces (OTLP/HTTP)",
        "description": "An OTLP/HTTP trace export (ExportTraceServiceRequest) as binary protobuf (application/x-protobuf) or OTLP/JSON (application/json), optionally with Content-Encoding: gzip. Every span carrying GenAI semantic-convention attributes (gen_ai.operation.name, gen_ai.request.model, gen_ai.response.model, gen_ai.usage.*) is stored as one execution with the id otel:<traceId>:<spanId> (a retried export is a duplicate); other spans are ignored. The answer is an ExportTraceServiceResponse in the request's encoding, with partialSuccess only when spans were rejected; failures carry a google.rpc.Status. Only with --allow-writes.",
        "tags": ["write"],
        "requestBody": {
            "required": true,
            "content": {
                "application/x-protobuf": { "schema": binary },
                "application/json": { "schema": {
                    "type": "object",
                    "description": "ExportTraceServiceRequest in OTLP/JSON: lowerCamelCase keys, hex trace and span ids, 64-bit integers as strings or numbers, enums as integers.",
                    "properties": { "resourceSpans": { "type": "array", "items": { "type": "object" } } }
                } }
            }
        },
        "responses": {
            "200": {
                "description": "ExportTraceServiceResponse, in the request's encoding.",
                "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/OtlpExportTraceServiceResponse" } },
                    "application/x-protobuf": { "schema": binary },
                }
            },
            "400": with("The body cannot be decoded as an ExportTraceServiceRequest (or as gzip)."),
            "401": { "$ref": "#/components/responses/Unauthorized" },
            "403": { "$ref": "#/components/responses/Forbidden" },
            "413": with("The body, or what it decompresses to, is larger than the server accepts."),
            "414": { "$ref": "#/components/responses/UriTooLong" },
            "415": with("A Content-Type other than application/x-protobuf or application/json, or a Content-Encoding other than gzip."),
            "503": { "$ref": "#/components/responses/Timeout" },
        }
    }})
}

fn otlp_response_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "partialSuccess": {
            "type": "object",
            "description": "Present only when spans were rejected.",
            "properties": {
                "rejectedSpans": { "type": "string", "description": "int64, as a decimal string (proto3 JSON)." },
                "errorMessage": { "type": "string" }
            }
        } }
    })
}

fn otlp_status_schema() -> Value {
    json!({
        "type": "object",
        "description": "google.rpc.Status, the body of an OTLP/HTTP failure.",
        "required": ["message"],
        "properties": {
            "code": { "type": "integer", "description": "google.rpc.Code: 3 invalid argument, 7 permission denied, 8 resource exhausted, 13 internal." },
            "message": { "type": "string" }
        }
    })
}

fn operation_id(r: &RestRoute) -> String {
    if r.path == "/api/budgets" {
        format!("{}_alias", r.tool)
    } else {
        r.tool.to_owned()
    }
}

/// Move `schema`'s `$defs` into `schemas` and add the schema itself as `name`; returns a `$ref`
/// to it.
fn absorb(schema: &Map<String, Value>, name: &str, schemas: &mut Map<String, Value>) -> Value {
    let mut root = schema.clone();
    let defs = match root.remove("$defs") {
        Some(Value::Object(d)) => d,
        _ => Map::new(),
    };
    // Keep a def's own name unless a different schema already holds it; comparing after the
    // rewrite of its refs, repeated until no rename changes another def.
    let mut renamed: Vec<(String, String)> = defs.keys().map(|d| (d.clone(), d.clone())).collect();
    loop {
        let mut changed = false;
        for i in 0..renamed.len() {
            let (def, target) = renamed[i].clone();
            if def != target {
                continue;
            }
            let mut body = defs[&def].clone();
            rewrite_refs(&mut body, &renamed);
            if schemas
                .get(&target)
                .is_some_and(|existing| *existing != body)
            {
                renamed[i].1 = format!("{name}.{def}");
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (def, target) in &renamed {
        let mut body = defs[def].clone();
        rewrite_refs(&mut body, &renamed);
        schemas.insert(target.clone(), body);
    }
    let mut root = Value::Object(root);
    rewrite_refs(&mut root, &renamed);
    schemas.insert(name.to_owned(), root);
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn ref_name(r: &Value) -> String {
    r["$ref"]
        .as_str()
        .and_then(|s| s.strip_prefix("#/components/schemas/"))
        .unwrap_or_default()
        .to_owned()
}

fn rewrite_refs(v: &mut Value, renamed: &[(String, String)]) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if let Some(def) = r.strip_prefix("#/$defs/") {
                    let target = renamed
                        .iter()
                        .find(|(d, _)| d == def)
                        .map(|(_, t)| t.as_str())
                        .unwrap_or(def);
                    *r = format!("#/components/schemas/{target}");
                }
            }
            o.values_mut().for_each(|v| rewrite_refs(v, renamed));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite_refs(v, renamed)),
        _ => {}
    }
}

/// One query parameter per input property.
fn query_parameters(input: &Value) -> Vec<Value> {
    let required: Vec<&str> = input["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    input["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, schema)| {
                    query_parameter(
                        name,
                        required.contains(&name.as_str()),
                        schema.get("description").and_then(Value::as_str),
                        schema.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A query parameter; its description says that an empty value counts as not given.
fn query_parameter(name: &str, required: bool, description: Option<&str>, schema: Value) -> Value {
    let description = match description {
        Some(d) => format!("{d} {EMPTY_MEANS_ABSENT}"),
        None => EMPTY_MEANS_ABSENT.to_owned(),
    };
    json!({
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "allowEmptyValue": true,
        "schema": schema,
    })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "additionalProperties": false,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field"],
                "additionalProperties": false,
                "properties": {
                    "code": { "type": "string", "description": "Machine-readable kind, e.g. invalid_input, unauthorized, not_found." },
                    "message": { "type": "string", "description": "What was wrong and what is allowed." },
                    "field": { "type": ["string", "null"], "description": "The offending input, when there is one." }
                }
            }
        }
    })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn health_schema() -> Value {
    json!({
        "type": "object",
        "required": ["status", "version", "database"],
        "properties": {
            "status": { "enum": ["ok", "unavailable"] },
            "version": { "type": "string" },
            "database": { "enum": ["ok", "unreachable"] },
            "cache": {
                "description": "The read tools' result cache since start: answers served from it (hits, and calls that shared an identical call in flight: coalesced), queries run (misses), entries held, and the share of calls served without a query (null before any call).",
                "type": "object",
                "properties": {
                    "hits": { "type": "integer" },
                    "misses": { "type": "integer" },
                    "coalesced": { "type": "integer" },
                    "entries": { "type": "integer" },
                    "hitRate": { "type": ["number", "null"] }
                }
            }
        }
    })
}

fn health_path() -> Value {
    let health =
        json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } });
    json!({ "get": {
        "operationId": "healthz",
        "summary": "Liveness and database reachability (no token needed)",
        "security": [],
        "responses": {
            "200": { "description": "Serving, database reachable.", "content": health },
            "503": { "description": "The database is not reachable.", "content": health }
        }
    }})
}

/// `/api/stream`: the body is a stream of events, each an object whose `data` is JSON text of the
/// executions item or the overview (`contentMediaType` / `contentSchema` say so).
fn stream_path(schemas: &Map<String, Value>) -> Value {
    let execution = schemas
        .get("dashboard_get_executions.output")
        .and_then(|s| s.pointer("/properties/executions/items"))
        .cloned()
        .unwrap_or_else(|| json!({ "type": "object" }));
    let overview = if schemas.contains_key("dashboard_get_overview.output") {
        json!({ "$ref": "#/components/schemas/dashboard_get_overview.output" })
    } else {
        json!({ "type": "object" })
    };
    let event = |name: &str, with_id: bool, data: Value, what: &str| {
        let mut properties = json!({
            "event": { "const": name },
            "data": {
                "type": "string",
                "description": what,
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
        });
        let mut required = vec!["event", "data"];
        if with_id {
            properties["id"] = json!({ "type": "string", "description": "The execution's id." });
            required.push("id");
        }
        json!({
            "type": "object",
            "title": name,
            "required": required,
            "additionalProperties": false,
            "properties": properties,
        })
    };
    let events = json!({
        "type": "array",
        "description": "Server-Sent Events, one item per event (`event:`, `id:` and `data:` lines); comment lines keep the connection alive.",
        "items": { "oneOf": [
            event("execution", true, execution, "An ingested execution, as dashboard_get_executions lists it."),
            event("overview", false, overview, "The dashboard_get_overview answer for the day (of agentId, when given)."),
        ] }
    });
    let parameters = vec![
        query_parameter(
            "interval",
            false,
            Some("Seconds between overview events, 1..300 (default 5)."),
            json!({ "type": "integer", "minimum": 1, "maximum": 300 }),
        ),
        query_parameter(
            "agentId",
            false,
            Some("Only this agent."),
            json!({ "type": "string" }),
        ),
        query_parameter(
            "model",
            false,
            Some("Only this model (execution events)."),
            json!({ "type": "string" }),
        ),
    ];
    json!({ "get": {
        "operationId": "stream",
        "summary": "Live updates (Server-Sent Events)",
        "description": "An `execution` event (the dashboard_get_executions item shape) for every execution ingested by this server, and an `overview` event (dashboard_get_overview, timeframe day) at most every `interval` seconds when something changed, starting with one at once. A client that falls behind is dropped. The stream does not end until the client or the server closes it.",
        "parameters": parameters,
        "responses": {
            "200": { "description": "An event stream.", "content": { "text/event-stream": { "schema": events } } },
            "400": { "$ref": "#/components/responses/BadRequest" },
            "401": { "$ref": "#/components/responses/Unauthorized" },
            "403": { "$ref": "#/components/responses/Forbidden" },
            "414": { "$ref": "#/components/responses/UriTooLong" }
        }
    }})
}
