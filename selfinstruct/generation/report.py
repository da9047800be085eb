"""`selfinstruct report PATH`: what a `generate` run produced, or what any data file holds, as report.md + PNGs.

A run: counts come from stats.json (per round: kept, rejected by reason, tokens, cost); lengths,
similarities and first words from tasks.jsonl / data.jsonl. Any other source `train` reads (a filtered
file, an export, Alpaca or chat rows): lengths, similarities and first words of its rows.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from ..data.records import InputError
from ..data.writers import OutputError, atomic_write_text, check_writable, read_jsonl_lenient

RECOMPUTE_MAX = 1000   # recompute missing similarities (all pairs, ~5 s at 1000) up to this many
TOP_VERBS = 20
PLOTS = ("rounds.png", "lengths.png", "similarity.png", "first_words.png")


# --------------------------------------------------------------------------- reading


def load_run(run_dir) -> dict:
    """stats, tasks, data rows and run config of a generate run; InputError for anything else."""
    d = Path(run_dir)
    if not d.is_dir():
        raise InputError(d, None, "not a folder (expected a `selfinstruct generate` output)")
    missing = [f for f in ("stats.json", "tasks.jsonl") if not (d / f).is_file()]
    if missing:
        raise InputError(d, None, f"not a `selfinstruct generate` run (no {' or '.join(missing)})")
    stats = _read_json(d / "stats.json")
    if not isinstance(stats, dict) or not isinstance(stats.get("rounds"), list):
        raise InputError(d / "stats.json", None, "not generate stats (no 'rounds' list)")
    tasks = read_jsonl_lenient(d / "tasks.jsonl")
    data = read_jsonl_lenient(d / "data.jsonl") if (d / "data.jsonl").exists() else [
        {"instruction": t["instruction"], **i} for t in tasks for i in t.get("instances", [])]
    config = _read_json(d / "run.json") if (d / "run.json").is_file() else {}
    return {"dir": d, "stats": stats, "tasks": tasks, "data": data, "config": config if isinstance(config, dict) else {}}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(path, e.lineno, f"invalid JSON: {e.msg}") from None
    except UnicodeDecodeError:
        raise InputError(path, None, "not valid UTF-8") from None


# --------------------------------------------------------------------------- analysis (pure)


def words(text: str) -> int:
    return len(str(text or "").split())


def leading_word(instruction: str) -> str:
    """First word, lowercased, letters only ('Write,' -> 'write'); '' when there is none."""
    m = re.search(r"[^\W\d_]+(?:['’][^\W\d_]+)?", instruction or "")
    return m.group(0).lower() if m else ""


def leading_verbs(instructions: list[str], k: int = TOP_VERBS) -> list[tuple[str, int]]:
    return Counter(w for w in map(leading_word, instructions) if w).most_common(k)


def max_similarities(instructions: list[str], references: list[str] = ()) -> list[float]:
    """Each instruction's max ROUGE-L F1 to every other one and to ``references`` (rouge-score's scores).

    The filter's exact index with floor 0 scores every pair that shares a word; the rest score 0.
    """
    from ..data.similarity import RougeIndex

    index = RougeIndex(floor=0.0)
    for ref in references:
        index.add(ref)
    offset = len(index.texts)
    best = [0.0] * len(instructions)
    for i, text in enumerate(instructions):
        ids, scores = index.scores(text)
        for j, s in zip(ids.tolist(), scores.tolist()):
            best[i] = max(best[i], s)
            if j >= offset:
                best[j - offset] = max(best[j - offset], s)
        index.add(text)
    return best


def seed_instructions(config: dict) -> list[str]:
    """The run's seed instructions (run.json `seeds`, else the packaged ones); [] if unreadable."""
    from ..data.seeds import load_seeds

    try:
        return [t["instruction"] for t in load_seeds(config.get("seeds"))]
    except (InputError, OSError, ValueError):
        return []


def similarities(tasks: list[dict], seeds: list[str] = ()) -> tuple[list[float], str]:
    """(values, source): tasks.jsonl's `similarity` (max ROUGE-L to the seeds and the tasks kept
    before it), else recomputed against the seeds and the other kept instructions (up to RECOMPUTE_MAX)."""
    given = [t.get("similarity") for t in tasks]
    if tasks and all(isinstance(s, (int, float)) for s in given):
        return [float(s) for s in given], "tasks.jsonl `similarity` (vs seeds and earlier kept tasks)"
    if len(tasks) <= RECOMPUTE_MAX:
        what = f"the {len(seeds)} seeds and " if seeds else ""
        return (max_similarities([t["instruction"] for t in tasks], seeds),
                f"recomputed against {what}the other kept instructions")
    return [float(s) for s in given if isinstance(s, (int, float))], "tasks.jsonl (rows without a value left out)"


