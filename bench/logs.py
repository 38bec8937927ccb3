#!/usr/bin/env python3
"""Import of Claude Code session logs: `dashboard-mcp import --from claude-code` against ccusage
reading the same files (its daily report, the work it always does), in one run, medians of
--runs. Also the re-import of the unchanged logs (what an hourly cron job pays) and of the logs
after one session grew.

    cargo build --release
    python3 bench/logs.py --projects 20 --sessions 40 --runs 3

The logs come from tests/python/agent_logs.py (deterministic). ccusage is the one the parity
test installs (.ccusage/; run tests/python/test_ccusage.py once, or `npm install --prefix
.ccusage ccusage@20.0.24`)."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from agent_logs import claude_logs  # noqa: E402


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    return time.perf_counter() - t0, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "dashboard-mcp"))
    ap.add_argument("--ccusage", default=str(ROOT / ".ccusage" / "node_modules" / ".bin" / "ccusage"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "claude"
        claude_logs(logs, random.Random(7), projects=a.projects, sessions=a.sessions)
        files = list(logs.rglob("*.jsonl"))
        size = sum(f.stat().st_size for f in files)
        lines = sum(f.read_text().count("\n") for f in files)
        first, again, grown, theirs = [], [], [], []
        records = 0
        for r in range(a.runs):
            db = str(Path(tmp) / f"run{r}.db")
            t, out = timed([a.bin, "--db", db, "import", "--from", "claude-code", str(logs), "--json"])
            first.append(t)
            records = json.loads(out)["accepted"]
            again.append(timed([a.bin, "--db", db, "import", "--from", "claude-code", str(logs), "--json"])[0])
            # One session grows by a copy of its last 20 lines (ids repeat: nothing new counted).
            f = files[r % len(files)]
            tail = f.read_text().splitlines()[-20:]
            with f.open("a") as w:
                w.write("\n".join(tail) + "\n")
            grown.append(timed([a.bin, "--db", db, "import", "--from", "claude-code", str(logs), "--json"])[0])
            theirs.append(timed([a.ccusage, "claude", "daily", "--json", "--offline"],
                                {"CLAUDE_CONFIG_DIR": str(logs)})[0])
        med = statistics.median
        print(f"logs: {len(files)} files, {lines} lines, {size / 1e6:.1f} MB, {records} executions")
        print(f"| | median s | lines/s | MB/s |")
        print(f"|---|---|---|---|")
        for name, xs in [("dashboard-mcp import --from claude-code (first)", first),
                         ("ccusage claude daily --offline (same files)", theirs),
                         ("dashboard-mcp, again, nothing new", again),
                         ("dashboard-mcp, again, one file grown", grown)]:
            m = med(xs)
            print(f"| {name} | {m:.3f} | {lines / m:,.0f} | {size / 1e6 / m:.1f} |")
        print(f"ratio first import / ccusage: {med(first) / med(theirs):.2f}")


if __name__ == "__main__":
    main()
