"""Raw JSON-RPC edge cases, byte for byte, without an SDK in between: over a `dashboard-mcp serve`
child's stdin/stdout and over raw HTTP to `/mcp` of a `serve --http` child.

Every bad message gets the error JSON-RPC 2.0 prescribes, as one response object with an `id`
member (`null` when the id cannot be read): -32700 for bytes that are not JSON, -32600 for JSON
that is not a request (a batch included: MCP 2025-06-18 dropped batching), -32602 for a
`tools/call` whose params are malformed; and the server goes on serving. Over HTTP those answers
are 400 `application/json`; `DELETE` of a session that is not open is 404. The binary is
$DASHBOARD_MCP_BIN, else <repo>/target/debug/dashboard-mcp.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from engines import database

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DASHBOARD_MCP_BIN") or REPO / "target" / "debug" / "dashboard-mcp")
NOW = "2026-03-01T12:00:00Z"
ANSWER_WITHIN_S = 20


def call(params: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": params}).encode()


# (name, bytes, code, id): the bad messages of the issue and what each must get.
BAD = [
    ("garbage", b"garbage", -32700, None),
    ("truncated JSON", b'{"jsonrpc":"2.0","id":1,"method":"pi', -32700, None),
    ("a NUL byte", b'{"jsonrpc":"2.0","id":1,"method":"ping\x00"}', -32700, None),
    ("invalid UTF-8", b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}', -32700, None),
    ("a float id", b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600, None),
    ("jsonrpc 1.0", b'{"jsonrpc":"1.0","id":7,"method":"ping"}', -32600, 7),
    ("a batch", b'[{"jsonrpc":"2.0","id":8,"method":"ping"},{"jsonrpc":"2.0","id":9,"method":"ping"}]', -32600, None),
    ("arguments as an array", call({"name": "dashboard_get_overview", "arguments": [1, 2]}), -32602, 41),
    ("arguments as a string", call({"name": "dashboard_get_overview", "arguments": "week"}), -32602, 41),
    ("tools/call without params", b'{"jsonrpc":"2.0","id":"np","method":"tools/call"}', -32602, "np"),
]


def assert_error(what: str, answer: Any, code: int, id_: Any) -> None:
    assert isinstance(answer, dict), f"{what}: one response object, got {answer!r}"
    assert answer.get("jsonrpc") == "2.0", f"{what}: {answer}"
    assert "id" in answer, f"{what}: no id member: {answer}"
    assert answer["id"] == id_, f"{what}: {answer}"
    assert answer["error"]["code"] == code, f"{what}: {answer}"
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"], f"{what}: {answer}"


def require_binary() -> None:
    if not BIN.exists():
        pytest.fail(f"no binary at {BIN}: run `cargo build` or set DASHBOARD_MCP_BIN")


class Stdio:
    """`dashboard-mcp serve` as a child; its stdout read line by line on a thread."""

    def __init__(self, tmp: Path) -> None:
        require_binary()
        self.proc = subprocess.Popen(
            [str(BIN), "--db", database(tmp), "--now", NOW, "serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={"DASHBOARD_MCP_LOG": "warn", "PATH": os.environ.get("PATH", "")},
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}).encode())
        assert self.answer()["result"]["serverInfo"]["name"] == "dashboard-mcp"
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def answer(self) -> Any:
        line = self.lines.get(timeout=ANSWER_WITHIN_S)
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def stdio(tmp_path: Path):
    s = Stdio(tmp_path)
    yield s
    s.stop()


@pytest.mark.parametrize("name,data,code,id_", BAD, ids=[b[0] for b in BAD])
def test_stdio_answers_a_bad_message_and_goes_on(stdio: Stdio, name: str, data: bytes, code: int, id_: Any) -> None:
    stdio.send(data)
    assert_error(name, stdio.answer(), code, id_)
    # Nothing else was written (a batch's requests were not run): the next line is the pong.
    stdio.send(b'{"jsonrpc":"2.0","id":100,"method":"ping"}')
    assert stdio.answer() == {"jsonrpc": "2.0", "id": 100, "result": {}}


def test_stdio_answers_a_line_over_16_mib_and_goes_on(stdio: Stdio) -> None:
    assert stdio.proc.stdin is not None
    stdio.proc.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"')
    chunk = b"x" * (1024 * 1024)
    for _ in range(20):  # 20 MiB, no newline yet
        stdio.proc.stdin.write(chunk)
    stdio.proc.stdin.flush()
    answer = stdio.answer()
    assert_error("a 20 MiB line", answer, -32600, None)
    assert "message too large" in answer["error"]["message"]
    stdio.send(b'"}}')
    stdio.send(b'{"jsonrpc":"2.0","id":2,"method":"ping"}')
    assert stdio.answer() == {"jsonrpc": "2.0", "id": 2, "result": {}}


class Http:
    """`dashboard-mcp serve --http 127.0.0.1:0` as a child."""

    def __init__(self, tmp: Path) -> None:
        require_binary()
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, DASHBOARD_MCP_LOG="info")
        env.pop("DASHBOARD_MCP_TOKEN", None)
        self.proc = subprocess.Popen(
            [str(BIN), "--db", database(tmp), "--now", NOW, "serve", "--http", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log, env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log_path.read_text(errors="replace"))
            if m:
                self.url = m.group(1) + "/mcp"
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the server did not start:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.05)

    def request(self, method: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        """(status, content type, headers, body bytes)."""
        h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        h.update(headers or {})
        req = urllib.request.Request(self.url, data=body, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=ANSWER_WITHIN_S) as resp:
                return resp.status, resp.headers.get("content-type"), resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("content-type"), e.headers, e.read()

    def open_session(self) -> str:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
        status, _, headers, _ = self.request("POST", json.dumps(init).encode())
        assert status == 200
        session = headers["mcp-session-id"]
        status, *_ = self.request("POST", b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
                                  {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-06-18"})
        assert status == 202
        return session

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
def http(tmp_path: Path):
    s = Http(tmp_path)
    yield s
    s.stop()


@pytest.mark.parametrize("name,data,code,id_", BAD, ids=[b[0] for b in BAD])
def test_mcp_post_answers_a_bad_message_with_400_json(http: Http, name: str, data: bytes, code: int, id_: Any) -> None:
    status, content_type, _, body = http.request("POST", data)
    assert status == 400, body
    assert content_type == "application/json"
    assert_error(name, json.loads(body), code, id_)


def test_mcp_delete_of_a_session_that_is_not_open_is_404(http: Http) -> None:
    headers = {"MCP-Protocol-Version": "2025-06-18"}
    status, content_type, _, body = http.request("DELETE", headers={**headers, "Mcp-Session-Id": "no-such-session"})
    assert status == 404, body
    assert content_type == "application/json"
    assert_error("an unknown session", json.loads(body), -32001, None)
    session = http.open_session()
    status, *_ = http.request("DELETE", headers={**headers, "Mcp-Session-Id": session})
    assert status == 202
    status, *_ = http.request("DELETE", headers={**headers, "Mcp-Session-Id": session})
    assert status == 404
