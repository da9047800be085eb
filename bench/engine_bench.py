"""The embedded teacher's engines, side by side on one round's real prompts.

Each engine generates for the same prompts, the three stages of one round: ``--prompts``
instruction prompts, then as many classification prompts and instance prompts (built by
generate's own prompt builders from the packaged seeds), with
the paper's sampling (temperature 0.7, top-p 0.5) and generate's token limits and stops.
Figures: generated tokens per wall second and per CPU second, with prompt tokens too.

- ``transformers fp32 batch 8``: the path before the llama.cpp engine (the baseline);
- ``transformers bf16 batch 32``: the fallback when llama.cpp is missing (bf16 where the CPU has it);
- ``llama.cpp parallel N``: the default engine, continuous batching, a call's shared prompt
  prefix prefilled once (``no shared prefix``: each prompt prefilled whole).

Usage: python bench/engine_bench.py [--prompts 16] [--engines a,b,c] [--no-write]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selfinstruct import prompts as P  # noqa: E402
from selfinstruct.data.seeds import load_seeds  # noqa: E402
from common import DOC, write_section  # noqa: E402


def round_prompts(n: int, seed: int = 0) -> list[tuple[str, list, int, list]]:
    """(kind, prompts, max_tokens, stop) for ``n`` instruction, classify and instance prompts (base model)."""
    rng = random.Random(seed)
    seeds = load_seeds()
    texts = [t["instruction"] for t in seeds]
    instr = [P.instruction_prompt(P.sample_context(rng, texts, []), chat=False) for _ in range(n)]
    picked = rng.sample(seeds, n)
    demos = {y: P.pick_demos(rng, seeds, classification=y) for y in (False, True)}  # once a round, as generate
    inst = [P.instance_prompt(t["instruction"], demos[bool(t["is_classification"])],
                              classification=bool(t["is_classification"]), chat=False) for t in picked]
    classify = [P.classify_prompt(t["instruction"], chat=False) for t in picked]
    return [("instructions", instr, 512, P.instruction_stop(P.IN_CONTEXT, chat=False)),
            ("classify", classify, 3, ["\n"]),
            ("instances", inst, 256, P.instance_stop(chat=False))]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_engine(label: str, make, stages, share: bool = True) -> dict:
    teacher = make()
    if not share:
        teacher.share_prefix = False
    teacher.complete(["Warm up: the capital of France is"], max_tokens=4, temperature=0)
    t0, c0 = time.perf_counter(), cpu_seconds()
    before = teacher.usage.snapshot()
    for _, prompts, max_tokens, stop in stages:
        teacher.complete(prompts, max_tokens=max_tokens, temperature=0.7, top_p=0.5, stop=stop)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    used = teacher.usage - before
    teacher.close()
    row = {"label": label, "wall": wall, "cpu": cpu, "out": used.completion_tokens, "in": used.prompt_tokens,
           "requests": used.requests}
    row["tok_s"] = row["out"] / wall
    row["tok_cpu_s"] = row["out"] / cpu
    print(f"{label}: {row['out']} tokens out, {row['in']} in, {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"{row['tok_s']:.1f} tok/s", flush=True)
    return row


ENGINES = {
    "hf-fp32-8": ("transformers fp32, batch 8 (the path before; baseline)", "transformers", 8, "float32"),
    "hf-bf16-32": ("transformers bf16, batch 32 (the fallback)", "transformers", 32, "bfloat16"),
    "llamacpp-16-noshare": ("llama.cpp, 16 in parallel, no shared prefix", "llamacpp", 16, None, False),
    "llamacpp-16": ("llama.cpp, 16 in parallel (the default)", "llamacpp", 16, None),
    "llamacpp-32": ("llama.cpp, 32 in parallel", "llamacpp", 32, None),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16, help="instruction prompts, and as many instance prompts")
    ap.add_argument("--engines", default="hf-fp32-8,hf-bf16-32,llamacpp-16-noshare,llamacpp-16,llamacpp-32")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    from selfinstruct.models import cpu_has_bf16
    from selfinstruct.teachers import make_teacher

    stages = round_prompts(args.prompts)
    load0 = os.getloadavg()
    rows = []
    for key in args.engines.split(","):
        label, engine, batch, dtype, *share = ENGINES[key]
        if dtype:
            os.environ["SELFINSTRUCT_DTYPE"] = dtype
        rows.append(run_engine(label, lambda: make_teacher("embedded", engine=engine, batch_size=batch), stages,
                               share=all(share)))
        os.environ.pop("SELFINSTRUCT_DTYPE", None)
    load1 = os.getloadavg()
    base = rows[0]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
        f"bf16 in the CPU: {cpu_has_bf16()}; load average {load0[0]:.2f} before, {load1[0]:.2f} after. "
        f"Same {args.prompts} instruction + {args.prompts} classify + {args.prompts} instance prompts of one round "
        "(packaged seeds), "
        "temperature 0.7, top-p 0.5, generate's limits and stops. "
        "Command: `python bench/engine_bench.py`.", "",
        "| engine | tokens out | tokens in | wall s | CPU s | tokens/s | vs baseline | tokens per CPU s | vs baseline |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['out']} | {r['in']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['tok_s']:.1f} | "
                     f"**{r['tok_s'] / base['tok_s']:.1f}x** | {r['tok_cpu_s']:.1f} | "
                     f"{r['tok_cpu_s'] / base['tok_cpu_s']:.1f}x |")
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_section(DOC, "engine", body)


if __name__ == "__main__":
    main()
