"""The hardening campaign at a larger scale; writes the figures for docs/reliability.md.

Runs the hardening tests (the same code CI runs) with ``RELIABILITY_SCALE`` (default 5:
100 SIGKILLs of `generate`, 3 of `train`, 5x the 500-error requests) and collects
what they record: kills landed and rows lost, faults injected per kind, hostile
cases tried per command, garbage completions, peak memory on a 50 MB line.

    python bench/reliability_campaign.py [--scale 5] [--out bench/reliability_campaign.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["tests/test_crash_campaign.py", "tests/test_faults.py", "tests/test_hostile_inputs.py",
         "tests/test_security.py", "tests/test_property_parsing_filter.py"]


def summarize(rows: list[dict]) -> dict:
    by = defaultdict(list)
    for r in rows:
        by[r.pop("section")].append(r)
    gen = by["generate_kills"]
    faults = Counter()
    for r in by["fault"]:
        faults[r["kind"]] += r["injected"]
    hostile = defaultdict(set)
    for r in by["hostile"]:
        hostile[r["command"]].add(r["case"])
    return {
        "generate_kills": sum(r["kills"] for r in gen),
        "generate_rows_lost": sum(r["rows_lost"] for r in gen),
        "generate_tasks_kept": sum(r["tasks"] for r in gen),
        "generate_data_rows": sum(r["data"] for r in gen),
        "generate_rounds": sum(r["rounds"] for r in gen),
        "generate_kill_modes": dict(sum((Counter(r["modes"]) for r in gen), Counter())),
        "train_kills": sum(r["kills"] for r in by["train_kills"]),
        "train_partial_checkpoints": sum(r["partial_checkpoints"] for r in by["train_kills"]),
        "train_duplicated_steps": sum(r["duplicated_steps"] for r in by["train_kills"]),
        "faults_injected": dict(faults),
        "fault_requests": sum(r["requests"] for r in by["fault"]),
        "fault_retries": sum(r["retries"] for r in by["fault"]),
        "fault_failures": sum(r["failures"] for r in by["fault"]),
        "hostile_cases": {c: sorted(v) for c, v in sorted(hostile.items())},
        "hostile_total": sum(len(v) for v in hostile.values()),
        "garbage_kinds": sorted({r["kind"] for r in by["garbage"]}),
        "huge_line_peak_rss_mb": {r["command"]: r["peak_rss_mb"] for r in by["huge_line_rss"]},
    }


def time_huge_line() -> dict:
    """Parse one 1.7 MB line of 80,000 inline-numbered items (was quadratic)."""
    sys.path.insert(0, str(ROOT))
    from selfinstruct.generation.parsing import parse_instructions

    text = " " + " ".join(f"{i}. do thing {i}" for i in range(2, 80_000))
    t0 = time.perf_counter()
    n = len(parse_instructions(text, prefix="1.").items)
    return {"chars": len(text), "items": n, "seconds": round(time.perf_counter() - t0, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "reliability_campaign.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.jsonl"
        env = {**os.environ, "RELIABILITY_SCALE": str(args.scale), "RELIABILITY_FIGURES": str(figures),
               "HF_HUB_OFFLINE": "1"}
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FILES],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-500:]
        rows = [json.loads(x) for x in figures.read_text().splitlines()] if figures.exists() else []
    result = {"scale": args.scale, "pytest": tail, "pytest_exit": p.returncode, "seconds": round(seconds, 1),
              **summarize(rows), "huge_line_parse": time_huge_line()}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if p.returncode:
        print(p.stdout[-5000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
