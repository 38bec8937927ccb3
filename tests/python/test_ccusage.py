"""Parity with ccusage, the tool people already use on these logs: on a generated set of Claude
Code and Codex session logs shaped like the real ones (streaming repeats whose usage grows,
resumed sessions that copy earlier messages into a new file, subagent files, sidechain copies,
API errors, `<synthetic>` lines, cache writes with a 1-hour part, Codex token_count events with
and without last_token_usage, repeated events, model switches), `import --from` stores exactly the
tokens ccusage counts, per day, and a cost within 1 % of ccusage's.

ccusage (npm, pinned below) is installed by this test into .ccusage/ beside the virtualenv the
first time; npm must be on PATH (it is on every machine of this project)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

import engines
from agent_logs import claude_logs, codex_logs

CCUSAGE = "ccusage@20.0.24"
BIN = os.environ["DASHBOARD_MCP_BIN"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ccusage() -> str:
    prefix = ROOT / ".ccusage"
    exe = prefix / "node_modules" / ".bin" / "ccusage"
    if not exe.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install ccusage for the parity test"
        subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", CCUSAGE],
                       check=True, capture_output=True, timeout=300)
    return str(exe)


def ours_by_day(db: str, source: str, logs: Path) -> dict[str, tuple[int, float]]:
    subprocess.run([BIN, "--db", db, "import", "--from", source, str(logs), "--json"],
                   check=True, capture_output=True, timeout=120)
    def daily(metric: str) -> list[dict]:
        args = {"start": "2025-09-30T00:00:00Z", "end": "2025-10-08T00:00:00Z", "granularity": "day",
                "metric": metric}
        out = subprocess.run([BIN, "--db", db, "--now", "2025-10-08T00:00:00Z", "query", "timeline", "--json",
                              json.dumps(args)], check=True, capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)["series"]

    tokens, cost = daily("tokens"), daily("cost")
    days: dict[str, tuple[int, float]] = {}
    for t, c in zip(tokens, cost):
        if t["value"]:
            days[t["timestamp"][:10]] = (int(t["value"]), c["value"])
    return days


def theirs_by_day(exe: str, args: list[str], env: dict[str, str]) -> dict[str, tuple[int, float]]:
    out = subprocess.run([exe, *args, "daily", "--json", "--offline", "--timezone", "UTC"],
                         check=True, capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    days = {}
    for d in json.loads(out.stdout)["daily"]:
        days[d["date"]] = (d["totalTokens"], d.get("totalCost", d.get("costUSD")))
    return days


def compare(ours: dict[str, tuple[int, float]], theirs: dict[str, tuple[int, float]]) -> None:
    assert sorted(ours) == sorted(theirs)
    assert [ours[d][0] for d in sorted(ours)] == [theirs[d][0] for d in sorted(theirs)]
    for d in sorted(ours):
        assert ours[d][1] == pytest.approx(theirs[d][1], rel=0.01), d
    assert sum(v[0] for v in ours.values()) > 1_000_000


def test_claude_code_tokens_equal_ccusage_and_cost_within_1_percent(ccusage: str, tmp_path: Path) -> None:
    logs = tmp_path / "claude"
    claude_logs(logs, random.Random(13))
    ours = ours_by_day(engines.database(tmp_path), "claude-code", logs)
    theirs = theirs_by_day(ccusage, ["claude"], {"CLAUDE_CONFIG_DIR": str(logs)})
    compare(ours, theirs)


def test_codex_tokens_equal_ccusage_and_cost_within_1_percent(ccusage: str, tmp_path: Path) -> None:
    logs = tmp_path / "codex"
    codex_logs(logs, random.Random(29))
    ours = ours_by_day(engines.database(tmp_path), "codex", logs)
    theirs = theirs_by_day(ccusage, ["codex"], {"CODEX_HOME": str(logs)})
    compare(ours, theirs)
