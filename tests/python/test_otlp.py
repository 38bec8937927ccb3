"""`POST /v1/traces` fed by the real OpenTelemetry Python SDK (`opentelemetry-sdk` with its
OTLP/HTTP protobuf exporter), a client we did not write.

GenAI spans are made by hand with the semantic-convention attributes (gen_ai.operation.name,
gen_ai.request.model, gen_ai.usage.*, gen_ai.agent.name, gen_ai.conversation.id), one with an
ERROR status, plus one plain span that must be ignored; the exporter sends them, uncompressed and
gzip-compressed, to a `dashboard-mcp --allow-writes serve --http` on an empty database, and the
overview's totals must equal the ones worked out by hand below. The binary is $DASHBOARD_MCP_BIN,
else <repo>/target/debug/dashboard-mcp.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import requests

from engines import database

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DASHBOARD_MCP_BIN") or REPO / "target" / "debug" / "dashboard-mcp")
NOW = "2026-03-01T12:00:00Z"
# 2026-03-01T11:00:00Z in nanoseconds: an hour before NOW, inside the overview's day.
ELEVEN_NS = 1_772_362_800 * 1_000_000_000
SECOND_NS = 1_000_000_000
STARTUP_LIMIT_S = 20


class Server:
    """`dashboard-mcp --allow-writes serve --http 127.0.0.1:0` on a new, empty database."""

    def __init__(self, tmp: Path) -> None:
        if not BIN.exists():
            pytest.fail(f"no binary at {BIN}: run `cargo build` or set DASHBOARD_MCP_BIN")
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "wb")  # a file, not a pipe: a full pipe would stall the server
        env = dict(os.environ, DASHBOARD_MCP_LOG="info")
        env.pop("DASHBOARD_MCP_TOKEN", None)
        cmd = [str(BIN), "--db", database(tmp), "--now", NOW, "--allow-writes", "serve", "--http", "127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while time.monotonic() < deadline:
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log_path.read_text(errors="replace"))
            if m:
                self.base = m.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"the server did not start:\n{self.log_path.read_text(errors='replace')}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=10) as resp:
            return json.loads(resp.read())

    def summary(self) -> dict[str, Any]:
        return self.get("/api/dashboard/overview?timeframe=day")["summary"]

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


class Exported:
    """An SDK pipeline to the server: a BatchSpanProcessor with the OTLP/HTTP exporter, plus an
    in-memory copy of every finished span (to export the same spans again), and a record of each
    HTTP exchange (request headers with lower-case names, status, response body) through the
    exporter's session."""

    def __init__(self, base: str, compression: Compression) -> None:
        self.exchanges: list[tuple[dict[str, str], int, bytes]] = []
        session = requests.Session()
        session.hooks["response"].append(
            lambda r, *a, **k: self.exchanges.append(({k.lower(): v for k, v in r.request.headers.items()}, r.status_code, r.content)))
        self.exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", compression=compression,
                                         session=session, timeout=10)
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "py-service"}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("dashboard-mcp-test")

    def genai(self, minute: int, seconds: int, attributes: dict[str, Any], error: str | None = None) -> None:
        start = ELEVEN_NS + minute * 60 * SECOND_NS
        span = self.tracer.start_span(f"chat {attributes.get('gen_ai.request.model', '')}", start_time=start)
        span.set_attributes({"gen_ai.operation.name": "chat", **attributes})
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=start + seconds * SECOND_NS)

    def plain(self) -> None:
        span = self.tracer.start_span("GET /health", start_time=ELEVEN_NS)
        span.set_attribute("http.request.method", "GET")
        span.end(end_time=ELEVEN_NS + SECOND_NS)

    def flush(self) -> None:
        assert self.provider.force_flush(10_000)

    def close(self) -> None:
        self.provider.shutdown()


