"""`python -m selfinstruct.demo` (`make demo`): the whole story on the embedded model, offline.

1. generate  a few Self-Instruct rounds with the embedded Gemma 3 270M as teacher
2. filter    the generated rows, with the seed tasks as the paper's fine-tuning data has them
3. train     a short full fine-tune of the same base model on them
4. eval      base vs tuned on 100 rows of the packaged eval set (162 tasks held out from the seeds)
5. report    the generate run and the eval

Each stage runs the `selfinstruct` command in a fresh process (so one model at a
time is in memory), exactly as a user would type it; the commands are printed.
Sized for an idle 2-core CPU (the target is about 15 minutes; see
docs/benchmarks.md, "demo", for what was measured: a tuned model that beats its
base on the packaged eval set, +0.101 [+0.056, +0.149]).

``--control`` also trains a seeds-only model with the same steps (step 2's seed rows)
and prints what the generated rows add over it, with its interval. ``--cycle`` makes that
seeds-only model the next teacher: it answers the generated tasks anew (`selfinstruct answer`),
and the tuned model trains on the seeds and those answers (docs/benchmarks.md, "The student as
the next teacher"); the seeds-only model is then the control.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path


SIZES = {  # stage settings: full demo, --quick (see docs/benchmarks.md "demo" for why so small)
    "full": {"rounds": 2, "prompts": 16, "steps": 36, "batch": 8, "max_length": 256, "limit": 100, "new": 128,
             "eval_batch": 50, "lr": 5e-5},
    "quick": {"rounds": 1, "prompts": 2, "steps": 4, "batch": 1, "max_length": 192, "limit": 10, "new": 32,
              "eval_batch": 10, "lr": 5e-5},
}


def stage(n: int, title: str) -> None:
    print(f"\n=== {n}/5 {title} " + "=" * max(0, 60 - len(title)), flush=True)


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cli(*args: str) -> tuple[float, float]:
    """Run one `selfinstruct` command; returns (wall s, CPU s). Stops the demo if it fails."""
    cmd = [sys.executable, "-m", "selfinstruct.cli", *map(str, args)]
    print("$ selfinstruct " + " ".join(shlex.quote(str(a)) for a in args), flush=True)
    t0, c0 = time.perf_counter(), _child_cpu()
    rc = subprocess.call(cmd)
    if rc:
        sys.exit(f"demo stopped: the command above failed (exit {rc})")
    wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
    print(f"({wall:.0f} s wall, {cpu:.0f} s CPU)", flush=True)
    return wall, cpu


def eval_data(model_dir: Path, given: str | None) -> tuple[str, str]:
    """The rows step 4 scores: --eval-data, else the packaged eval set (ships with the package)."""
    if given:
        return given, "given with --eval-data"
    return "packaged", "the packaged eval set: 162 tasks written for this project, held out from the seeds"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def default_out() -> Path:
    """A new folder per run, named by the UTC time as `generate`'s default --out is."""
    return Path("outputs") / ("demo-" + _now().strftime("%Y%m%d-%H%M%S"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m selfinstruct.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="Folder for everything the demo writes (must not exist or be "
                   "empty; default outputs/demo-<UTC timestamp>, new on each run). `make demo OUT=DIR` sets it.")
    p.add_argument("--quick", action="store_true", help="Smallest sizes: checks the pipeline in about 5 minutes.")
    p.add_argument("--eval-data", default=None, help="Rows with references for step 4 (default: see above).")
    p.add_argument("--control", action="store_true", help="Also train a seeds-only model with the same steps and "
                   "print what the generated rows add: tuned (seeds + generated) against it, with its interval.")
    p.add_argument("--cycle", action="store_true", help="The student as the next teacher: the seeds-only model "
                   "answers the generated tasks anew and the tuned model trains on the seeds and those answers "
                   "(implies --control; about 10 more minutes).")
    args = p.parse_args(argv)
    args.control = args.control or args.cycle
    args.out = Path(args.out) if args.out else default_out()
    return args


def closing_lines(gen: Path, ev: Path) -> list[str]:
    """The headline: what generate kept, and base against tuned with its interval (from the files)."""
    import json

    lines = []
    try:
        total = json.loads((gen / "stats.json").read_text(encoding="utf-8"))["total"]
        lines.append(f"generated: {total['kept']} tasks kept of {total['candidates']} candidates, "
                     f"{total['instances']} training rows")
        metrics = json.loads((ev / "metrics.json").read_text(encoding="utf-8"))
        lines += [c["headline"] for c in metrics.get("comparisons", [])]
    except (OSError, KeyError, ValueError) as e:
        lines.append(f"(no headline: {e})")
    return lines


def write_part(kept: Path, out: Path, seeds: bool) -> int:
    """One part of step 2's output: the seed-task rows (``seed: true``, the control's training file) or,
    with ``seeds=False``, the generated rows (what ``--cycle`` has the control answer)."""
    import json

    from .data.writers import write_jsonl

    rows = [json.loads(line) for line in kept.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if bool(r.get("seed")) == seeds]
    write_jsonl(out, rows)
    return len(rows)


def generated_value(ev: Path, tuned_name: str = "seeds + generated") -> str:
    """One line: the tuned model (``tuned_name``) against the seeds-only control, on the same rows.

    ``eval`` compares each model with the first (the base); this pairs the second and third models of
    its results.jsonl (tuned, control), in the order they were given."""
    import json

    from .evaluation.stats import headline, paired_comparison

    by_model: dict[str, list[tuple[int, float]]] = {}
    for line in (ev / "results.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        by_model.setdefault(r["model"], []).append((r["row"], r["rouge_l"]))
    _, tuned, control = [[s for _, s in sorted(v)] for v in by_model.values()]
    cmp = paired_comparison(control, tuned)
    return "what the generated rows add: " + headline("the seeds-only control", tuned_name, cmp)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    out = args.out
    if out.exists() and any(out.iterdir()):
        print(f"error: {out}: already exists and is not empty (remove it or pass another --out)", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gen, kept, model, ev = out / "generate", out / "filtered.jsonl", out / "model", out / "eval"
    times = {}

    stage(1, "generate: new tasks from the 175 seed tasks, embedded teacher")
    times["generate"] = cli("generate", "--teacher", "embedded", "--rounds", size["rounds"],
                            "--prompts-per-round", size["prompts"], "--max-tokens", 256, "--out", gen)

    rows = sum(1 for line in open(gen / "data.jsonl", encoding="utf-8") if line.strip())
    if rows == 0:
        print(f"error: the teacher produced no usable task in {gen} (see its rejected.jsonl), so there "
              "is nothing to train on; the full demo (without --quick) asks it more often", file=sys.stderr)
        return 1

    stage(2, "filter: the generated rows and the 175 seed tasks (ROUGE-L near-duplicates, heuristics, eval leaks)")
    times["filter"] = cli("filter", gen / "data.jsonl", "--out", kept, "--rejected", out / "filter_rejected.jsonl",
                          "--include-seeds", "packaged", "--decontaminate", "packaged", "--no-progress")

    stage(3, "train: full fine-tune of the embedded base model")
    train = ("--model", "embedded", "--max-steps", size["steps"], "--batch-size", size["batch"], "--lr", size["lr"],
             "--max-length", size["max_length"], "--val-fraction", 0.1, "--eval-steps", 0.5, "--logging-steps", 5)
    control = out / "control"
    if args.control:
        n = write_part(kept, out / "seeds_only.jsonl", seeds=True)
        print(f"control: the same training on the {n} seed-task rows alone", flush=True)
        times["train control"] = cli("train", "--data", out / "seeds_only.jsonl", "--out", control, *train)
    if args.cycle:
        n = write_part(kept, out / "generated.jsonl", seeds=False)
        print(f"cycle: the seeds-only model answers the {n} generated tasks anew; the tuned model trains on "
              "the seed tasks and those answers", flush=True)
        times["answer"] = cli("answer", out / "generated.jsonl", "--model", control, "--out", out / "answered.jsonl",
                              "--rejected", out / "answer_rejected.jsonl", "--batch-size", size["eval_batch"],
                              "--no-progress")
        kept = out / "filtered_answered.jsonl"
        times["filter answers"] = cli("filter", out / "answered.jsonl", "--out", kept, "--rejected",
                                      out / "filter_answered_rejected.jsonl", "--include-seeds", "packaged",
                                      "--decontaminate", "packaged", "--no-progress")
    times["train"] = cli("train", "--data", kept, "--out", model, *train)

    data, why = eval_data(model, args.eval_data)
    stage(4, f"eval: base vs tuned on {size['limit']} rows")
    print(f"eval data: {data} ({why})", flush=True)
    models = ["--model", "embedded", "--model", model, "--name", "base", "--name", "tuned"]
    if args.control:
        models += ["--model", out / "control", "--name", "control"]
    times["eval"] = cli("eval", *models, "--data", data, "--out", ev,
                        "--limit", size["limit"], "--max-new-tokens", size["new"], "--batch-size", size["eval_batch"])

    stage(5, "report: the generate run")
    times["report"] = cli("report", gen)

    print("\n=== done " + "=" * 60)
    for line in closing_lines(gen, ev):
        print(line)
    if args.control:
        print(generated_value(ev, "seeds + generated answered by the control" if args.cycle else "seeds + generated"))
    print("stage times (wall / CPU s): " + ", ".join(f"{k} {w:.0f}/{c:.0f}" for k, (w, c) in times.items())
          + f"; total {sum(w for w, _ in times.values()):.0f}/{sum(c for _, c in times.values()):.0f}")
    print(f"generate report: {gen / 'report' / 'report.md'}")
    print(f"eval report:     {ev / 'report.md'}")
    print(f"                 {ev / 'report.html'}")
    print(f"loss curve:      {model / 'loss.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
