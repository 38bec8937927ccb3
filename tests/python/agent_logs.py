"""Claude Code and Codex session logs shaped like the real ones, generated deterministically: the
parity test with ccusage (test_ccusage.py) and the log-import benchmark (bench/logs.py) read them.

Claude Code: projects × sessions of turns over five days; a message is written 1-3 times as it
streams (its output growing), some in a subagent file or as sidechain lines, resumed sessions
copy earlier messages into their file, API errors and `<synthetic>` lines, cache writes with a
1-hour part. Codex: sessions of token_count events, running totals with and without
last_token_usage, model switches by turn_context."""

from __future__ import annotations

import json
import random
from pathlib import Path


def compact(o: object) -> str:
    # Claude Code and Codex write compact JSON (ccusage looks for `"usage":{`).
    return json.dumps(o, separators=(",", ":"))


MODELS = ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-1-20250805"]


def claude_logs(root: Path, rng: random.Random, projects: int = 3, sessions: int = 6) -> None:
    """`projects` × `sessions` × ~25 turns over 5 days."""
    for p in range(projects):
        cwd = f"/home/dev/proj{p}"
        folder = root / "projects" / cwd.replace("/", "-")
        folder.mkdir(parents=True)
        earlier: list[str] = []
        for s in range(sessions):
            sid = f"{p}-{s}-0000-0000-000000000000"
            lines: list[str] = []
            # A resumed session starts with copies of an earlier one's messages.
            if earlier and rng.random() < 0.4:
                lines.extend(earlier[: rng.randint(1, len(earlier))])
            day = 1 + (p + s) % 5
            t = rng.randint(0, 20 * 3600)
            sub_lines: list[str] = []
            for turn in range(rng.randint(15, 35)):
                t += rng.randint(5, 300)
                ts = f"2025-10-0{day}T{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}.{rng.randint(0, 999):03d}Z"
                lines.append(compact({"type": "user", "timestamp": ts, "sessionId": sid, "cwd": cwd,
                                      "message": {"role": "user", "content": "go on"}}))
                model = rng.choice(MODELS)
                mid, rid = f"msg_{p}{s}{turn:03d}{rng.randint(0, 10**9)}", f"req_{rng.randint(0, 10**12)}"
                usage = {"input_tokens": rng.randint(1, 50), "output_tokens": 0,
                         "cache_read_input_tokens": rng.randint(0, 150_000),
                         "cache_creation_input_tokens": rng.randint(0, 20_000)}
                if usage["cache_creation_input_tokens"] and rng.random() < 0.5:
                    one_h = rng.randint(0, usage["cache_creation_input_tokens"])
                    usage["cache_creation"] = {"ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"] - one_h,
                                               "ephemeral_1h_input_tokens": one_h}
                sidechain = rng.random() < 0.15
                # Streaming: the same message written 1-3 times, its output growing.
                final_out = rng.randint(1, 4000)
                for k in range(rng.randint(1, 3), 0, -1):
                    u = dict(usage, output_tokens=max(1, final_out // k))
                    line = {"type": "assistant", "timestamp": ts, "sessionId": sid, "cwd": cwd,
                            "version": "2.0.30", "requestId": rid, "isSidechain": sidechain,
                            "uuid": f"{mid}-{k}",
                            "message": {"id": mid, "type": "message", "role": "assistant", "model": model,
                                        "content": [{"type": "text", "text": "ok"}], "usage": u}}
                    (sub_lines if sidechain and rng.random() < 0.7 else lines).append(compact(line))
                if rng.random() < 0.05:
                    lines.append(compact({"type": "assistant", "timestamp": ts, "sessionId": sid, "cwd": cwd,
                                          "requestId": f"req_e{turn}{rng.randint(0, 10**9)}", "isApiErrorMessage": True,
                                          "message": {"id": f"msg_e{rng.randint(0, 10**12)}", "model": model,
                                                      "content": [{"type": "text", "text": "API Error: 529"}],
                                                      "usage": {"input_tokens": 0, "output_tokens": 0}}}))
                if rng.random() < 0.05:
                    lines.append(compact({"type": "assistant", "timestamp": ts, "sessionId": sid, "cwd": cwd,
                                          "message": {"id": f"msg_s{rng.randint(0, 10**12)}", "model": "<synthetic>",
                                                      "content": [{"type": "text", "text": "No response requested."}],
                                                      "usage": {"input_tokens": 0, "output_tokens": 0}}}))
            (folder / f"{sid}.jsonl").write_text("\n".join(lines) + "\n")
            if sub_lines:
                sub = folder / sid / "subagents"
                sub.mkdir(parents=True)
                (sub / f"agent-{s}.jsonl").write_text("\n".join(sub_lines) + "\n")
            earlier = [l for l in lines if '"assistant"' in l]


def codex_logs(root: Path, rng: random.Random, sessions: int = 8) -> None:
    """`sessions` over 4 days; running totals with and without last_token_usage."""
    for s in range(sessions):
        day = 1 + s % 4
        sid = f"0199aaaa-bbbb-cccc-dddd-{s:012d}"
        folder = root / "sessions" / "2025" / "10" / f"{day:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        ts = lambda sec: f"2025-10-{day:02d}T{10 + sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.000Z"
        lines = [compact({"timestamp": ts(0), "type": "session_meta",
                          "payload": {"id": sid, "timestamp": ts(0), "cwd": f"/home/dev/proj{s % 3}",
                                      "originator": "codex_cli_rs", "cli_version": "0.46.0"}})]
        total = [0, 0, 0, 0]
        sec = 1
        for turn in range(rng.randint(5, 20)):
            sec += rng.randint(10, 200)
            if turn == 0 or rng.random() < 0.2:
                lines.append(compact({"timestamp": ts(sec), "type": "turn_context",
                                      "payload": {"cwd": f"/home/dev/proj{s % 3}",
                                                  "model": rng.choice(["gpt-5-codex", "gpt-5"])}}))
            inp = rng.randint(2000, 60000)
            last = [inp, rng.randint(0, inp), rng.randint(10, 3000), 0]
            last[3] = rng.randint(0, last[2])
            total = [a + b for a, b in zip(total, last)]
            u = lambda v: {"input_tokens": v[0], "cached_input_tokens": v[1], "output_tokens": v[2],
                           "reasoning_output_tokens": v[3], "total_tokens": v[0] + v[2]}
            info = {"total_token_usage": u(total), "model_context_window": 272000}
            if rng.random() < 0.7:
                info["last_token_usage"] = u(last)
            lines.append(compact({"timestamp": ts(sec), "type": "event_msg",
                                  "payload": {"type": "token_count", "info": info, "rate_limits": None}}))
        (folder / f"rollout-2025-10-{day:02d}T10-00-00-{sid}.jsonl").write_text("\n".join(lines) + "\n")
