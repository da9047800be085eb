"""Scoring for `selfinstruct eval` (pure functions): ROUGE-L, exact match, answer flags,
per-model summaries, paired comparisons between models, and the example rows a report shows.
"""
from __future__ import annotations

import unicodedata

from ..data.formatting import cut_at_header, has_header
from .stats import answer_diversity, headline, is_collapse, paired_comparison

ECHO_MIN_INPUT_WORDS = 8

_SCORER = None


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (rouge-score's tokenizer: lowercase, alphanumeric tokens, no stemming)."""
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return _SCORER.score(reference, prediction)["rougeL"].fmeasure


def normalize(text: str) -> str:
    """Lowercase, drop punctuation (Unicode category P*), collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


def answer_flags(answer: str, raw: str, row: dict, *, runaway: bool) -> dict:
    """Flags for one answer (``answer`` is ``raw`` cut at the first header).

    - empty: nothing left after cutting;
    - echo: the raw text holds a template header, or the answer contains the whole
      instruction, equals the input, or contains the whole input when the input has
      at least ``ECHO_MIN_INPUT_WORDS`` words (normalised text);
    - runaway: generation hit ``max_new_tokens`` without EOS or header.
    """
    ans, ins, inp = normalize(answer), normalize(row["instruction"]), normalize(row.get("input", ""))
    repeats = bool(ans) and (
        (ins and ins in ans) or (inp and ans == inp)
        or (len(inp.split()) >= ECHO_MIN_INPUT_WORDS and inp in ans))
    return {"empty": not answer.strip(), "echo": has_header(raw) or bool(repeats), "runaway": bool(runaway)}


def score_answer(row: dict, raw: str, *, runaway: bool) -> dict:
    """Everything results.jsonl stores about one answer."""
    answer = cut_at_header(raw)
    cls = bool(row.get("is_classification", False))
    return {
        "answer": answer, "raw": raw,
        "rouge_l": rouge_l(answer, row["output"]),
        "exact_match": exact_match(answer, row["output"]) if cls else None,
        **answer_flags(answer, raw, row, runaway=runaway),
        "words": len(answer.split()),
    }


def _mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def summarize(scored: list[dict], references: list[str] | None = None) -> dict:
    """Per-model summary from that model's scored rows (``references``: for the collapse rule)."""
    em = [r["exact_match"] for r in scored if r["exact_match"] is not None]
    div = answer_diversity([r["answer"] for r in scored], key=normalize)
    ref = answer_diversity(references, key=normalize) if references is not None else None
    return {
        "rows": len(scored),
        "rouge_l": _mean(r["rouge_l"] for r in scored),
        "exact_match": _mean(em), "classification_rows": len(em),
        "empty": _mean(r["empty"] for r in scored),
        "echo": _mean(r["echo"] for r in scored),
        "runaway": _mean(r["runaway"] for r in scored),
        "words": _mean(r["words"] for r in scored),
        "top_answer": div["top_answer"], "top_answer_share": div["top_share"],
        "distinct_per_100": div["distinct_per_100"], "collapse": is_collapse(div, ref),
    }


def compare_models(names: list[str], scored: dict[str, list[dict]], *, seed: int = 0) -> list[dict]:
    """The first model (A) against each other one (B): paired ROUGE-L statistics and a headline."""
    def shares(name: str, side: str) -> dict:
        return {f"{k}_{side}": _mean(s[k] for s in scored[name]) for k in ("empty", "echo", "runaway")}

    a = [s["rouge_l"] for s in scored[names[0]]]
    out = []
    for name in names[1:]:
        cmp = paired_comparison(a, [s["rouge_l"] for s in scored[name]], seed=seed)
        out.append({"a": names[0], "b": name, **cmp, **shares(names[0], "a"), **shares(name, "b"),
                    "headline": headline(names[0], name, cmp)})
    return out


def pick_examples(rouge_a: list[float], rouge_b: list[float] | None, k: int) -> tuple[list[int], list[int]]:
    """(best, worst) row indices: with two models the largest gains (b > a) and losses (b < a),
    rows that tie left out; with one, its highest and lowest rows."""
    if rouge_b is not None:
        gap = [b - a for a, b in zip(rouge_a, rouge_b)]
        gains = sorted((i for i, g in enumerate(gap) if g > 0), key=lambda i: (-gap[i], i))
        losses = sorted((i for i, g in enumerate(gap) if g < 0), key=lambda i: (gap[i], i))
        return gains[:k], losses[:k]
    order = sorted(range(len(rouge_a)), key=lambda i: (rouge_a[i], -i))
    best = order[::-1][:k]
    worst = [i for i in order[:k] if i not in best] if len(order) > k else []
    return best, worst
