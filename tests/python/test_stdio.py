"""MCP over stdio through the official Python SDK (`mcp` 2.x), a client we did not write.

Both protocol eras: `ClientSession` after `initialize` (2025-06-18 / 2025-11-25) and
`Client(..., mode="2026-07-28")` (stateless, no handshake). For each: list the tools, check every
annotation and title, call every tool, validate every `structuredContent` against the tool's
`outputSchema` with `jsonschema`, and check the overview against the fixture's hand-computed
values (the same arithmetic as tests/fixture.rs). The binary is $DASHBOARD_MCP_BIN, else
<repo>/target/debug/dashboard-mcp.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest

from engines import database

import mcp.types as types
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DASHBOARD_MCP_BIN") or REPO / "target" / "debug" / "dashboard-mcp")
FIXTURE = REPO / "tests" / "fixtures" / "small.jsonl"
NOW = "2026-11-23T12:00:00Z"
TEST_LIMIT_S = 60

READ_TOOLS = {
    "dashboard_get_overview",
    "dashboard_get_agents",
    "dashboard_get_models",
    "dashboard_get_timeline",
    "dashboard_get_executions",
    "dashboard_get_budgets",
    "dashboard_get_anomalies",
    "dashboard_check_budget",
    "dashboard_get_alerts",
}
WRITE_TOOLS = {"dashboard_record_usage", "dashboard_set_budget", "dashboard_set_alert"}
# Arguments per tool; tools not listed are called with {}.
ARGS: dict[str, dict[str, Any]] = {
    "dashboard_get_timeline": {"metric": "calls", "breakdown": "model"},
    "dashboard_get_agents": {"sortBy": "calls", "limit": "2"},  # a number as a string is forgiven
    "dashboard_get_executions": {"status": "error"},
    "dashboard_get_anomalies": {"timeframe": "week"},
    "dashboard_check_budget": {"agentId": "alpha", "estimatedCostUsd": "$2.5"},
    "dashboard_record_usage": {
        "records": [{"id": "py-1", "timestamp": "2026-11-20T10:00:00Z", "agentId": "py", "model": "m", "cost": 0.5}]
    },
    "dashboard_set_budget": {"scope": "global", "limitUsd": 100, "period": "month"},
    "dashboard_set_alert": {"id": "py", "costUsd": 5, "window": "24h", "url": "http://127.0.0.1:9/hook"},
}


@pytest.fixture
def db(tmp_path: Path) -> str:
    if not BIN.exists():
        pytest.fail(f"no binary at {BIN}: run `cargo build` or set DASHBOARD_MCP_BIN")
    path = database(tmp_path)
    subprocess.run([str(BIN), "--db", path, "import", str(FIXTURE)], check=True, capture_output=True, timeout=60)
    return path


def params(db: str, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=str(BIN),
        args=["--db", str(db), "--now", NOW, *extra, "serve"],
        env={"DASHBOARD_MCP_LOG": "warn", "PATH": os.environ.get("PATH", "")},
    )


def run(fn) -> None:
    async def bounded() -> None:
        with anyio.fail_after(TEST_LIMIT_S):
            await fn()

    anyio.run(bounded)


def check_tools(tools: list[types.Tool], writes: bool) -> None:
    names = {t.name for t in tools}
    assert READ_TOOLS <= names, names
    assert (WRITE_TOOLS <= names) == writes and (not writes) == names.isdisjoint(WRITE_TOOLS), names
    for t in tools:
        a = t.annotations
        assert t.title and a is not None and a.title, t.name
        for hint in (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint):
            assert hint is not None, f"{t.name} lacks a hint"
        assert a.open_world_hint is False, t.name
        assert a.read_only_hint is (t.name not in WRITE_TOOLS), t.name
        assert t.output_schema and t.output_schema.get("type") == "object", t.name
        assert t.description and len(t.description) < 600, t.name


def check_answer(tool: types.Tool, result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, (tool.name, result.content)
    sc = result.structured_content
    jsonschema.validate(sc, tool.output_schema)
    text = [c.text for c in result.content if isinstance(c, types.TextContent)]
    assert text and json.loads(text[0]) == sc, tool.name
    return sc


def check_overview(o: dict[str, Any]) -> None:
    # tests/fixtures/small.jsonl, day window ending 2026-11-23T12:00Z: e1 e3 e4 e5 and gamma.
    s = o["summary"]
    assert o["period"] == {"start": "2026-11-22T12:00:00Z", "end": "2026-11-23T12:00:00Z"}
    assert s["totalCost"] == 1.75  # 0.5 + 0.25 + 0.25 + 0 + 0.75
    assert s["totalCalls"] == 5
    assert s["totalTokens"] == 1527  # 150 + 1300 + 75 + 0 + 2
    assert s["activeAgents"] == 4
    assert s["successRate"] == 60.0
    assert s["p95LatencyMs"] == 3000.0
    assert o["trends"]["topAgent"] == {"id": "gamma", "cost": 0.75}
    assert o["trends"]["costTrend"] == 250.0  # previous day: 0.25 + 0.25


async def exercise(list_tools, call_tool, writes: bool) -> None:
    tools = (await list_tools()).tools
    check_tools(tools, writes)
    for t in tools:
        sc = check_answer(t, await call_tool(t.name, ARGS.get(t.name, {})))
        if t.name == "dashboard_get_overview":
            check_overview(sc)
        if t.name == "dashboard_get_agents":
            # calls desc, ties by id: alpha (2), then beta (1)
            assert [a["id"] for a in sc["agents"]] == ["alpha", "beta"]
            assert sc["pagination"]["nextOffset"] == 2
    bad = await call_tool("dashboard_get_agents", {"limit": 0})
    assert bad.is_error and bad.content[0].text == "limit: 0 is out of range; allowed is 1..=1000"
    bad = await call_tool("dashboard_get_overview", {"timeframe": "fortnight"})
    assert bad.is_error
    assert bad.content[0].text == 'timeframe: "fortnight" is not one of hour, day, week, month, quarter'
    bad = await call_tool("dashboard_get_overview", {"nope": 1})
    assert bad.is_error and bad.content[0].text.startswith('nope: unknown field "nope"')


def test_legacy_initialize_session(db: str) -> None:
    async def body() -> None:
        async with stdio_client(params(db, "--allow-writes")) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.server_info.name == "dashboard-mcp"
                assert init.protocol_version in ("2025-06-18", "2025-11-25")
                await exercise(session.list_tools, session.call_tool, writes=True)
                # the write above landed: py-1 (0.5) is in the week
                week = await session.call_tool("dashboard_get_overview", {"timeframe": "week"})
                assert week.structured_content["summary"]["totalCost"] == 2.95  # 2.45 + 0.5

    run(body)


def test_2026_07_28_stateless(db: str) -> None:
    async def body() -> None:
        async with Client(params(db), mode="2026-07-28") as client:
            await exercise(client.list_tools, client.call_tool, writes=False)

    run(body)


def test_auto_mode_discovers_the_server(db: str) -> None:
    async def body() -> None:
        async with Client(params(db), mode="auto") as client:
            tools = (await client.list_tools()).tools
            check_tools(tools, writes=False)
            o = await client.call_tool("dashboard_get_overview", {})
            check_overview(o.structured_content)

    run(body)


def test_nothing_but_protocol_on_stdout(db: str) -> None:
    """A raw initialize + tools/list: every stdout line is a JSON-RPC message, logs go to stderr."""
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}},
    ]
    stdin = "".join(json.dumps(m) + "\n" for m in msgs)
    p = subprocess.run(
        [str(BIN), "--db", str(db), "--now", NOW, "serve"],
        input=stdin, capture_output=True, text=True, timeout=30,
        env={"DASHBOARD_MCP_LOG": "debug", "PATH": os.environ.get("PATH", "")},
    )
    lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    by_id = {m.get("id"): m for m in lines}
    assert by_id[1]["result"]["serverInfo"]["name"] == "dashboard-mcp"
    assert by_id[1]["result"]["protocolVersion"] == "2025-06-18"  # the client's revision is kept
    assert {t["name"] for t in by_id[2]["result"]["tools"]} == READ_TOOLS
    assert by_id[3]["error"]["code"] == -32602  # unknown tool: the protocol's invalid-params error
    assert all(m.get("jsonrpc") == "2.0" for m in lines)
