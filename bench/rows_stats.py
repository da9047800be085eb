"""What a generate run's rows look like: instances per task, rows with an input, output length, rows a minute.

    python bench/rows_stats.py RUN [RUN ...] [--refs ../shared/data/self_instruct_seed_tasks.jsonl] [--show 10]

Per run folder: kept tasks, rows, mean instances per task (and the share of tasks with 2 or more), the share
of rows with an input, the median output length in words, and rows a minute of the run's own recorded
seconds; with ``--refs`` (seed tasks in the paper's format, for measurement only) the same figures for their
references. ``--show N`` prints N rows drawn with ``random.seed(0)``, unedited, as a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def figures(tasks: list[dict], seconds: float | None = None) -> dict:
    rows = [i for t in tasks for i in t["instances"]]
    n = [len(t["instances"]) for t in tasks] or [0]
    words = [len(i["output"].split()) for i in rows] or [0]
    return {"tasks": len(tasks), "rows": len(rows), "instances_per_task": round(statistics.mean(n), 2),
            "tasks_2plus": round(sum(k >= 2 for k in n) / max(1, len(tasks)), 2),
            "rows_with_input": round(sum(bool(i["input"].strip()) for i in rows) / max(1, len(rows)), 2),
            "median_output_words": statistics.median(words),
            "rows_per_minute": round(len(rows) / seconds * 60, 1) if seconds else None,
            "seconds": round(seconds) if seconds else None}


def cell(text: str, n: int = 140) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--refs", default=None)
    ap.add_argument("--show", type=int, default=0)
    args = ap.parse_args()
    if args.refs:
        refs = read_jsonl(args.refs)
        print("refs", json.dumps(figures([{**t, "instances": t["instances"][:1]} for t in refs])))
    for run in args.runs:
        stats = json.loads((Path(run) / "stats.json").read_text())
        seconds = sum(r["seconds"] for r in stats.get("rounds", []))
        tasks = read_jsonl(Path(run) / "tasks.jsonl")
        print(run, json.dumps(figures(tasks, seconds)))
        if args.show:
            rows = [{"instruction": t["instruction"], **i} for t in tasks for i in t["instances"]]
            random.seed(0)
            print("| # | instruction | input | output |\n|---|---|---|---|")
            for k, r in enumerate(random.sample(rows, min(args.show, len(rows))), 1):
                print(f"| {k} | {cell(r['instruction'])} | {cell(r['input'])} | {cell(r['output'])} |")


if __name__ == "__main__":
    main()
