//! `query`'s answer as text for a person at a terminal: the overview (and any answer without a
//! list) as key / value rows, lists (agents, models, executions, anomalies, budgets, the timeline's
//! buckets) as columns, with the window above and the paging below. A pure function of the tool's
//! JSON, so the text is tested without a terminal; `--json`, or a stdout that is not a terminal,
//! prints the JSON itself.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, TableStyle};
use serde_json::{Map, Value};

/// Columns separated by two spaces (the separator's and a cell's right padding of one), a rule
/// under the header, nothing else.
const STYLE: TableStyle =
    TableStyle::new().header_separator(comfy_table::LineStyle::none().fill('─').junction('─'));

/// How a column's values are written.
#[derive(Clone, Copy)]
enum Fmt {
    Text,
    /// A whole number.
    Int,
    /// US dollars, four decimals (a call often costs less than a cent).
    Usd,
    /// A percentage, one decimal.
    Pct,
    /// A signed percent change, one decimal.
    Change,
    /// Milliseconds, whole.
    Ms,
    /// Any number: whole, or up to four decimals.
    Num,
    /// `true` → "yes".
    YesNo,
}

impl Fmt {
    fn right_aligned(self) -> bool {
        !matches!(self, Fmt::Text | Fmt::YesNo)
    }

    /// The text of `v` (JSON `null` and absent values are "–").
    fn show(self, v: Option<&Value>) -> String {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return "–".to_owned();
        };
        let n = v.as_f64();
        match (self, n) {
            (Fmt::Int, Some(n)) => format!("{n:.0}"),
            (Fmt::Usd, Some(n)) => format!("{n:.4}"),
            (Fmt::Pct, Some(n)) => format!("{n:.1}"),
            (Fmt::Change, Some(n)) => format!("{n:+.1}"),
            (Fmt::Ms, Some(n)) => format!("{n:.0}"),
            (Fmt::Num, Some(n)) => number(n),
            (Fmt::YesNo, _) if v.is_boolean() => if v.as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
            _ => text(v),
        }
    }
}

/// A number as it reads best: whole numbers without decimals, others with up to four.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        let s = format!("{n:.4}");
        let s = s.trim_end_matches('0');
        s.strip_suffix('.').unwrap_or(s).to_owned()
    }
}

/// A JSON value in a cell: strings without quotes, arrays joined, objects as `key=value`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// One column: its header, where its value is in a list item (a JSON pointer), and its format.
struct Col {
    header: String,
    pointer: String,
    fmt: Fmt,
}

fn col(header: &str, pointer: &str, fmt: Fmt) -> Col {
    Col {
        header: header.to_owned(),
        pointer: pointer.to_owned(),
        fmt,
    }
}

