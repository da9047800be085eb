"""Compare instance-prompt templates on the same generated tasks: what do the training rows look like?

    python bench/instance_prompt_bench.py TASKS.jsonl --template A=path/a.txt --template B=path/b.txt --n 24

For the first ``--n`` non-classification tasks of TASKS.jsonl (a ``generate`` run's
tasks, not eval data), each template builds the input-first instance prompt
(same seed demos, same sampling) and the teacher answers. Prints, per template,
the rows kept after ``clean_instances``, the median output length in words, the
share of outputs of 5 words or more, the share of sane rows (issue 10's
definition), and the mean ROUGE-L between each output and its instruction (a crude
on-topic measure), plus a few rows. Nothing here reads an eval set.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selfinstruct import prompts as P  # noqa: E402
from selfinstruct.data.filters import clean_instances  # noqa: E402
from selfinstruct.generation.bootstrap import DEFAULTS  # noqa: E402
from selfinstruct.generation.parsing import parse_instances  # noqa: E402
from selfinstruct.data.seeds import load_seeds  # noqa: E402
from selfinstruct.data.similarity import rouge_l, tokenize  # noqa: E402
from selfinstruct.teachers import iter_complete, make_teacher  # noqa: E402


def sane(inst: str, inp: str, out: str) -> bool:
    return len(inst.split()) >= 3 and bool(out.strip()) and out.strip() != inp.strip() and out.strip() != inst.strip()


def run_template(teacher, tasks, seeds, text: str, *, count: int, seed: int, sampling: dict) -> dict:
    P.template.cache_clear()
    original = P.template
    P.template = lambda name: text if name == "instances_input_first" else original(name)  # noqa: E731
    try:
        rng = random.Random(seed)
        prompts = [P.instance_prompt(t["instruction"], P.pick_demos(rng, seeds, classification=False),
                                     classification=False, chat=False, count=count) for t in tasks]
    finally:
        P.template = original
    t0, before = time.perf_counter(), teacher.usage.snapshot()
    rows = []
    for i, out in iter_complete(teacher, prompts, max_tokens=256, stop=P.instance_stop(chat=False, count=count),
                                progress=None, **sampling):
        parsed = parse_instances(out.text, classification=False, finish_reason=out.finish_reason,
                                 prefix=P.instance_prefix(False))
        kept, _ = clean_instances(parsed.items, count, tasks[i]["instruction"])
        rows += [{"instruction": tasks[i]["instruction"], **k} for k in kept]
    words = [len(r["output"].split()) for r in rows] or [0]
    topical = [rouge_l(tokenize(r["instruction"]), tokenize(r["output"])) for r in rows] or [0]
    used = teacher.usage - before
    return {"tasks": len(tasks), "rows": len(rows), "tasks_with_rows": len({r["instruction"] for r in rows}),
            "median_words": statistics.median(words), "share_5_words": round(sum(w >= 5 for w in words) / max(1, len(rows)), 2),
            "sane": round(sum(sane(r["instruction"], r["input"], r["output"]) for r in rows) / max(1, len(rows)), 2),
            "on_topic": round(statistics.mean(topical), 3), "completion_tokens": used.completion_tokens, "wall_s": round(time.perf_counter() - t0),
            "sample": [(r["instruction"][:50], r["input"][:40], r["output"][:90]) for r in rows[:6]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tasks")
    ap.add_argument("--template", action="append", required=True, help="NAME=FILE (input-first template)")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--teacher", default="embedded")
    ap.add_argument("--sampling", default=None, help="comma-separated TEMPERATURE/TOP_P/REPEAT_PENALTY settings "
                    "to compare (default: the local teacher's defaults); temperature 0 is greedy")
    args = ap.parse_args()
    tasks = [json.loads(line) for line in open(args.tasks, encoding="utf-8") if line.strip()]
    tasks = [t for t in tasks if not t.get("is_classification")][: args.n]
    seeds = load_seeds(None)
    teacher = make_teacher(args.teacher, log=print)
    d = DEFAULTS["local"]
    settings = ([tuple(map(float, x.split("/"))) for x in args.sampling.split(",")] if args.sampling
                else [(d["temperature"], d["top_p"], d["repeat_penalty"])])
    for spec in args.template:
        name, path = spec.split("=", 1)
        text = open(path, encoding="utf-8").read()
        for temp, top_p, penalty in settings:
            teacher.repeat_penalty = penalty
            res = run_template(teacher, tasks, seeds, text, count=args.count, seed=1,
                               sampling={"temperature": temp, "top_p": top_p})
            print(json.dumps({"template": name, "sampling": [temp, top_p, penalty], **res,
                              "load": os.getloadavg()[0]},
                             ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
