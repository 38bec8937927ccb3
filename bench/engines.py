#!/usr/bin/env python3
"""Side by side: two `dashboard-mcp bench --json` reports of the same dataset, SQLite and
PostgreSQL (BENCHMARKS.md, "Two engines"). Usage: bench/engines.py sqlite.json postgres.json"""

import json
import sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
short = lambda t: t.removeprefix("dashboard_get_")
print("| figure | SQLite | PostgreSQL |")
print("|---|---|---|")
rate = lambda r: f"{r['importRecordsPerSec']:,.0f} records/s ({r['importSecs']:.1f} s)" if r.get("importRecordsPerSec") else "reused"
print(f"| import from JSONL | {rate(a)} | {rate(b)} |")
print(f"| store size | {a['bytesPerExecution']:.1f} bytes/execution | {b['bytesPerExecution']:.1f} bytes/execution |")
cs = lambda r: f"p50 {r['coldStartMs']['p50Ms']:.1f} ms, p95 {r['coldStartMs']['p95Ms']:.1f} ms" if r.get("coldStartMs") else "–"
print(f"| stdio cold start | {cs(a)} | {cs(b)} |")
print(f"| peak RSS (bench process) | {a['peakRssMib']:.0f} MiB | {b['peakRssMib']:.0f} MiB |")
print()
print("| tool | window | SQLite p50 | SQLite p95 | PostgreSQL p50 | PostgreSQL p95 | PG / SQLite p50 | PG cached p95 | PG raw SQL p50 | PG p95 ≤ 25 ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
by = {(t["tool"], t["timeframe"]): t for t in a["tools"]}
for t in b["tools"]:
    s = by[(t["tool"], t["timeframe"])]
    raw = t.get("rawSql") or {}
    ok = "met" if t["uncached"]["p95Ms"] <= 25 else "**missed**"
    print(f"| {short(t['tool'])} | {t['timeframe'].replace('-', '–')} | {s['uncached']['p50Ms']:.2f} | {s['uncached']['p95Ms']:.2f} | "
          f"{t['uncached']['p50Ms']:.2f} | {t['uncached']['p95Ms']:.2f} | {t['uncached']['p50Ms'] / s['uncached']['p50Ms']:.1f}× | "
          f"{t['cached']['p95Ms']:.3f} | {raw.get('p50Ms', float('nan')):.1f} | {ok} |")