/// The list an answer holds (its field name) and the columns to show of each item.
fn list_columns(tool: &str, answer: &Map<String, Value>) -> Option<(&'static str, Vec<Col>)> {
    use Fmt::*;
    Some(match tool {
        "dashboard_get_agents" => (
            "agents",
            vec![
                col("AGENT", "/id", Text),
                col("NAME", "/name", Text),
                col("COST USD", "/metrics/totalCost", Usd),
                col("CALLS", "/metrics/totalCalls", Int),
                col("TOKENS", "/metrics/totalTokens", Int),
                col("USD/CALL", "/metrics/averageCost", Usd),
                col("SUCCESS %", "/metrics/successRate", Pct),
                col("ERRORS", "/metrics/errorCount", Int),
                col("COST Δ%", "/trend/costChange", Change),
                col("CALLS Δ%", "/trend/callsChange", Change),
                col("BUDGET %", "/budgetStatus/percentUsed", Pct),
            ],
        ),
        "dashboard_get_models" => (
            "models",
            vec![
                col("MODEL", "/name", Text),
                col("COST USD", "/metrics/totalCost", Usd),
                col("SHARE %", "/distribution", Pct),
                col("CALLS", "/metrics/totalCalls", Int),
                col("TOKENS", "/metrics/totalTokens", Int),
                col("USD/CALL", "/metrics/averageCostPerCall", Usd),
                col("SUCCESS %", "/metrics/successRate", Pct),
                col("AVG MS", "/metrics/avgLatencyMs", Ms),
            ],
        ),
        "dashboard_get_executions" => (
            "executions",
            vec![
                col("TIME", "/timestamp", Text),
                col("AGENT", "/agentId", Text),
                col("MODEL", "/model", Text),
                col("TOKENS", "/tokens/total", Int),
                col("COST USD", "/cost", Usd),
                col("MS", "/duration", Ms),
                col("OK", "/success", YesNo),
                col("ERROR", "/error", Text),
                col("ID", "/id", Text),
            ],
        ),
        "dashboard_get_anomalies" => (
            "anomalies",
            vec![
                col("HOUR", "/timestamp", Text),
                col("AGENT", "/agentId", Text),
                col("METRIC", "/metric", Text),
                col("SEVERITY", "/severity", Text),
                col("VALUE", "/currentValue", Num),
                col("EXPECTED", "/expected", Num),
                col("DEVIATION %", "/deviation", Change),
                col("DESCRIPTION", "/description", Text),
            ],
        ),
        "dashboard_get_budgets" => (
            "budgets",
            vec![
                col("SCOPE", "/scope", Text),
                col("PERIOD", "/period", Text),
                col("LIMIT USD", "/limitUsd", Usd),
                col("SPENT USD", "/spent", Usd),
                col("USED %", "/percentUsed", Pct),
                col("PROJECTED", "/projected", Usd),
                col("STATUS", "/status", Text),
                col("ON TRACK", "/onTrack", YesNo),
                col("PERIOD START", "/periodStart", Text),
            ],
        ),
        "dashboard_get_timeline" => {
            let metric = answer
                .get("metric")
                .and_then(Value::as_str)
                .unwrap_or("value");
            let fmt = match metric {
                "cost" => Usd,
                "latency" => Ms,
                _ => Num,
            };
            let header = match metric {
                "cost" => "COST USD".to_owned(),
                "latency" => "LATENCY MS".to_owned(),
                m => m.to_uppercase(),
            };
            let mut cols = vec![
                col("BUCKET", "/timestamp", Text),
                col(&header, "/value", fmt),
            ];
            // The breakdown's keys are the same in every point: one column each.
            let first = answer
                .get("series")
                .and_then(|s| s.get(0))
                .and_then(|p| p.get("breakdown"))
                .and_then(Value::as_object);
            for key in first.into_iter().flat_map(Map::keys) {
                cols.push(Col {
                    header: key.clone(),
                    pointer: format!("/breakdown/{}", key.replace('~', "~0").replace('/', "~1")),
                    fmt,
                });
            }
            ("series", cols)
        }
        _ => return None,
    })
}

/// The answer of `tool` as text; `width` is the terminal's (cells wrap to fit), `None` leaves
/// the lines as long as their content.
pub fn render(tool: &str, answer: &Value, width: Option<u16>) -> String {
    let Some(obj) = answer.as_object() else {
        return text(answer);
    };
    let mut out = String::new();
    if let Some(p) = obj.get("period") {
        out.push_str(&format!("period {}\n", period(p)));
    }
    if let Some(tz) = obj.get("timeZone").and_then(Value::as_str) {
        let as_of = obj.get("asOf").map_or_else(String::new, text);
        out.push_str(&format!("as of {as_of} ({tz})\n"));
    }
    match list_columns(tool, obj) {
        Some((list, cols)) => {
            let items = obj.get(list).and_then(Value::as_array);
            match items {
                Some(items) if !items.is_empty() => {
                    out.push_str(&list_table(items, &cols, width));
                    out.push('\n');
                }
                _ if obj.contains_key("period") => {
                    out.push_str(&format!("no {list} in this window\n"));
                }
                _ => out.push_str(&format!("no {list}\n")),
            }
            let mut rest = Map::new();
            for (k, v) in obj {
                if !matches!(
                    k.as_str(),
                    "period"
                        | "timeZone"
                        | "asOf"
                        | "pagination"
                        | "total"
                        | "hasMore"
                        | "nextStart"
                ) && k != list
                {
                    rest.insert(k.clone(), v.clone());
                }
            }
            if !rest.is_empty() {
                out.push_str(&key_value_table(&rest, width));
                out.push('\n');
            }
            out.push_str(&paging(obj, items.map_or(0, Vec::len)));
        }
        None => {
            let rest: Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| k.as_str() != "period")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.push_str(&key_value_table(&rest, width));
            out.push('\n');
        }
    }
    out
}

/// `{start, end}` as "start → end".
fn period(p: &Value) -> String {
    match (p.get("start"), p.get("end")) {
        (Some(s), Some(e)) => format!("{} → {}", text(s), text(e)),
        _ => text(p),
    }
}

