"""Where a one-request-at-a-time server's time goes, per stage of a generate run (for bench/chat_bench.py).

``record(path)`` (called in the generate process before the CLI runs) wraps the openai teacher's request so
that each answered request appends ``{stage, sent, answered, prompt_tokens, completion_tokens}`` to ``path``.
The stage is read from the request's ``max_tokens``: generate's classify (3) and instance (256) limits, else
the instruction stage. ``stage_lines(path, rows)`` turns the file into one markdown line per stage.

A serial server answers requests in turn, so a request's service time runs from the later of its send time
and the previous answer to its own answer; the sum over requests is the server's busy time.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path


def stage_of(max_tokens: int | None) -> str:
    from selfinstruct.generation.bootstrap import CLASSIFY_TOKENS, INSTANCE_TOKENS

    return {CLASSIFY_TOKENS: "classify", INSTANCE_TOKENS: "instances"}.get(max_tokens, "instructions")


def record(path: str) -> None:
    """Log every request the openai teacher gets an answer to (one JSON line each) to ``path``."""
    from selfinstruct.teachers import openai_api

    sink = open(path, "a", encoding="utf-8")
    original = openai_api.OpenAITeacher._request

    async def _request(self, client, prompt, params):
        sent = time.time()
        text, finish, usage = await original(self, client, prompt, params)
        sink.write(json.dumps({"stage": stage_of(params.get("max_tokens")), "sent": sent, "answered": time.time(),
                               "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
                               "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
                               "length": finish == "length"}) + "\n")
        sink.flush()
        return text, finish, usage

    openai_api.OpenAITeacher._request = _request


def service_times(reqs: list[dict]) -> list[float]:
    """Each request's service time on a serial server (``reqs`` in any order; returned in answer order)."""
    out, previous = [], None
    for r in sorted(reqs, key=lambda r: r["answered"]):
        start = r["sent"] if previous is None else max(r["sent"], previous)
        out.append(r["answered"] - start)
        previous = r["answered"]
    return out


def stage_table(reqs: list[dict]) -> dict:
    """stage -> {requests, seconds, prompt_tokens, completion_tokens, length}."""
    table: dict = defaultdict(lambda: dict.fromkeys(("requests", "seconds", "prompt_tokens", "completion_tokens",
                                                     "length"), 0))
    for r, s in zip(sorted(reqs, key=lambda r: r["answered"]), service_times(reqs)):
        row = table[r["stage"]]
        row["requests"] += 1
        row["seconds"] += s
        row["prompt_tokens"] += r["prompt_tokens"]
        row["completion_tokens"] += r["completion_tokens"]
        row["length"] += bool(r.get("length"))
    return dict(table)


def stage_lines(path: Path, rows: int) -> list[str]:
    """One line per stage: requests, server seconds (share), tokens in and out, and per training row."""
    path = Path(path)
    if not path.exists():
        return []
    reqs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    table = stage_table(reqs)
    busy = sum(r["seconds"] for r in table.values()) or 1.0
    lines = []
    for stage in ("instructions", "classify", "instances"):
        if stage in table:
            t = table[stage]
            lines.append(f"  - {stage}: {t['requests']} requests, {t['seconds']:.0f} server s "
                         f"({100 * t['seconds'] / busy:.0f}%), {t['prompt_tokens']:,} tokens in, "
                         f"{t['completion_tokens']:,} out ({t['completion_tokens'] / max(1, t['seconds']):.1f}/s), "
                         f"{t['length']} cut at the token limit; per training row {t['seconds'] / max(1, rows):.2f} s "
                         f"and {t['completion_tokens'] / max(1, rows):.0f} tokens out")
    return lines