def test_sdk_spans_become_executions(server: Server) -> None:
    assert server.summary()["totalCalls"] == 0
    ex = Exported(server.base, Compression.NoCompression)
    # 120 tokens: 100 in + 20 out.
    ex.genai(0, 2, {"gen_ai.request.model": "gpt-4o", "gen_ai.agent.name": "py-agent",
                    "gen_ai.conversation.id": "conv-1",
                    "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20})
    # input_tokens 300 includes 100 read from the cache: prompt 200 + 50 out + 100 cache = 350.
    ex.genai(1, 1, {"gen_ai.request.model": "gpt-4o", "gen_ai.agent.name": "py-agent",
                    "gen_ai.conversation.id": "conv-1",
                    "gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 50,
                    "gen_ai.usage.cache_read.input_tokens": 100})
    # A failed call: 40 tokens in, none out.
    ex.genai(2, 3, {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.agent.name": "py-agent-2",
                    "gen_ai.conversation.id": "conv-2",
                    "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 0}, error="rate limited")
    ex.plain()  # not GenAI: ignored
    ex.flush()
    ex.close()

    assert ex.exchanges, "the exporter sent nothing"
    for headers, status, body in ex.exchanges:
        assert status == 200, body
        assert headers["content-type"] == "application/x-protobuf"
        assert "content-encoding" not in headers
        assert body == b""  # full success: an empty ExportTraceServiceResponse
    s = server.summary()
    # 3 GenAI calls, 1 error, 120 + 350 + 40 = 510 tokens, 2 agents; durations 2, 1, 3 s.
    assert (s["totalCalls"], s["errorCount"], s["totalTokens"], s["activeAgents"]) == (3, 1, 510, 2), s
    assert s["avgLatencyMs"] == 2000.0, s
    executions = server.get("/api/dashboard/executions?timeframe=day&limit=10")["executions"]
    by_agent = sorted((e["agentId"], e["model"], e["tokens"]["prompt"], e["tokens"]["cacheRead"], e["success"],
                       e.get("error"), e.get("sessionId")) for e in executions)
    assert by_agent == [
        ("py-agent", "gpt-4o", 100, 0, True, None, "conv-1"),
        ("py-agent", "gpt-4o", 200, 100, True, None, "conv-1"),
        ("py-agent-2", "gpt-4o-mini", 40, 0, False, "rate limited", "conv-2"),
    ], by_agent
    for e in executions:
        assert re.fullmatch(r"otel:[0-9a-f]{32}:[0-9a-f]{16}", e["id"]), e["id"]
        assert e["metadata"]["source"] == "otlp"


def test_sdk_gzip_export_and_a_retried_export_counts_once(server: Server) -> None:
    ex = Exported(server.base, Compression.Gzip)
    # 7 + 3 = 10 tokens; a failed call of 11 + 0; plain spans ignored. No agent name: the
    # resource's service.name is the agent.
    ex.genai(5, 1, {"gen_ai.request.model": "claude-x", "gen_ai.usage.input_tokens": 7,
                    "gen_ai.usage.output_tokens": 3})
    ex.genai(6, 1, {"gen_ai.request.model": "claude-x", "gen_ai.usage.input_tokens": 11,
                    "gen_ai.usage.output_tokens": 0}, error="overloaded")
    ex.plain()
    ex.flush()
    assert ex.exchanges
    for headers, status, body in ex.exchanges:
        assert status == 200, body
        assert headers["content-encoding"] == "gzip"
        assert body == b""
    expected = (2, 1, 21, 1)
    s = server.summary()
    assert (s["totalCalls"], s["errorCount"], s["totalTokens"], s["activeAgents"]) == expected, s
    agents = server.get("/api/dashboard/agents?timeframe=day")["agents"]
    assert [a["id"] for a in agents] == ["py-service"], agents

    # The same three spans exported again (as a retry would): accepted, and nothing counts twice.
    spans = ex.memory.get_finished_spans()
    assert len(spans) == 3
    assert ex.exporter.export(spans) == SpanExportResult.SUCCESS
    assert ex.exchanges[-1][1] == 200
    s = server.summary()
    assert (s["totalCalls"], s["errorCount"], s["totalTokens"], s["activeAgents"]) == expected, s
    ex.close()
