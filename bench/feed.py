#!/usr/bin/env python3
"""Feed records to `POST /api/usage` at a steady rate while a load test runs.

    python3 bench/feed.py http://127.0.0.1:8080 feed.jsonl --rate 10000 --batch 1000 --seconds 70

Sends `batch`-line NDJSON bodies, `rate / batch` times a second, from the JSONL file (make it with
`dashboard-mcp demo --events N --seed S --out feed.jsonl`; a new seed gives new ids). Prints the
records sent and accepted, the achieved rate, the slowest POST and any failure. Standard library
only.

`--recent S --now T` turns it into a live feed: the records' timestamps are rewritten (before the
clock starts), in file order, to spread evenly over the S seconds before T, as a server sees the
work its agents are doing now. Without it the file's own timestamps are sent (a demo day: a
back-fill of the last 24 hours, which makes every batch land in hours already judged).
"""
import argparse
import json
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("file")
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--seconds", type=float, default=70)
    ap.add_argument("--token")
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--recent", type=float, help="seconds before --now to spread timestamps over")
    ap.add_argument("--now", help="RFC 3339 instant the --recent window ends at")
    a = ap.parse_args()
    with open(a.file, "rb") as f:
        lines = f.read().splitlines()
    if a.recent:
        if not a.now:
            ap.error("--recent needs --now")
        from datetime import datetime
        end_ms = int(datetime.fromisoformat(a.now.replace("Z", "+00:00")).timestamp() * 1000)
        span_ms = int(a.recent * 1000)
        n = len(lines)
        for k, line in enumerate(lines):
            record = json.loads(line)
            record["timestamp"] = end_ms - span_ms + k * span_ms // n
            lines[k] = json.dumps(record, separators=(",", ":")).encode()
    bodies = [b"\n".join(lines[i:i + a.batch]) for i in range(0, len(lines), a.batch)]
    interval = a.batch / a.rate
    headers = {"content-type": "application/x-ndjson"}
    if a.token:
        headers["authorization"] = f"Bearer {a.token}"
    sent = accepted = failures = 0
    slowest = 0.0
    lock = threading.Lock()

    def post(body: bytes) -> None:
        nonlocal accepted, failures, slowest
        t = time.monotonic()
        req = urllib.request.Request(a.base + "/api/usage", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                report = json.load(r)
            with lock:
                accepted += report["accepted"] + report["duplicates"]
        except Exception as e:  # noqa: BLE001 - report every failure, keep feeding
            with lock:
                failures += 1
            print(f"feed: POST failed: {e}", file=sys.stderr)
        with lock:
            slowest = max(slowest, time.monotonic() - t)

    # Several POSTs may be in flight, so one slow answer does not delay the schedule.
    print(f"feed: sending {len(lines)} records", file=sys.stderr, flush=True)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=a.in_flight) as pool:
        for k, body in enumerate(bodies):
            due = start + k * interval
            if due - start >= a.seconds:
                break
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pool.submit(post, body)
            sent += body.count(b"\n") + 1
    took = time.monotonic() - start
    print(f"feed-summary sent={sent} acknowledged={accepted} seconds={took:.1f} "
          f"rate={sent / took:.0f}/s slowest_post={slowest * 1000:.0f}ms failures={failures}")
    return 1 if failures or accepted != sent else 0


if __name__ == "__main__":
    sys.exit(main())
