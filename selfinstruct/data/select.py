"""`selfinstruct select`: score every row, keep the best, and write each row's scores and why it was kept.

The keep rule is that of the IFD papers. Li et al. 2023 ("From Quantity to Quality: Boosting LLM Performance
with Self-Guided Data Selection for Instruction Tuning", arXiv:2308.12032) drop the rows whose IFD is above 1
(the instruction does not help the model predict the response: it and the response do not belong together)
and keep the *highest*-IFD rows among the rest, the "cherry" data whose instructions are hardest to follow;
Superfiltering (Li et al. 2024, arXiv:2402.00530) keeps the top 5-15% by IFD from a GPT-2-sized scorer, the
same way. Here: rows with ``ifd >= max_ifd`` (default 1) are dropped, and ``keep_fraction`` keeps that share
of all rows, best first by ``by``:

- ``ifd``: highest first (the papers' rule);
- ``ppl``: lowest response perplexity first;
- ``length``: most response tokens first;
- ``rating``: highest LLM rating first (AlpaGasus, Chen et al. 2023, arXiv:2307.08701, which kept the
  rows ChatGPT rated 4.5 or more of 5; see ``rating.py``).

``reverse`` ranks the other way round (lowest IFD first, ...). ``min_rating`` drops rows rated below it (or
not rated). Without ``keep_fraction`` every row that passes the thresholds is kept. Kept rows keep their
input order.
"""
from __future__ import annotations

from pathlib import Path

BY = ("ifd", "ppl", "length", "rating")
_KEY = {"ifd": ("ifd", -1), "ppl": ("ppl", 1), "length": ("response_tokens", -1), "rating": ("rating", -1)}


def scores_path_for(out) -> Path:
    """The default scores file beside ``out``: ``kept.jsonl`` -> ``kept.scores.jsonl``."""
    out = Path(out)
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}.scores.jsonl")


def _fmt(x: float) -> str:
    return f"{x:g}"


def decide(scores: list[dict | None], *, by: str = "ifd", keep_fraction: float | None = None,
           max_ifd: float = 1.0, min_rating: float | None = None, reverse: bool = False) -> list[dict]:
    """One ``{kept, reason, rank}`` per row. ``scores[i]`` None: the row could not be scored (its response
    was cut entirely); it is dropped. ``rank`` (1 = best by ``by``) is given to every row that passed the
    thresholds; ``reason`` says why a dropped row was dropped."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    out = [{"kept": False, "reason": None, "rank": None} for _ in scores]
    eligible = []
    for i, s in enumerate(scores):
        if s is None:
            out[i]["reason"] = "response cut entirely by --max-length"
        elif s.get("ifd") is None or s["ifd"] >= max_ifd:
            out[i]["reason"] = f"ifd >= {_fmt(max_ifd)}: the instruction does not help predict the response"
        elif min_rating is not None and (s.get("rating") is None or s["rating"] < min_rating):
            out[i]["reason"] = "no rating" if s.get("rating") is None else f"rating < {_fmt(min_rating)}"
        elif by == "rating" and s.get("rating") is None:
            out[i]["reason"] = "no rating"
        else:
            eligible.append(i)
    field, sign = _KEY[by]
    sign = -sign if reverse else sign
    eligible.sort(key=lambda i: (sign * scores[i][field], i))
    n_keep = len(eligible)
    if keep_fraction is not None:
        n_keep = min(n_keep, max(1, round(keep_fraction * len(scores))))
    for rank, i in enumerate(eligible, 1):
        out[i]["rank"] = rank
        out[i]["kept"] = rank <= n_keep
        if rank > n_keep:
            out[i]["reason"] = f"below the cut: {by} rank {rank} of {len(eligible)}, {n_keep} kept"
    return out


def score_records(rows: list[dict], scores: list[dict | None], decisions: list[dict], rule: dict) -> list[dict]:
    """The scores file's rows: the source line, the row, its scores, kept, rank, reason and the rule used."""
    from .writers import clean

    return [{"line": r.get("_line"), "kept": d["kept"], "rank": d["rank"], "reason": d["reason"],
             "scores": s, "rule": rule, "row": clean(r)}
            for r, s, d in zip(rows, scores, decisions)]


def summary_lines(decisions: list[dict], out, scores_path, seconds: float) -> list[str]:
    from collections import Counter

    n, kept = len(decisions), sum(d["kept"] for d in decisions)
    why = Counter(d["reason"].split(":")[0] for d in decisions if not d["kept"])
    lines = [f"scored {n} rows in {seconds:.1f}s ({n / max(seconds, 1e-9):.1f} rows/s)",
             f"kept {kept} of {n} rows -> {out}"]
    lines += [f"  dropped {c}: {reason}" for reason, c in why.most_common()]
    lines.append(f"scores -> {scores_path}")
    return lines


