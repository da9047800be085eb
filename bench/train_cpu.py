"""Training speed on CPU: the precision and optimizer `selfinstruct train` picks, against the settings before.

Each setting runs ``selfinstruct train`` for the same steps on the same rows with the demo's settings (embedded
model, batch 8, lr 5e-5, ``--max-length`` 256), one after another in this run, and reports the training tokens per
second of busy step time (steps 2..N: the first step warms allocators up), the validation loss at the end, and the
wall and CPU seconds of the whole command.

- ``before``: fp32 and ``adamw_torch`` (PyTorch's foreach AdamW), what `train` used on CPU until 2026-12-02;
- ``fp32-fused``: fp32 and ``adamw_torch_fused`` (``SELFINSTRUCT_DTYPE=float32``);
- ``default``: what `train` picks here: fused AdamW, and bf16 autocast when the CPU computes bf16 natively.

Usage: python bench/train_cpu.py DATA [--steps 8] [--settings before,fp32-fused,default]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selfinstruct.demo import _child_cpu  # noqa: E402
from selfinstruct.models import cpu_has_bf16  # noqa: E402

# `before` swaps the device settings back to what they were: fp32 and the foreach AdamW
BEFORE = ("import selfinstruct.training.train as t; d = t.device_settings; "
          "t.device_settings = lambda a: {**d(a), 'bf16': False, 'optim': 'adamw_torch'}; "
          "from selfinstruct.cli import main; main()")
SETTINGS = {
    "before": (["-c", BEFORE], {"SELFINSTRUCT_DTYPE": "float32"}),
    "fp32-fused": (["-m", "selfinstruct.cli"], {"SELFINSTRUCT_DTYPE": "float32"}),
    "default": (["-m", "selfinstruct.cli"], {}),
}


def run_one(name: str, data: str, steps: int, out: Path) -> dict:
    head, env = SETTINGS[name]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    if name == "default":
        env.pop("SELFINSTRUCT_DTYPE", None)
    cmd = [sys.executable, *head, "train", "--data", data, "--model", "embedded", "--out", str(out),
           "--max-steps", str(steps), "--batch-size", "8", "--lr", "5e-5", "--max-length", "256",
           "--val-fraction", "0.1", "--eval-steps", str(steps), "--logging-steps", "1"]
    t0, c0 = time.perf_counter(), _child_cpu()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
    rows = [json.loads(line) for line in open(out / "metrics.jsonl", encoding="utf-8")]
    train = [r for r in rows if r.get("type") == "train"]  # one row a step (--logging-steps 1)
    steady = [(b["tokens"] - a["tokens"], b["tokens_per_s"]) for a, b in zip(train, train[1:])]  # steps 2..N
    tokens = sum(n for n, _ in steady)
    busy = sum(n / rate for n, rate in steady)
    evals = [r["eval_loss"] for r in rows if r.get("type") == "eval"]
    return {"setting": name, "steps": steps, "tokens_per_s": tokens / busy, "busy_s": busy,
            "val_loss": evals[-1], "wall_s": wall, "cpu_s": cpu}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--settings", default="before,fp32-fused,default")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="train-cpu-"))
    print(f"CPU computes bf16 natively: {cpu_has_bf16()}; load average before: {os.getloadavg()}", flush=True)
    results = []
    for name in args.settings.split(","):
        results.append(run_one(name, args.data, args.steps, base / name))
        shutil.rmtree(base / name, ignore_errors=True)  # a full fine-tune's checkpoints are GBs
        print(json.dumps(results[-1]), flush=True)
    print(f"load average after: {os.getloadavg()}")
    first = results[0]["tokens_per_s"]
    print("| setting | tokens/s (steps 2..N) | ratio | validation loss | wall s | CPU s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['setting']} | {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / first:.2f}x | {r['val_loss']:.4f} | "
              f"{r['wall_s']:.0f} | {r['cpu_s']:.0f} |")


if __name__ == "__main__":
    main()
