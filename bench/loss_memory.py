"""Peak memory of the chunked LM-head loss (selfinstruct.training.loss) on CPU, by its parts.

Each case runs in its own process (ru_maxrss is a per-process high-water mark): a Gemma 3 270M-sized head
(vocabulary 262,144 x hidden 640, fp32 weights), T target tokens, forward + backward with one torch thread,
fp32 or under bf16 autocast (as `train` runs where the CPU has native bf16). Printed: the peak resident
memory over what the inputs already took, and the sizes the loss's docstring names.

    python bench/loss_memory.py --tokens 256,1024 --dtypes float32,bfloat16
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

VOCAB, HIDDEN = 262_144, 640
MB = 2**20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def one(tokens: int, dtype: str) -> dict:
    import time

    import torch

    from selfinstruct.training.loss import causal_lm_loss, chunk_tokens

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    weight = (torch.randn(VOCAB, HIDDEN, generator=g) * 0.02).requires_grad_()
    hidden = torch.randn(1, tokens + 1, HIDDEN, generator=g).requires_grad_()
    labels = torch.randint(0, VOCAB, (1, tokens + 1), generator=g)
    before, start = rss(), time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        loss = causal_lm_loss(hidden, weight, labels)
    loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    item = 2 if dtype == "bfloat16" else 4
    return {"tokens": tokens, "dtype": dtype, "cpu_s": round(time.process_time() - start, 1),
            "peak_over_inputs_mb": round((peak - before) / MB),
            "grad_w_fp32_mb": round(VOCAB * HIDDEN * 4 / MB),  # kept from forward to backward
            "head_copy_mb": round(VOCAB * HIDDEN * item / MB) if dtype == "bfloat16" else 0,  # w.to(bf16)
            "chunk_logits_fp32_mb": round(chunk_tokens(VOCAB) * VOCAB * 4 / MB),
            "grad_h_mb": round(tokens * HIDDEN * item / MB, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="256,1024", help="comma-separated target token counts")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="float32 and/or bfloat16 (autocast)")
    ap.add_argument("--one", nargs=2, metavar=("TOKENS", "DTYPE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(int(a.one[0]), a.one[1])))
        return
    for dtype in a.dtypes.split(","):
        for t in a.tokens.split(","):
            out = subprocess.run([sys.executable, __file__, "--one", t, dtype], capture_output=True, text=True,
                                 check=True)
            print(out.stdout.strip(), flush=True)
    print(json.dumps({"load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
