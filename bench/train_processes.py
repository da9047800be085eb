"""Training on 2 CPU processes (torchrun, gloo) against 1 process with the same global batch.

Both sides train the same random Llama (hidden 128, 2 layers, tests/tiny.py's 600-token BPE) on the same rows
in fp32, for the same steps: 1 process with ``--batch-size 2B`` on the machine's threads, and ``torchrun
--standalone --nproc_per_node 2`` with ``--batch-size B`` on one thread each (torchrun's default). The runs
alternate (1, 2, 1, 2, ...) so that both see the same load on a shared machine; the load average is read before
and after each run. Step time and tokens/s are over the busy time of steps 2..N on rank 0 (``metrics.jsonl``);
the losses of the two sides are compared step by step.

Usage: python bench/train_processes.py [--data ../shared/data/instruction-data.json] [--rows 128] [--steps 8]
       [--batch 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny import make_tiny_model_dir  # noqa: E402


def run(processes: int, base: Path, data: Path, out: Path, steps: int, batch: int, threads: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SELFINSTRUCT_DTYPE": "float32"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    head = [sys.executable, "-m", "selfinstruct.cli"]
    if processes > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                "-m", "selfinstruct.cli"]
    cmd = [*head, "train", "--data", str(data), "--model", str(base), "--out", str(out), "--max-steps", str(steps),
           "--batch-size", str(batch // processes), "--lr", "1e-3", "--val-fraction", "0", "--logging-steps", "1",
           "--seed", "0", "--max-length", "128"]
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    train = [r for r in map(json.loads, open(out / "metrics.jsonl", encoding="utf-8")) if r["type"] == "train"]
    steady = [(b["tokens"] - a["tokens"], (b["tokens"] - a["tokens"]) / b["tokens_per_s"])
              for a, b in zip(train, train[1:])]  # steps 2..N: (tokens, seconds)
    return {"processes": processes, "threads": threads, "step_s": statistics.median(s for _, s in steady),
            "tokens_per_s": sum(n for n, _ in steady) / sum(s for _, s in steady), "wall_s": wall,
            "load": (load0, load1), "losses": [r["loss"] for r in train]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "instruction-data.json"))
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8, help="global batch (examples per optimizer step)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--one-thread", action="store_true",
                    help="also run 1 process on 1 thread (OMP_NUM_THREADS=1), as each torchrun process is")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = make_tiny_model_dir(tmp / "base", hidden=128, layers=2, heads=4, kv_heads=2, intermediate=512)
        rows = json.loads(Path(a.data).read_text(encoding="utf-8"))[: a.rows]
        data = tmp / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        results = []
        sides = [(1, None), (2, None)] + ([(1, 1)] if a.one_thread else [])
        for i in range(a.rounds):
            for n, threads in sides:
                results.append(run(n, base, data, tmp / f"run-{i}-{n}-{threads}", a.steps, a.batch, threads))
                r = results[-1]
                print(f"round {i + 1}, {n} process(es){' on 1 thread' if threads else ''}: step {r['step_s']:.3f} s, {r['tokens_per_s']:.0f} tokens/s, "
                      f"wall {r['wall_s']:.1f} s, load {r['load'][0]:.2f} -> {r['load'][1]:.2f}", flush=True)
    one = [r for r in results if r["processes"] == 1 and not r["threads"]]
    solo = [r for r in results if r["threads"]]
    two = [r for r in results if r["processes"] == 2]
    step1, step2 = (statistics.median(r["step_s"] for r in side) for side in (one, two))
    tok1, tok2 = (statistics.median(r["tokens_per_s"] for r in side) for side in (one, two))
    diff = max(abs(x - y) / abs(x) for p, q in zip(one, two) for x, y in zip(p["losses"], q["losses"]))
    loads = [x for r in results for x in r["load"]]
    print(f"\n| processes | step s (median) | tokens/s | ratio |\n|---|---|---|---|\n"
          f"| 1 x batch {a.batch} | {step1:.3f} | {tok1:.0f} | 1.00x |\n"
          f"| 2 x batch {a.batch // 2} | {step2:.3f} | {tok2:.0f} | {tok2 / tok1:.2f}x |")
    if solo:
        step3, tok3 = (statistics.median(r[k] for r in solo) for k in ("step_s", "tokens_per_s"))
        print(f"| 1 x batch {a.batch}, 1 thread | {step3:.3f} | {tok3:.0f} | {tok3 / tok1:.2f}x |")
    print(f"step-time ratio (2 / 1): {step2 / step1:.2f}; largest relative loss difference, 1 vs 2 processes: "
          f"{diff:.1e}; load average (1 min) from {min(loads):.2f} to {max(loads):.2f}")


if __name__ == "__main__":
    main()
