"""A small sweep of the demo's training settings, chosen by validation loss on the training data's own split.

Each setting runs ``selfinstruct train`` on the same rows (the demo's: generated rows plus the seed tasks)
with the demo's other settings, and reports the best validation loss (the split ``--val-fraction 0.1`` holds
out by task, the same for every setting since ``--seed`` is fixed), its step, and the wall and CPU time.
No eval set is read: the demo's eval rows never choose a setting.

Usage: python bench/train_sweep.py DATA --setting LR/STEPS/MAX_LENGTH [--setting ...] [--out DIR]
  e.g. --setting 5e-5/24/256 --setting 1e-4/24/256
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the commands too

from selfinstruct.demo import cli  # noqa: E402  (runs one command, times its wall and CPU s, stops on failure)


def run_one(data: str, lr: str, steps: int, max_length: int, out: Path) -> dict:
    wall, cpu = cli("train", "--data", data, "--model", "embedded", "--out", out, "--max-steps", steps,
                    "--batch-size", 8, "--lr", lr, "--max-length", max_length, "--val-fraction", 0.1,
                    "--eval-steps", 0.25, "--logging-steps", 5)
    rows = [json.loads(line) for line in open(out / "metrics.jsonl", encoding="utf-8")]
    evals = [(r["eval_loss"], r["step"]) for r in rows if r.get("type") == "eval"]
    best, step = min(evals)
    return {"lr": lr, "steps": steps, "max_length": max_length, "best_val_loss": best, "best_step": step,
            "evals": evals, "wall_s": wall, "cpu_s": cpu}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--setting", action="append", required=True, help="LR/STEPS/MAX_LENGTH")
    p.add_argument("--out", default=None, help="Keep the models here (default: a temporary folder).")
    args = p.parse_args(argv)
    base = Path(args.out or tempfile.mkdtemp(prefix="sweep-"))
    print(f"load average before: {os.getloadavg()}", flush=True)
    results = []
    for i, setting in enumerate(args.setting):
        lr, steps, max_length = setting.split("/")
        results.append(run_one(args.data, lr, int(steps), int(max_length), base / f"s{i}"))
        print(json.dumps(results[-1]), flush=True)
    print(f"load average after: {os.getloadavg()}")
    print("| lr | steps | --max-length | best validation loss (step) | validation losses | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        curve = ", ".join(f"{loss:.3f}" for loss, _ in r["evals"])
        print(f"| {r['lr']} | {r['steps']} | {r['max_length']} | {r['best_val_loss']:.3f} ({r['best_step']}) | "
              f"{curve} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} |")


if __name__ == "__main__":
    main()
