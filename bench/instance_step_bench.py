"""The instance step alone, on the same tasks, under several settings: what rows does each make?

    python bench/instance_step_bench.py TASKS.jsonl --n 32 --variant random/1 --variant similar/3 ...

TASKS.jsonl: a ``generate`` run's tasks (generated instructions; no eval data). The first ``--n`` tasks go
through generate's own ``instances.add_instances`` (classification as the run labelled them) with each
``--variant DEMOS/SAMPLES[/TOKENS]`` (DEMOS: similar or random; SAMPLES: answers a task; TOKENS: the
instance token limit, default 256) on one loaded teacher. Prints per variant: tasks kept, rows, instances per
task, tasks with 2 or more, rows with an input, median output words, completion tokens, seconds, load.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections import Counter
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selfinstruct.data.seeds import load_seeds  # noqa: E402
from selfinstruct.generation import instances as I  # noqa: E402
from selfinstruct.generation.bootstrap import GenerateConfig  # noqa: E402
from selfinstruct.teachers import make_teacher  # noqa: E402


def run_variant(teacher, tasks, seeds, demos: str, samples: int, tokens: int) -> dict:
    cfg = GenerateConfig(instance_demos=demos, instance_samples=samples)
    I.INSTANCE_TOKENS, old = tokens, I.INSTANCE_TOKENS
    cands = [SimpleNamespace(instruction=t["instruction"], responses=None, instances=None, error=None) for t in tasks]
    labels = [bool(t.get("is_classification")) for t in tasks]
    kept, rejected = [], Counter()
    t0, before = time.perf_counter(), teacher.usage.snapshot()
    try:
        I.add_instances(teacher, cfg, random.Random(1), seeds, cands, labels,
                        keep=lambda c, y: kept.append(c), reject=lambda c, why: rejected.update([why]),
                        dropped=Counter(), label=f"{demos}/{samples}")
    finally:
        I.INSTANCE_TOKENS = old
    rows = [i for c in kept for i in c.instances]
    n = [len(c.instances) for c in kept] or [0]
    used = teacher.usage - before
    return {"variant": f"{demos}/{samples}/{tokens}", "tasks": len(tasks), "kept": len(kept), "rows": len(rows),
            "instances_per_task": round(statistics.mean(n), 2),
            "tasks_2plus": round(sum(k >= 2 for k in n) / max(1, len(kept)), 2),
            "rows_with_input": round(sum(bool(r["input"]) for r in rows) / max(1, len(rows)), 2),
            "median_output_words": statistics.median([len(r["output"].split()) for r in rows] or [0]),
            "completion_tokens": used.completion_tokens, "seconds": round(time.perf_counter() - t0),
            "load": round(os.getloadavg()[0], 1),
            "rows_sample": [(c.instruction[:60], i["input"][:60], i["output"][:120]) for c in kept[:8]
                            for i in c.instances][:12]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tasks")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--teacher", default="embedded")
    ap.add_argument("--variant", action="append", required=True, help="DEMOS/SAMPLES[/TOKENS]")
    args = ap.parse_args()
    tasks = [json.loads(line) for line in open(args.tasks, encoding="utf-8") if line.strip()][: args.n]
    seeds = load_seeds(None)
    teacher = make_teacher(args.teacher, log=print)
    for spec in args.variant:
        demos, samples, *tokens = spec.split("/")
        res = run_variant(teacher, tasks, seeds, demos, int(samples), int(tokens[0]) if tokens else 256)
        print(json.dumps(res, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