def summarize_run(run: dict) -> dict:
    stats, tasks, data = run["stats"], run["tasks"], run["data"]
    rounds = stats["rounds"]
    reasons: Counter = Counter()
    for r in rounds:
        reasons.update(r.get("rejected", {}))
    given = all(isinstance(t.get("similarity"), (int, float)) for t in tasks)
    sims, source = similarities(tasks, [] if given else seed_instructions(run["config"]))
    total = stats.get("total") or {}
    return {
        "teacher": stats.get("teacher"), "seeds": stats.get("seeds"), "rounds": rounds, "reasons": reasons,
        "kept": sum(r.get("kept", 0) for r in rounds), "tasks": len(tasks), "examples": len(data),
        "classification": sum(bool(t.get("is_classification")) for t in tasks),
        "instruction_words": [words(t.get("instruction")) for t in tasks],
        "output_words": [words(r.get("output")) for r in data],
        "similarities": sims, "similarity_source": source,
        "verbs": leading_verbs([t.get("instruction", "") for t in tasks]),
        "prompt_tokens": total.get("prompt_tokens", sum(r.get("prompt_tokens", 0) for r in rounds)),
        "completion_tokens": total.get("completion_tokens", sum(r.get("completion_tokens", 0) for r in rounds)),
        "cost_usd": _cost(rounds),
        "unreported": total.get("unreported", 0),
        "seconds": sum(r.get("seconds", 0) or 0 for r in rounds),
    }


def _cost(rounds: list[dict]) -> float | None:
    costs = [r.get("cost_usd") for r in rounds]
    return None if not costs or any(c is None for c in costs) else sum(costs)


# --------------------------------------------------------------------------- writing


def _table(head, rows) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def _pct(values: list[float], q: float) -> str:
    """The q-quantile (linear interpolation, like numpy's default), 3 significant digits."""
    if not values:
        return "-"
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    value = xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (pos - lo)
    return f"{value:.3g}"


def _contamination_line(s: dict, config: dict) -> list[str]:
    """How many candidates leaked an eval row, and against what (runs before decontam.py: nothing)."""
    if "decontaminate" not in config:
        return []
    evals = ", ".join(map(str, config["decontaminate"])) or "nothing (--no-decontaminate)"
    return [f"Contaminated: **{s['reasons'].get('contaminated', 0)}** candidates leaked an eval row and were "
            f"rejected at screening (decontaminated against {evals}).", ""]


def render_run_markdown(s: dict, run_dir, config: dict) -> str:
    cost = "unknown (no prices given)" if s["cost_usd"] is None else f"${s['cost_usd']:.4f}"
    if s.get("unreported"):
        cost = f"unknown ({s['unreported']} answers came without token usage)"
    round_rows = [[r["round"], r.get("candidates", 0), r.get("kept", 0), sum(r.get("rejected", {}).values()),
                   r.get("instances", 0), r.get("requests", 0), r.get("prompt_tokens", 0),
                   r.get("completion_tokens", 0), "-" if r.get("cost_usd") is None else f"{r['cost_usd']:.4f}",
                   f"{r.get('seconds', 0) or 0:.0f}"] for r in s["rounds"]]
    sims = s["similarities"]
    parts = [
        f"# Generate run report: {run_dir}", "",
        f"Teacher: {s['teacher']}; {s['seeds']} seed tasks; {len(s['rounds'])} round(s); style "
        f"{config.get('style', '?')}, ROUGE-L threshold {config.get('threshold', '?')}.", "",
        f"Kept **{s['tasks']} tasks** ({s['classification']} classification) with **{s['examples']} examples**; "
        f"rejected {sum(s['reasons'].values())} candidates. Tokens: {s['prompt_tokens']} prompt + "
        f"{s['completion_tokens']} completion; estimated cost {cost}; {s['seconds']:.0f} s of rounds.", "",
        *_contamination_line(s, config),
        "## Per round", "",
        _table(["round", "candidates", "kept", "rejected", "instances", "requests", "prompt tok",
                "completion tok", "cost $", "s"], round_rows), "",
        "![kept and rejected per round](rounds.png)", "",
        "## Rejections by reason", "",
        _table(["reason", "count"], s["reasons"].most_common()) if s["reasons"] else "None.", "",
        "## Lengths (words)", "",
        _table(["", "n", "median", "90th pct", "max"],
               [["instruction", len(s["instruction_words"]), _pct(s["instruction_words"], .5),
                 _pct(s["instruction_words"], .9), max(s["instruction_words"], default="-")],
                ["output", len(s["output_words"]), _pct(s["output_words"], .5), _pct(s["output_words"], .9),
                 max(s["output_words"], default="-")]]), "",
        "![length histograms](lengths.png)", "",
        "## Similarity of kept instructions", "",
        f"Max ROUGE-L of each kept instruction to the rest ({s['similarity_source']}): "
        f"median {_pct(sims, .5)}, 90th percentile {_pct(sims, .9)}, n={len(sims)}.", "",
        "![similarity histogram](similarity.png)", "",
        *_first_words_lines(s["verbs"], "kept instruction"),
    ]
    return "\n".join(parts)


def _first_words_lines(counts, what: str) -> list[str]:
    return ["## Most common first words", "",
            f"The first word of each {what}, lowercased: a rough view of diversity. These are first words, not "
            "verbs (the paper parses verb-noun pairs): a question's \"what\" counts too.", "",
            _table(["word", "instructions"], counts) if counts else "None.", "",
            "![first words](first_words.png)", ""]


