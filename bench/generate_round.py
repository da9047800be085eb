"""Time `generate` rounds with the embedded teacher: per stage wall and CPU seconds.

    python bench/generate_round.py --prompts-per-round 8 --rounds 1

Prints one line per teacher call (stage, requests, tokens, wall s, CPU s) and each
round's stats row. CPU seconds are this process's user+system time; on a shared
machine wall time grows with other load, CPU time much less.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selfinstruct.generation.bootstrap import GenerateConfig, run  # noqa: E402
from selfinstruct.generation.journal import RunState  # noqa: E402
from selfinstruct.data.seeds import load_seeds  # noqa: E402
from selfinstruct.teachers import make_teacher  # noqa: E402


class Timed:
    """Wraps a teacher; records each complete() call."""

    def __init__(self, teacher):
        self.t, self.calls = teacher, []
        self.name, self.is_chat, self.usage = teacher.name, teacher.is_chat, teacher.usage

    def complete(self, prompts, **kw):
        w, c, before = time.perf_counter(), time.process_time(), self.t.usage.snapshot()
        out = self.t.complete(prompts, **kw)
        d = self.t.usage - before
        row = {"stage": kw.get("progress"), "requests": len(prompts), "prompt_tokens": d.prompt_tokens,
               "completion_tokens": d.completion_tokens, "wall_s": round(time.perf_counter() - w, 1),
               "cpu_s": round(time.process_time() - c, 1),
               "length_stops": sum(o.finish_reason == "length" for o in out)}
        print(json.dumps(row), flush=True)
        self.calls.append(row)
        return out

    def close(self):
        self.t.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts-per-round", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--style", default="selfinstruct")
    ap.add_argument("--teacher", default="embedded")
    ap.add_argument("--top-p", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=0.7)
    args = ap.parse_args()
    cfg = GenerateConfig(rounds=args.rounds, prompts_per_round=args.prompts_per_round, style=args.style,
                         teacher=args.teacher, top_p=args.top_p, temperature=args.temperature)
    w = time.perf_counter()
    teacher = Timed(make_teacher(args.teacher))
    print(json.dumps({"load_s": round(time.perf_counter() - w, 1), "threads": __import__("torch").get_num_threads(),
                      "loadavg": os.getloadavg()}), flush=True)
    with tempfile.TemporaryDirectory() as d:
        state = RunState(os.path.join(d, "run"), cfg.run_json(), load_seeds())
        stats = run(teacher, cfg, state, echo=lambda m: None)
        for r in stats["rounds"]:
            print(json.dumps(r), flush=True)
        for t in state.tasks:
            print(json.dumps({"kept": t["instruction"], "cls": t["is_classification"], "instances": t["instances"]},
                             ensure_ascii=False)[:400])
    print(json.dumps({"loadavg_end": os.getloadavg()}))


if __name__ == "__main__":
    main()