def select_file(data_path, out_path, scores_path, *, model=None, by: str = "ifd", keep_fraction=None,
                reverse: bool = False, max_ifd: float = 1.0, min_rating=None, rate_spec=None, base_url=None,
                api_key=None, concurrency: int = 16, template: str = "alpaca", max_length: int = 1024,
                batch_size: int = 16, fp32: bool = False, skip_invalid: bool = False, progress: bool = True,
                echo=print) -> list[str]:
    """`selfinstruct select` over files: read any source, score every row (and rate it with ``rate_spec``),
    decide, write the kept rows and the scores file; returns the summary lines. Outputs are checked and
    rows read before any model loads."""
    import math
    import time

    from .scoring import load_scorer, score_rows
    from .sources import load_rows
    from .writers import check_writable, write_jsonl

    for p in (out_path, scores_path):
        check_writable(p)
    skipped: list = []
    rows = load_rows(data_path, template, skip_invalid=skip_invalid, skipped=skipped)
    for err in skipped[:5]:
        echo(f"skipped: {err}")
    teacher = None
    if rate_spec:
        from ..teachers import make_teacher

        teacher = make_teacher(rate_spec, base_url=base_url, api_key=api_key, concurrency=concurrency)
    try:
        lm, tokenizer, bf16 = load_scorer(model, fp32=fp32)
        echo(f"scoring {len(rows)} rows with {model or 'embedded'} ({'bf16 autocast' if bf16 else 'fp32'})")
        start = time.monotonic()
        scores = score_rows(rows, lm, tokenizer, template=template, max_length=max_length, batch_size=batch_size,
                            bf16=bf16, progress=progress)
        seconds = time.monotonic() - start
        if teacher is not None:
            from .rating import rate_rows

            for s, r in zip(scores, rate_rows(teacher, rows, progress=progress)):
                if s is not None:
                    s.update(r)
    finally:
        if teacher is not None:
            teacher.close()
    decisions = decide(scores, by=by, keep_fraction=keep_fraction, max_ifd=max_ifd, min_rating=min_rating,
                       reverse=reverse)
    rule = {"by": by, "reverse": reverse, "keep_fraction": keep_fraction,
            "max_ifd": None if math.isinf(max_ifd) else max_ifd, "min_rating": min_rating,
            "model": model or "embedded", "rate": rate_spec}
    write_jsonl(out_path, [r for r, d in zip(rows, decisions) if d["kept"]])
    write_jsonl(scores_path, score_records(rows, scores, decisions, rule))
    return summary_lines(decisions, out_path, scores_path, seconds)


# --------------------------------------------------------------------------- the scores file, read back


def is_scores_file(path) -> bool:
    """Is ``path`` a `select --scores` file (its first row has kept, scores and rule)?"""
    from .records import InputError, iter_json_rows

    if not Path(path).is_file():
        return False
    try:
        for _, rec in iter_json_rows(path):
            return isinstance(rec, dict) and {"kept", "scores", "rule"} <= set(rec)
    except InputError:
        return False
    return False


def read_scores(path) -> list[dict]:
    """The rows of a `select --scores` file; InputError (file:line) for anything else."""
    from .records import InputError, iter_json_rows

    out = []
    for line, rec in iter_json_rows(path):
        if not isinstance(rec, dict) or not {"kept", "scores", "rule"} <= set(rec):
            raise InputError(path, line, "not a `selfinstruct select` scores row (needs kept, scores, rule)")
        out.append(rec)
    if not out:
        raise InputError(path, None, "no scores rows")
    return out


def cut_value(records: list[dict]) -> float | None:
    """Where --keep-fraction cut the ranked rows: midway between the last kept and the first dropped score."""
    by = records[0]["rule"]["by"]
    field = _KEY[by][0]
    ranked = sorted((r for r in records if r.get("rank")), key=lambda r: r["rank"])
    kept = [r for r in ranked if r["kept"]]
    if not kept or len(kept) == len(ranked):
        return None
    return (kept[-1]["scores"][field] + ranked[len(kept)]["scores"][field]) / 2


def _median(xs: list) -> str:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return "-"
    m = len(xs) // 2
    return f"{(xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2):.3g}"


def write_scores_report(scores_path, out=None, *, overwrite: bool = False) -> Path:
    """select.md and scores.png (each score's distribution, kept and dropped, the cut marked) into ``out``
    (default: SCORES without its suffix + ``.report``); returns select.md."""
    from collections import Counter

    from .. import plots
    from .writers import OutputError, atomic_write_text, check_writable

    records = read_scores(scores_path)
    out = Path(out) if out else Path(scores_path).with_suffix(".report")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    for name in ("select.md", "scores.png"):
        check_writable(out / name, overwrite=overwrite)
    rule = records[0]["rule"]
    fields = [f for f in ("ifd", "ppl", "response_tokens", "rating")
              if any((r["scores"] or {}).get(f) is not None for r in records)]
    marks = {"ifd": [("max-ifd", rule.get("max_ifd"))], "rating": [("min-rating", rule.get("min_rating"))]}
    cut = cut_value(records)
    if cut is not None:
        marks.setdefault(_KEY[rule["by"]][0], []).append((f"--keep-fraction cut ({rule['by']})", cut))
    out.mkdir(parents=True, exist_ok=True)
    plots.plot_scores(records, fields, marks, out / "scores.png")
    kept = [r for r in records if r["kept"]]
    dropped = Counter((r["reason"] or "").split(":")[0] for r in records if not r["kept"])
    lines = [f"# Selection: {Path(scores_path).name}", "",
             f"Kept {len(kept)} of {len(records)} rows. Rule: " + ", ".join(f"{k}={v}" for k, v in rule.items()), ""]
    lines += [f"- dropped {n}: {why}" for why, n in dropped.most_common()] + ["", "| score | kept (median) | dropped (median) |",
                                                                             "|---|---|---|"]
    for f in fields:
        vals = [((r["scores"] or {}).get(f), r["kept"]) for r in records]
        lines.append(f"| {f} | {_median([v for v, k in vals if k])} | {_median([v for v, k in vals if not k])} |")
    lines += ["", "![score distributions](scores.png)", ""]
    atomic_write_text(out / "select.md", "\n".join(lines))
    return out / "select.md"