def write_run_report(run_dir, out=None, *, overwrite: bool = False) -> Path:
    """Write report.md and the plots into ``out`` (default RUN_DIR/report); returns report.md."""
    from .. import plots

    run = load_run(run_dir)
    out = Path(out) if out else run["dir"] / "report"
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    for name in ("report.md", *PLOTS):
        check_writable(out / name, overwrite=overwrite, hint="pass --overwrite to replace the report")
    s = summarize_run(run)
    out.mkdir(parents=True, exist_ok=True)
    plots.plot_rounds(s["rounds"], out / "rounds.png")
    plots.plot_lengths(s["instruction_words"], s["output_words"], out / "lengths.png")
    plots.plot_similarity(s["similarities"], out / "similarity.png", run["config"].get("threshold"))
    plots.plot_first_words(s["verbs"], out / "first_words.png")
    atomic_write_text(out / "report.md", render_run_markdown(s, run["dir"], run["config"]))
    return out / "report.md"


# --------------------------------------------------------------------------- any data file

ALPACA_INSTRUCTION = re.compile(r"### Instruction:\n(.*?)\n\n### (?:Input|Response):", re.S)


def row_texts(row: dict) -> tuple[str, str]:
    """(instruction, output) of a row `sources.load_rows` reads: a chat row's user and last assistant
    turns; a prompt-completion row's Alpaca instruction (else its whole prompt) and completion."""
    if "messages" in row:
        msgs = row["messages"]
        return ("\n".join(m["content"] for m in msgs if m["role"] == "user"),
                next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), ""))
    if "prompt" in row and "completion" in row and "instruction" not in row:
        m = ALPACA_INSTRUCTION.search(row["prompt"])
        return (m.group(1) if m else row["prompt"]), row["completion"]
    return row.get("instruction", ""), row.get("output", "")


def summarize_data(rows: list[dict], *, sample: int = RECOMPUTE_MAX, seed: int = 0) -> dict:
    """Lengths, max ROUGE-L among distinct instructions (a seeded sample of ``sample`` when more), first words."""
    import random

    texts = [row_texts(r) for r in rows]
    distinct = list(dict.fromkeys(t for t, _ in texts))
    picked = distinct if len(distinct) <= sample else random.Random(seed).sample(distinct, sample)
    source = "every other distinct instruction" if picked is distinct else (
        f"the others of a seeded sample of {sample:,} of the {len(distinct):,} distinct instructions")
    return {"rows": len(rows), "distinct": len(distinct),
            "instruction_words": [words(t) for t in distinct], "output_words": [words(o) for _, o in texts],
            "similarities": max_similarities(picked), "similarity_source": source,
            "verbs": leading_verbs(distinct)}


def render_data_markdown(s: dict, name: str) -> str:
    sims = s["similarities"]
    return "\n".join([
        f"# Data report: {name}", "",
        f"**{s['rows']} rows**, {s['distinct']} distinct instructions.", "",
        "## Lengths (words)", "",
        _table(["", "n", "median", "90th pct", "max"],
               [[what, len(xs), _pct(xs, .5), _pct(xs, .9), max(xs, default="-")]
                for what, xs in (("instruction (distinct)", s["instruction_words"]), ("output", s["output_words"]))]),
        "", "![length histograms](lengths.png)", "",
        "## Similarity of the instructions", "",
        f"Max ROUGE-L of each instruction to {s['similarity_source']}: median {_pct(sims, .5)}, "
        f"90th percentile {_pct(sims, .9)}, n={len(sims)}.", "",
        "![similarity histogram](similarity.png)", "",
        *_first_words_lines(s["verbs"], "distinct instruction"),
    ])


DATA_PLOTS = ("lengths.png", "similarity.png", "first_words.png")


def write_data_report(path, out=None, *, overwrite: bool = False, columns: dict | None = None) -> Path:
    """report.md and the plots of any data source `train` reads (default out: ``PATH.report`` beside it)."""
    from .. import plots
    from ..data.sources import load_rows

    path = Path(path)
    out = Path(out) if out else path.with_name(path.name + ".report")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    for name in ("report.md", *DATA_PLOTS):
        check_writable(out / name, overwrite=overwrite)
    s = summarize_data(load_rows(path, template="chat", columns=columns))
    out.mkdir(parents=True, exist_ok=True)
    plots.plot_lengths(s["instruction_words"], s["output_words"], out / "lengths.png")
    plots.plot_similarity(s["similarities"], out / "similarity.png", what="instructions")
    plots.plot_first_words(s["verbs"], out / "first_words.png")
    atomic_write_text(out / "report.md", render_data_markdown(s, path.name))
    return out / "report.md"


def write_report(path, out=None, *, overwrite: bool = False, columns: dict | None = None) -> Path:
    """A run report for a `generate` folder (it has stats.json), else a data report."""
    if Path(path).is_dir() and (Path(path) / "stats.json").exists():
        return write_run_report(path, out, overwrite=overwrite)
    return write_data_report(path, out, overwrite=overwrite, columns=columns)
