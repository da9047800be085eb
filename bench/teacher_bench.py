"""Teacher throughput: concurrent API requests, and batched local generation.

1. openai teacher against llm-katan's echo backend answering after 200 ms:
   requests/second at concurrency 1 vs 32 (same 64 requests).
2. HF teacher: the embedded Gemma 3 270M when its converted checkpoint is cached
   (else a random-init Llama shaped like SmolLM2-135M): batch 8 vs one prompt at a
   time, greedy, same prompts, completion tokens/second.

Writes the figures to the ``## teachers`` section of docs/benchmarks.md.
Usage: python bench/teacher_bench.py [--requests 64] [--hf-prompts 16] [--hf-tokens 32] [--threads N] [--no-write]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selfinstruct.teachers.openai_api import OpenAITeacher  # noqa: E402
from selfinstruct.teachers import make_teacher  # noqa: E402
from servers import start_katan  # noqa: E402
from common import write_section  # bench/common.py (scripts run from bench/ or the repo root)

PROMPTS = [
    "Write a short poem about the sea.", "Give three tips for staying healthy.",
    "Explain what a black hole is to a child.", "List five fruits that are red.",
    "Translate 'good morning' into French.", "What is the capital of Japan?",
    "Summarize the plot of Romeo and Juliet in two sentences.", "Suggest a name for a coffee shop.",
    "Why is the sky blue?", "Write a haiku about autumn leaves.", "Describe a cat in three words.",
    "How do I boil an egg?", "Give an example of a prime number larger than 50.",
    "What does a compiler do?", "Name three planets of the solar system.", "Write a tweet about Mondays.",
]


def bench_api(n: int, latency_ms: int = 200) -> list[str]:
    rows, rates = [], {}

    def run(url, conc, label):
        t = OpenAITeacher("echo-model", base_url=url, concurrency=conc)
        t.complete(["warm up"])
        t0 = time.perf_counter()
        out = t.complete([f"request {i}" for i in range(n)], max_tokens=16)
        dt = time.perf_counter() - t0
        assert all(c.error is None for c in out)
        rows.append(f"| {label} | {n} requests | {dt:.2f} s | {n / dt:.1f} req/s |")
        print(rows[-1], flush=True)
        return n / dt

    with start_katan("--latency-ms", str(latency_ms), "--max-concurrent", "256") as url:
        for conc in (1, 32):
            rates[conc] = run(url, conc, f"openai teacher, concurrency {conc}")
    rows.append(f"| **ratio** (32 vs 1) | | | **{rates[32] / rates[1]:.1f}x** |")
    with start_katan("--max-concurrent", "256") as url:  # no latency: what client + server CPU allow here
        ceiling = run(url, 32, "ceiling: concurrency 32, server latency 0")
    rows.append(f"| concurrency 32 at 200 ms / ceiling | | | "
                f"{rates[32] / ceiling:.2f} (1 = as fast as this CPU allows) |")
    return rows


def hf_spec(tmp: str) -> tuple[str, str]:
    from selfinstruct.models import cache_dir

    if (cache_dir() / "models" / "gemma3-270m" / "config.json").exists():
        return "embedded", "embedded Gemma 3 270M (fp32, CPU)"
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig
    from tiny import make_tokenizer

    tok = make_tokenizer()
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, pad_token_id=0, eos_token_id=1,
                         bos_token_id=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    return tmp, "random-init Llama with SmolLM2-135M's shape (embedded checkpoint not cached)"


def bench_hf(n: int, max_tokens: int) -> list[str]:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        spec, what = hf_spec(tmp)
        prompts = (PROMPTS * (n // len(PROMPTS) + 1))[:n]
        rows, rates = [f"HF teacher: {what}, {n} prompts, greedy, max {max_tokens} new tokens, "
                       f"{torch.get_num_threads()} torch threads"], {}
        for bs in (1, 8):
            t = make_teacher(spec, batch_size=bs)
            t.complete(prompts[:1], max_tokens=4, temperature=0)  # warm up
            before = t.usage.snapshot()
            t0 = time.perf_counter()
            t.complete(prompts, max_tokens=max_tokens, temperature=0)
            dt = time.perf_counter() - t0
            toks = (t.usage - before).completion_tokens
            rates[bs] = toks / dt
            rows.append(f"| HF teacher, batch {bs} | {toks} tokens | {dt:.1f} s | {rates[bs]:.1f} tok/s |")
            print(rows[-1], flush=True)
            t.close()
        rows.append(f"| **ratio** (batch 8 vs 1) | | | **{rates[8] / rates[1]:.1f}x** |")
        return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=64, help="API requests per concurrency level")
    ap.add_argument("--hf-prompts", type=int, default=16, help="prompts for the HF teacher")
    ap.add_argument("--hf-tokens", type=int, default=32, help="max new tokens per HF prompt")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    api = bench_api(args.requests)
    hf = bench_hf(args.hf_prompts, args.hf_tokens)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU, shared with other jobs"
    body = "\n".join([
        f"`python bench/teacher_bench.py{' --threads %d' % args.threads if args.threads else ''}` on {time.strftime('%Y-%m-%d')} ({machine}).", "",
        "API teacher against llm-katan's echo backend answering every request after 200 ms"
        ": the same requests sent one at a time vs 32 in flight. The ceiling row sends them with no "
        "server latency: client and server then share this machine's CPU, which caps the rate "
        "(the ideal with 200 ms latency and 32 in flight would be 160 req/s).", "",
        "| run | work | wall | rate |", "|---|---|---|---|", *api, "",
        hf[0] + ": the same prompts one at a time vs 8 per batch (left padding).", "",
        "| run | work | wall | rate |", "|---|---|---|---|", *hf[1:], "",
    ])
    print(body)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", "teachers", body)


if __name__ == "__main__":
    main()
