#!/usr/bin/env bash
# REST examples against `dashboard-mcp serve --http 127.0.0.1:8080 --demo --allow-writes`.
# Every answer is byte for byte the MCP tool's structuredContent.
set -euo pipefail
B=${B:-http://127.0.0.1:8080}
AUTH=()
[ -n "${DASHBOARD_MCP_TOKEN:-}" ] && AUTH=(-H "Authorization: Bearer $DASHBOARD_MCP_TOKEN")

curl -s "${AUTH[@]}" "$B/api/dashboard/overview?timeframe=week"; echo
curl -s "${AUTH[@]}" "$B/api/dashboard/agents?timeframe=month&sortBy=errors&limit=5"; echo
curl -s "${AUTH[@]}" "$B/api/dashboard/models?timeframe=day"; echo
curl -s "${AUTH[@]}" "$B/api/dashboard/timeline?timeframe=day&metric=cost&breakdown=model"; echo
curl -s "${AUTH[@]}" "$B/api/dashboard/executions?status=error&limit=5"; echo
curl -s "${AUTH[@]}" "$B/api/budgets"; echo
# writes (need --allow-writes)
curl -s "${AUTH[@]}" -X PUT "$B/api/budgets/global" -H 'content-type: application/json' -d '{"limitUsd": 500, "period": "month"}'; echo
curl -s "${AUTH[@]}" -X POST "$B/api/usage" -H 'content-type: application/x-ndjson' --data-binary @"$(dirname "$0")/usage.jsonl"; echo
