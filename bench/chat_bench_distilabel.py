"""distilabel's Self-Instruct pipeline against an OpenAI-compatible server, for bench/chat_bench.py.

Runs in a Python that has distilabel (it is not a dependency of this project; the bench points at it with
``--distilabel-python``). SelfInstruct (5 instructions per input) on ``--inputs`` contexts, one row per
instruction (ExpandColumns), then TextGeneration answers each. No filter: every row counts, as distilabel
keeps it. Writes ``{"rows": [{"instruction", "generation"}], "requests", "seconds"}`` as JSON to ``--out``.

Usage: python bench/chat_bench_distilabel.py --base-url URL --model M --inputs inputs.json --out out.json
       [--temperature 0.7] [--top-p 0.5] [--max-tokens 512] [--instance-tokens 256]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True, help="JSON list of context strings, one SelfInstruct request each")
    ap.add_argument("--out", required=True)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.5)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--instance-tokens", type=int, default=256)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from distilabel.models import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import ExpandColumns, LoadDataFromDicts
    from distilabel.steps.tasks import SelfInstruct, TextGeneration

    inputs = json.load(open(args.inputs, encoding="utf-8"))
    sampling = {"temperature": args.temperature, "top_p": args.top_p}

    def llm(max_tokens: int):
        return OpenAILLM(model=args.model, base_url=args.base_url, api_key="sk-no-key-needed", max_retries=2,
                         timeout=300, generation_kwargs={"max_new_tokens": max_tokens, **sampling})

    with Pipeline(name="chat-bench-self-instruct") as pipeline:
        load = LoadDataFromDicts(data=[{"input": x} for x in inputs], batch_size=len(inputs))
        instruct = SelfInstruct(llm=llm(args.max_tokens), input_batch_size=len(inputs))
        expand = ExpandColumns(columns={"instructions": "instruction"})
        answer = TextGeneration(llm=llm(args.instance_tokens), input_batch_size=16)
        load >> instruct >> expand >> answer
    t0 = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    seconds = time.perf_counter() - t0
    rows = [{"instruction": r["instruction"], "generation": r.get("generation")}
            for r in distiset["default"]["train"]]
    json.dump({"rows": rows, "requests": len(inputs) + len(rows), "seconds": seconds}, open(args.out, "w"))


if __name__ == "__main__":
    main()
