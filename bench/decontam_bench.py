"""Decontamination: recall on planted eval copies against false flags on clean rows, and speed.

    python3 bench/decontam_bench.py            # prints tables; --write puts them in docs/benchmarks.md

Planted cases are built from real eval rows (the paper's 252 user-oriented tasks and the
packaged eval set): exact copies; case, whitespace and punctuation variants; and light
rewrites of the instruction (two small edits: a synonym, a dropped or swapped word, a polite
prefix or a closing clause) that keep the input. Clean rows come from other sources: the
1,100 Alpaca-style rows of instruction-data.json and a seeded sample of T0 prompts. The sweep
over n and the ROUGE threshold picks the rule set; speed is 55K T0 rows against 10K others.
tests/test_decontam.py imports :func:`planted_cases` and :func:`clean_rows`.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from selfinstruct.data.decontam import DecontamIndex, eval_rows, normalize  # noqa: E402

SHARED = Path(os.environ.get("SELFINSTRUCT_SHARED_DATA") or ROOT.parent / "shared" / "data")
LONG_INPUT = 15  # words: a "long input" for the rewrite target
SYNONYMS = {"write": "compose", "give": "provide", "make": "create", "list": "enumerate",
            "explain": "describe", "following": "given", "text": "passage", "short": "brief",
            "find": "identify", "use": "employ", "show": "display", "tell": "say", "help": "assist",
            "create": "produce", "sentence": "line", "answer": "reply", "generate": "produce",
            "describe": "explain", "suggest": "propose", "rewrite": "rephrase", "this": "the",
            "the": "this", "is": "seems", "your": "the", "a": "one", "what": "which"}
PREFIXES = ["Please ", "Could you ", "Kindly ", "I need you to "]
SUFFIXES = [" Keep it brief.", " Thanks!", " Be concise.", " Answer carefully.", " Please help."]
EXACT_KINDS = ("exact", "case", "whitespace", "punctuation")


# --------------------------------------------------------------------------- planted cases


def _case(text: str, rng: random.Random) -> str:
    return rng.choice([str.upper, str.lower, str.title, str.swapcase])(text)


def _whitespace(text: str, rng: random.Random) -> str:
    parts = text.split()
    seps = ["  ", "\t", "\n", " \n ", "   "]
    return rng.choice(["", " ", "\n"]) + "".join(w + (rng.choice(seps) if rng.random() < 0.4 else " ")
                                                 for w in parts).strip(" ") + rng.choice(["", "  ", "\n\n"])


def _punctuation(text: str, rng: random.Random) -> str:
    mode = rng.randrange(3)
    if mode == 0:  # strip it all
        return re.sub(r"[^\w\s]", "", text)
    if mode == 1:  # swap marks
        table = str.maketrans({".": "!", ",": ";", "?": ".", "'": "\u2019", '"': "\u201c", ":": " -"})
        return text.translate(table)
    return re.sub(r"(\w)([.,?!])", r"\1 \2", text) + rng.choice(["!!", "...", " ?"])


def _edit(words: list[str], rng: random.Random) -> list[str]:
    words = list(words)
    kind = rng.randrange(5)
    if kind == 0:
        idx = [i for i, w in enumerate(words) if w.lower().strip(".,?!:;") in SYNONYMS]
        if idx:
            i = rng.choice(idx)
            bare = words[i].lower().strip(".,?!:;")
            new = SYNONYMS[bare]
            words[i] = words[i].lower().replace(bare, new, 1)
            return words
        kind = 1
    if kind == 1 and len(words) > 3:
        del words[rng.randrange(1, len(words))]
    elif kind == 2 and len(words) > 3:
        i = rng.randrange(1, len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == 3:
        words = rng.choice(PREFIXES).split() + [words[0][:1].lower() + words[0][1:]] + words[1:]
    else:
        words = words + rng.choice(SUFFIXES).split()
    return words


def light_rewrite(instruction: str, rng: random.Random, edits: int = 2) -> str:
    words = instruction.split()
    for _ in range(edits):
        words = _edit(words, rng)
    return " ".join(words)


def planted_cases(rows: list[dict], seed: int = 0) -> list[dict]:
    """Per eval row: one exact copy, one case, whitespace and punctuation variant, and one light
    rewrite of the instruction keeping the input. ``kind`` says which; rewrites carry
    ``long_input`` (the input has >= LONG_INPUT words)."""
    rng = random.Random(seed)
    out = []
    for i, r in enumerate(rows):
        inst, inp = r["instruction"], r["input"]
        out.append({"kind": "exact", "instruction": inst, "input": inp, "source": i})
        for kind, fn in (("case", _case), ("whitespace", _whitespace), ("punctuation", _punctuation)):
            out.append({"kind": kind, "instruction": fn(inst, rng), "input": fn(inp, rng) if inp else "",
                        "source": i})
        new = light_rewrite(inst, rng)
        if normalize(new) != normalize(inst):
            out.append({"kind": "rewrite", "instruction": new, "input": inp, "source": i,
                        "long_input": len(inp.split()) >= LONG_INPUT})
    return out


# --------------------------------------------------------------------------- data


def real_eval_rows(shared: Path = SHARED) -> list[dict]:
    return eval_rows(shared / "user_oriented_instructions.jsonl") + eval_rows("packaged")


def t0_rows(shared: Path = SHARED) -> list[dict]:
    with gzip.open(shared / "t0_prompts.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def clean_rows(shared: Path = SHARED, t0_sample: int = 5000, seed: int = 0) -> dict[str, list[dict]]:
    """Rows from other sources than the eval sets: all of instruction-data.json, a T0 sample."""
    alpaca = json.loads((shared / "instruction-data.json").read_text(encoding="utf-8"))
    t0 = t0_rows(shared)
    t0 = [t0[i] for i in sorted(random.Random(seed).sample(range(len(t0)), min(t0_sample, len(t0))))]
    return {"instruction-data.json": alpaca, f"t0_prompts sample ({len(t0):,})": t0}


# --------------------------------------------------------------------------- measurement


def measure(index: DecontamIndex, planted: list[dict], clean: dict[str, list[dict]]) -> dict:
    caught, total = Counter(), Counter()
    for p in planted:
        kind = p["kind"] if p["kind"] != "rewrite" else ("rewrite_long" if p["long_input"] else "rewrite_short")
        total[kind] += 1
        caught[kind] += index.check(p["instruction"], p["input"]) is not None
    flags = {}
    for name, rows in clean.items():
        rules = Counter()
        for r in rows:
            hit = index.check(r["instruction"], r.get("input") or "")
            if hit:
                rules[hit.rule.split(":")[0]] += 1
        flags[name] = {"rows": len(rows), "flagged": sum(rules.values()), "by_rule": dict(rules)}
    return {"recall": {k: (caught[k], total[k]) for k in total}, "flags": flags}


def screen_flags(index: DecontamIndex, clean: dict[str, list[dict]]) -> dict[str, tuple[int, int]]:
    """Clean rows flagged on their instruction alone, as generate screens a candidate (input unknown)."""
    return {name: (sum(index.check(r["instruction"], None) is not None for r in rows), len(rows))
            for name, rows in clean.items()}


def sweep(rows, planted, clean, ns=(5, 6, 8, 10, 13), thresholds=(0.6, 0.7, 0.8, 0.9)) -> list[dict]:
    out = []
    for n in ns:
        for t in thresholds:
            m = measure(DecontamIndex(rows, n=n, rouge_threshold=t), planted, clean)
            out.append({"n": n, "rouge": t, **m})
    return out


def speed(t0: list[dict], eval_size: int = 10_000, seed: int = 1) -> dict:
    """CPU seconds to index ``eval_size`` T0 rows and check all of them (55K) against it."""
    pick = set(random.Random(seed).sample(range(len(t0)), eval_size))
    ev = [{"instruction": r["instruction"], "input": r.get("input") or "", "file": "t0", "line": i + 1}
          for i, r in enumerate(t0) if i in pick]
    b0 = time.process_time()
    for r in t0:  # baseline: only normalising each row's words, which every check does first
        normalize(r["instruction"] + " " + (r.get("input") or "")).split()
    c0, w0 = time.process_time(), time.perf_counter()
    index = DecontamIndex(ev)
    c1 = time.process_time()
    hits = sum(index.check(r["instruction"], r.get("input") or "") is not None for r in t0)
    c2, w2 = time.process_time(), time.perf_counter()
    return {"eval_rows": len(ev), "rows": len(t0), "flagged": hits, "baseline_cpu_s": c0 - b0, "index_cpu_s": c1 - c0,
            "check_cpu_s": c2 - c1, "wall_s": w2 - w0}


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}% ({a}/{b})" if b else "-"


def render(rows, planted, results, fast, chosen, load, screened) -> str:
    kinds = ["exact", "case", "whitespace", "punctuation", "rewrite_long", "rewrite_short"]
    clean_names = list(results[0]["flags"])
    head = "| n | ROUGE | " + " | ".join(kinds) + " | " + " | ".join(f"flagged: {c}" for c in clean_names) + " |"
    lines = [head, "|" + "---|" * (2 + len(kinds) + len(clean_names))]
    for r in results:
        mark = " **(chosen)**" if (r["n"], r["rouge"]) == chosen else ""
        rec = [_pct(*r["recall"].get(k, (0, 0))) for k in kinds]
        fl = [_pct(r["flags"][c]["flagged"], r["flags"][c]["rows"]) for c in clean_names]
        lines.append(f"| {r['n']}{mark} | {r['rouge']} | " + " | ".join(rec) + " | " + " | ".join(fl) + " |")
    pick = next(r for r in results if (r["n"], r["rouge"]) == chosen)
    by_rule = "; ".join(f"{c}: " + (", ".join(f"{k} {v}" for k, v in pick["flags"][c]["by_rule"].items()) or "none")
                        for c in clean_names)
    return "\n".join([
        "`python3 bench/decontam_bench.py --write`. Eval rows: the paper's 252 user-oriented tasks and the "
        f"packaged set, {len(rows)} rows. Planted: {len(planted)} cases, one exact copy and one case, whitespace "
        "and punctuation variant per row, and one light rewrite of the instruction (two edits: a synonym, a "
        "dropped or swapped word, a polite prefix, a closing clause) keeping the input. A long input has "
        f">= {LONG_INPUT} words. Clean rows are from other sources. Cells are the share caught (planted) or "
        "flagged (clean).", "",
        *lines, "",
        f"Chosen: n = {chosen[0]}, ROUGE-L > {chosen[1]} with equal inputs (the defaults in "
        f"`selfinstruct/data/decontam.py`). Flags on clean rows by rule at that setting: {by_rule}.", "",
        "Why: n = 5 or 6 flags clean T0 rows that share a common phrase with an eval row (mostly \"two "
        "sentences mean the same thing\", a T0 paraphrase template); from n = 8 no T0 "
        "row is flagged and recall is the same, while 8-grams still reach into short instructions that "
        "13-grams (GPT-3's) miss. ROUGE > 0.7 (the filter's own threshold) keeps most short-input rewrites, "
        "which 0.8 and 0.9 lose, and 0.6 flags more clean rows. The clean row flagged at 0.7 is the packaged "
        "cylinder-volume task with other numbers, a real near-copy.", "",
        "`generate` screens a candidate before its input exists, so it matches the instruction alone "
        "(exact, n-gram, ROUGE against every eval instruction). Clean rows flagged that way: "
        + "; ".join(f"{c}: {_pct(*v)}" for c, v in screened.items()) + ".", "",
        f"Speed: {fast['rows']:,} T0 rows checked against {fast['eval_rows']:,} other T0 rows: index "
        f"{fast['index_cpu_s']:.2f} CPU s, checks {fast['check_cpu_s']:.2f} CPU s ({fast['wall_s']:.1f} s wall; "
        f"baseline, normalising the same rows only: {fast['baseline_cpu_s']:.2f} CPU s; "
        f"{fast['flagged']:,} flagged, T0 reuses its templates). Load average {load}.", ""])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="Write the section into docs/benchmarks.md.")
    ap.add_argument("--n", type=int, default=None, help="The chosen n (default: the module's NGRAM).")
    ap.add_argument("--rouge", type=float, default=None, help="The chosen threshold (default: the module's).")
    args = ap.parse_args(argv)
    from selfinstruct.data import decontam
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = real_eval_rows()
    planted = planted_cases(rows)
    clean = clean_rows()
    results = sweep(rows, planted, clean)
    fast = speed(t0_rows())
    chosen = (args.n or decontam.NGRAM, args.rouge or decontam.ROUGE_THRESHOLD)
    screened = screen_flags(DecontamIndex(rows, n=chosen[0], rouge_threshold=chosen[1]), clean)
    body = render(rows, planted, results, fast, chosen, load, screened)
    print(body)
    if args.write:
        from common import DOC, write_section
        write_section(DOC, "decontamination", "\n" + body)


if __name__ == "__main__":
    main()