fn new_table(width: Option<u16>) -> Table {
    let mut t = Table::new();
    t.load_style(STYLE);
    t.force_no_tty();
    match width {
        Some(w) => {
            t.set_width(w);
            t.set_content_arrangement(ContentArrangement::Dynamic);
        }
        None => {
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    t
}

/// One row per item, one column per `cols`.
fn list_table(items: &[Value], cols: &[Col], width: Option<u16>) -> String {
    let mut t = new_table(width);
    t.set_header(cols.iter().map(|c| Cell::new(&c.header)));
    for item in items {
        t.add_row(
            cols.iter()
                .map(|c| Cell::new(c.fmt.show(item.pointer(&c.pointer)))),
        );
    }
    for (i, c) in cols.iter().enumerate() {
        if let Some(column) = t.column_mut(i) {
            column.set_padding((0, 1));
            if c.fmt.right_aligned() {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    if let Some(last) = cols.len().checked_sub(1).and_then(|i| t.column_mut(i)) {
        last.set_padding((0, 0));
    }
    t.trim_fmt()
}

/// Nested objects flattened into `a b c` keys (camelCase split into words), one row each. A
/// `summary` adds no word to its keys, and a nested `period` (the window, printed above) no row.
fn key_value_table(obj: &Map<String, Value>, width: Option<u16>) -> String {
    fn flatten(prefix: &str, depth: usize, v: &Value, rows: &mut Vec<(String, String)>) {
        match v {
            Value::Object(o) if !o.is_empty() && !is_period(v) => {
                for (k, v) in o {
                    if depth > 0 && k == "period" && is_period(v) {
                        continue;
                    }
                    let key = if k == "summary" {
                        String::new()
                    } else {
                        words(k)
                    };
                    let key = match (prefix.is_empty(), key.is_empty()) {
                        (true, _) => key,
                        (false, true) => prefix.to_owned(),
                        (false, false) => format!("{prefix} {key}"),
                    };
                    flatten(&key, depth + 1, v, rows);
                }
            }
            _ if is_period(v) => rows.push((prefix.to_owned(), period(v))),
            _ => rows.push((prefix.to_owned(), text(v))),
        }
    }
    let mut rows = Vec::new();
    flatten("", 0, &Value::Object(obj.clone()), &mut rows);
    let mut t = new_table(width);
    for (k, v) in rows {
        t.add_row([Cell::new(k), Cell::new(v)]);
    }
    if let Some(first) = t.column_mut(0) {
        first.set_padding((0, 1));
    }
    if let Some(second) = t.column_mut(1) {
        second.set_padding((0, 0));
    }
    t.trim_fmt()
}

fn is_period(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 2 && o.contains_key("start") && o.contains_key("end"))
}

/// `totalCost` → "total cost".
fn words(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Which rows these were, and how to ask for the next ones.
fn paging(obj: &Map<String, Value>, shown: usize) -> String {
    if let Some(p) = obj.get("pagination") {
        let total = p.get("total").and_then(Value::as_u64).unwrap_or(0);
        let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0);
        if shown == 0 {
            return if total > 0 {
                format!("{total} in all; offset {offset} is past the end\n")
            } else {
                String::new()
            };
        }
        let mut s = format!("rows {}–{} of {total}\n", offset + 1, offset + shown as u64);
        if let Some(next) = p.get("nextOffset").and_then(Value::as_u64) {
            s.pop();
            s.push_str(&format!("; the next page: \"offset\": {next}\n"));
        }
        return s;
    }
    if let Some(next) = obj.get("nextStart").and_then(Value::as_str) {
        return format!("cut to stay under 80 KB; continue with \"start\": \"{next}\"\n");
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overview_is_key_value_rows() {
        let answer = json!({
            "period": {"start": "2026-11-22T00:00:00Z", "end": "2026-11-23T00:00:00Z"},
            "summary": {
                "totalCost": 1.25, "totalCalls": 3, "totalTokens": 4500, "activeAgents": 2,
                "period": {"start": "2026-11-22T00:00:00Z", "end": "2026-11-23T00:00:00Z"},
                "successRate": 66.66666666666667, "errorCount": 1, "avgLatencyMs": 1500.5,
                "p95LatencyMs": null, "callsPerHour": 0.125
            },
            "trends": {"costTrend": null, "topAgent": {"id": "planner", "cost": 1.0}},
            "anomalies": {"total": 0, "bySeverity": {"low": 0, "high": 0}}
        });
        let expected = "\
period 2026-11-22T00:00:00Z → 2026-11-23T00:00:00Z
total cost                  1.25
total calls                 3
total tokens                4500
active agents               2
success rate                66.6667
error count                 1
avg latency ms              1500.5
p95 latency ms              –
calls per hour              0.125
trends cost trend           –
trends top agent id         planner
trends top agent cost       1
anomalies total             0
anomalies by severity low   0
anomalies by severity high  0
";
        assert_eq!(render("dashboard_get_overview", &answer, None), expected);
    }

    #[test]
    fn agents_are_columns_with_paging() {
        let answer = json!({
            "period": {"start": "2026-11-22T00:00:00Z", "end": "2026-11-23T00:00:00Z"},
            "agents": [
                {"id": "planner", "name": "Planner",
                 "metrics": {"totalCost": 12.5, "totalCalls": 40, "totalTokens": 120000,
                             "averageCost": 0.3125, "successRate": 97.5, "errorCount": 1},
                 "trend": {"costChange": 12.345, "callsChange": -5.0},
                 "budgetStatus": {"limit": 50.0, "spent": 12.5, "percentUsed": 25.0, "period": "week"}},
                {"id": "coder", "name": "Coder",
                 "metrics": {"totalCost": 0.0004, "totalCalls": 2, "totalTokens": 900,
                             "averageCost": 0.0002, "successRate": 100.0, "errorCount": 0},
                 "trend": {"costChange": null, "callsChange": null},
                 "budgetStatus": {"limit": null, "spent": 0.0004, "percentUsed": null, "period": null}}
            ],
            "total": 3,
            "pagination": {"total": 3, "limit": 2, "offset": 0, "hasMore": true, "nextOffset": 2}
        });
        let expected = "\
period 2026-11-22T00:00:00Z → 2026-11-23T00:00:00Z
AGENT    NAME     COST USD  CALLS  TOKENS  USD/CALL  SUCCESS %  ERRORS  COST Δ%  CALLS Δ%  BUDGET %
───────────────────────────────────────────────────────────────────────────────────────────────────
planner  Planner   12.5000     40  120000    0.3125       97.5       1    +12.3      -5.0      25.0
coder    Coder      0.0004      2     900    0.0002      100.0       0        –         –         –
rows 1–2 of 3; the next page: \"offset\": 2
";
        assert_eq!(render("dashboard_get_agents", &answer, None), expected);
    }

    #[test]
    fn timeline_breakdown_keys_become_columns() {
        let answer = json!({
            "period": {"start": "2026-11-22T00:00:00Z", "end": "2026-11-22T02:00:00Z"},
            "granularity": "hour",
            "metric": "calls",
            "series": [
                {"timestamp": "2026-11-22T00:00:00Z", "value": 3.0,
                 "breakdown": {"coder": 1.0, "other": 0.0, "planner": 2.0}},
                {"timestamp": "2026-11-22T01:00:00Z", "value": 10.0,
                 "breakdown": {"coder": 4.0, "other": 0.0, "planner": 6.0}}
            ],
            "aggregate": {"total": 13.0, "average": 6.5, "peak": 10.0, "peakTime": "2026-11-22T01:00:00Z"},
            "hasMore": false,
            "nextStart": null
        });
        let expected = "\
period 2026-11-22T00:00:00Z → 2026-11-22T02:00:00Z
BUCKET                CALLS  coder  other  planner
──────────────────────────────────────────────────
2026-11-22T00:00:00Z      3      1      0        2
2026-11-22T01:00:00Z     10      4      0        6
granularity          hour
metric               calls
aggregate total      13
aggregate average    6.5
aggregate peak       10
aggregate peak time  2026-11-22T01:00:00Z
";
        assert_eq!(render("dashboard_get_timeline", &answer, None), expected);
    }

    #[test]
    fn an_empty_list_says_so() {
        let answer = json!({
            "asOf": "2026-11-22T00:00:00Z",
            "timeZone": "UTC",
            "budgets": [],
            "pagination": {"total": 0, "limit": 50, "offset": 0, "hasMore": false, "nextOffset": null}
        });
        assert_eq!(
            render("dashboard_get_budgets", &answer, None),
            "as of 2026-11-22T00:00:00Z (UTC)\nno budgets\n"
        );
    }

    #[test]
    fn cells_wrap_to_the_terminal_width() {
        let answer = json!({
            "anomalies": [{"timestamp": "2026-11-22T00:00:00Z", "agentId": "planner",
                "metric": "calls", "severity": "high", "currentValue": 0.0, "expected": 42.5,
                "deviation": -100.0,
                "description": "Calls of agent planner at 2026-11-22 00:00 UTC fell to 0 calls, usually 43 calls."}],
            "summary": {"total": 1},
            "pagination": {"total": 1, "limit": 50, "offset": 0, "hasMore": false, "nextOffset": null}
        });
        let text = render("dashboard_get_anomalies", &answer, Some(100));
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{line:?} is wider than 100");
        }
        assert!(text.contains("usually 43"), "{text}");
    }
}
