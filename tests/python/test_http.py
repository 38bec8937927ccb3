"""MCP over HTTP through the official Python SDK (`mcp` 2.x), a client we did not write.

Covers Streamable HTTP with an `initialize` session, the stateless 2026-07-28 revision, the legacy
HTTP+SSE transport, and resource change notifications (`resources/subscribe` and
`subscriptions/listen`) after a `POST /api/usage`. Self-contained: it builds a database and starts
`dashboard-mcp serve --http 127.0.0.1:0` itself, reading the bound address from stderr. The binary
is $DASHBOARD_MCP_BIN, else <repo>/target/debug/dashboard-mcp.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest

from engines import database

import mcp.types as types
from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DASHBOARD_MCP_BIN") or REPO / "target" / "debug" / "dashboard-mcp")
NOW = "2026-03-01T12:00:00Z"
STARTUP_LIMIT_S = 20
TEST_LIMIT_S = 60
OVERVIEW_DAY = "dashboard://overview/day"

# Arguments for the write tools this test knows; read tools are called with none.
WRITE_ARGS: dict[str, dict[str, Any]] = {
    "dashboard_record_usage": {
        "records": [{"timestamp": "2026-03-01T11:00:00Z", "agentId": "py-agent", "model": "py-model", "cost": 0.5}]
    },
    "dashboard_set_budget": {"scope": "global", "limitUsd": 100, "period": "month"},
    "dashboard_set_alert": {"id": "py", "costUsd": 5, "window": "24h", "url": "http://127.0.0.1:9/hook"},
}


class Server:
    """A `dashboard-mcp serve --http` child process on a fresh demo database."""

    def __init__(self, tmp: Path, *, token: str | None = None) -> None:
        if not BIN.exists():
            pytest.fail(f"no binary at {BIN}: run `cargo build` or set DASHBOARD_MCP_BIN")
        self.db = database(tmp)
        self.token = token
        subprocess.run(
            [str(BIN), "--db", str(self.db), "--now", NOW, "demo", "--agents", "5", "--models", "3",
             "--days", "7", "--events", "2000"],
            check=True, capture_output=True, timeout=60,
        )
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "wb")  # a file, not a pipe: a full pipe would stall the server
        env = dict(os.environ, DASHBOARD_MCP_LOG="info")
        env.pop("DASHBOARD_MCP_TOKEN", None)
        cmd = [str(BIN), "--db", str(self.db), "--now", NOW, "--allow-writes", "serve", "--http", "127.0.0.1:0"]
        if token:
            cmd += ["--token", token]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.base = self._wait_for_address()

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while time.monotonic() < deadline:
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log_path.read_text(errors="replace"))
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"the server did not start:\n{self.log_path.read_text(errors='replace')}")

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def rest(self, path: str, body: bytes | None = None) -> Any:
        req = urllib.request.Request(f"{self.base}{path}", data=body, headers=self.headers(),
                                     method="POST" if body is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


@pytest.fixture
def server(tmp_path: Path):
    s = Server(tmp_path)
    yield s
    s.stop()
    assert s.proc.returncode == 0, f"unclean shutdown ({s.proc.returncode}):\n{s.log_path.read_text(errors='replace')}"


def run(fn, *args) -> None:
    """Run an async test body with a deadline."""

    async def bounded() -> None:
        with anyio.fail_after(TEST_LIMIT_S):
            await fn(*args)

    anyio.run(bounded)


# Read tools that need arguments (the others are called with none), and the REST query of the
# same call.
READ_ARGS: dict[str, dict[str, Any]] = {
    "dashboard_check_budget": {"agentId": "alpha", "estimatedCostUsd": 2.5},
}


def rest_path(tool: str) -> str:
    short = tool.removeprefix("dashboard_get_").removeprefix("dashboard_")
    query = urllib.parse.urlencode(READ_ARGS.get(tool, {}))
    return "/api/dashboard/" + short + (f"?{query}" if query else "")


def structured(result: types.CallToolResult) -> Any:
    """The structured answer, checked against its text copy."""
    assert not result.is_error, result.content
    text = [c.text for c in result.content if isinstance(c, types.TextContent)]
    assert text and json.loads(text[0]) == result.structured_content
    return result.structured_content


async def exercise(srv: Server, list_tools, call_tool) -> None:
    """List the tools, then call each: read tools must answer exactly what REST answers."""
    tools = (await list_tools()).tools
    names = {t.name for t in tools}
    assert "dashboard_get_overview" in names and "dashboard_record_usage" in names, names
    for tool in tools:
        assert tool.output_schema and tool.annotations and tool.title, tool.name
        if tool.annotations.read_only_hint:
            got = structured(await call_tool(tool.name, READ_ARGS.get(tool.name, {})))
            expected = await anyio.to_thread.run_sync(srv.rest, rest_path(tool.name))
            assert got == expected, tool.name
        elif tool.name in WRITE_ARGS:
            structured(await call_tool(tool.name, WRITE_ARGS[tool.name]))
    bad = await call_tool("dashboard_get_overview", {"timeframe": "fortnight"})
    assert bad.is_error and "timeframe" in bad.content[0].text


def test_streamable_http_session(server: Server) -> None:
    async def body() -> None:
        async with streamable_http_client(server.mcp_url) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.server_info.name == "dashboard-mcp"
                assert init.protocol_version in ("2025-06-18", "2025-11-25")
                assert init.capabilities.resources and init.capabilities.resources.subscribe
                await exercise(server, session.list_tools, session.call_tool)
                resources = {r.uri for r in (await session.list_resources()).resources}
                assert OVERVIEW_DAY in {str(u) for u in resources}

    run(body)


def test_stateless_2026_07_28(server: Server) -> None:
    async def body() -> None:
        # Pinned: no handshake at all, every request carries its own _meta.
        async with Client(server.mcp_url, mode="2026-07-28") as client:
            assert client.protocol_version == "2026-07-28"
            await exercise(server, client.list_tools, client.call_tool)
            read = await client.read_resource(OVERVIEW_DAY)
            assert json.loads(read.contents[0].text) == server.rest("/api/dashboard/overview?timeframe=day")
        # Auto: server/discover finds the newest revision and our server info.
        async with Client(server.mcp_url, mode="auto") as client:
            assert client.protocol_version == "2026-07-28"
            assert client.server_info is not None and client.server_info.name == "dashboard-mcp"
            assert structured(await client.call_tool("dashboard_get_models", {"timeframe": "week"}))["models"]

    run(body)


def test_legacy_sse_transport(server: Server) -> None:
    async def body() -> None:
        async with sse_client(f"{server.base}/sse") as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.server_info.name == "dashboard-mcp"
                await exercise(server, session.list_tools, session.call_tool)

    run(body)


def post_usage(srv: Server, agent: str) -> None:
    record = {"timestamp": "2026-03-01T11:30:00Z", "agentId": agent, "model": "m", "cost": 1.25}
    report = srv.rest("/api/usage", json.dumps([record]).encode())
    assert report["accepted"] == 1, report


def resource_updates() -> tuple[Any, list[str], anyio.Event]:
    """A message handler recording `notifications/resources/updated` URIs."""
    uris: list[str] = []
    seen = anyio.Event()

    async def handler(message: Any) -> None:
        message = getattr(message, "root", message)
        if isinstance(message, types.ResourceUpdatedNotification):
            uris.append(str(message.params.uri))
            seen.set()

    return handler, uris, seen


def test_subscribed_session_is_notified_after_a_post(server: Server) -> None:
    async def body() -> None:
        handler, uris, seen = resource_updates()
        async with streamable_http_client(server.mcp_url) as (read, write):
            async with ClientSession(read, write, message_handler=handler) as session:
                await session.initialize()
                before = json.loads((await session.read_resource(OVERVIEW_DAY)).contents[0].text)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # resources/subscribe is deprecated in 2026-07-28
                    await session.subscribe_resource(OVERVIEW_DAY)
                await anyio.to_thread.run_sync(post_usage, server, "notify-agent")
                with anyio.fail_after(5):
                    await seen.wait()
                assert uris == [OVERVIEW_DAY] or set(uris) == {OVERVIEW_DAY}, uris
                after = json.loads((await session.read_resource(OVERVIEW_DAY)).contents[0].text)
                assert after["summary"]["totalCalls"] == before["summary"]["totalCalls"] + 1

    run(body)


def test_legacy_sse_subscription_is_notified(server: Server) -> None:
    async def body() -> None:
        handler, uris, seen = resource_updates()
        async with sse_client(f"{server.base}/sse") as (read, write):
            async with ClientSession(read, write, message_handler=handler) as session:
                await session.initialize()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    await session.subscribe_resource(OVERVIEW_DAY)
                await anyio.to_thread.run_sync(post_usage, server, "sse-agent")
                with anyio.fail_after(5):
                    await seen.wait()
                assert OVERVIEW_DAY in uris

    run(body)


def test_listen_2026_07_28_is_notified_after_a_post(server: Server) -> None:
    async def body() -> None:
        async with Client(server.mcp_url, mode="2026-07-28") as client:
            async with client.listen(resource_subscriptions=[OVERVIEW_DAY, "dashboard://nowhere"]) as sub:
                assert sub.honored is not None and sub.honored.resource_subscriptions == [OVERVIEW_DAY]
                await anyio.to_thread.run_sync(post_usage, server, "listen-agent")
                with anyio.fail_after(5):
                    async for event in sub:
                        assert str(event.uri) == OVERVIEW_DAY
                        break

    run(body)


def test_bearer_token_is_required_over_mcp(tmp_path: Path) -> None:
    srv = Server(tmp_path, token="py-s3cret")
    try:
        req = urllib.request.Request(f"{srv.base}/api/dashboard/overview")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 401

        async def body() -> None:
            from mcp.shared._httpx_utils import create_mcp_http_client

            async with create_mcp_http_client(headers=srv.headers()) as http:
                async with streamable_http_client(srv.mcp_url, http_client=http) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        assert (await session.list_tools()).tools

        run(body)
    finally:
        srv.stop()
