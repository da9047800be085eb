"""Statistics for `selfinstruct eval`: paired comparisons and answer diversity (pure functions).

- :func:`bootstrap_ci`: percentile bootstrap interval of a mean (numpy, seeded).
- :func:`paired_comparison`: model B against model A on the same rows: both means, the
  mean paired difference B − A with its bootstrap interval, and wins / ties / losses of B.
- :func:`answer_diversity` and :func:`is_collapse`: how often a model gives the same answer.

Collapse rule (a model that answers everything alike): over at least ``COLLAPSE_MIN_ROWS``
rows, its most common answer (normalised text) covers more than ``COLLAPSE_TOP_SHARE`` of the
rows, or it gives fewer than ``COLLAPSE_DISTINCT_PER_100`` distinct answers per 100 rows.
Reference answers that are themselves that repetitive (a classification-only set) raise the
bar to the references' own figures, so a model that matches its references is never flagged.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
COLLAPSE_MIN_ROWS = 10
COLLAPSE_TOP_SHARE = 0.30
COLLAPSE_DISTINCT_PER_100 = 20.0
_CHUNK = 1_000  # resamples drawn at once (bounds memory at CHUNK x rows indices)


def bootstrap_ci(values, *, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of ``values``.

    ``resamples`` means of ``len(values)`` values drawn with replacement (numpy's
    ``default_rng(seed)``); the interval is their ``(1-level)/2`` and ``(1+level)/2``
    quantiles (numpy's default linear interpolation). One value gives ``(v, v)``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("bootstrap_ci needs a non-empty list of numbers")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        k = min(_CHUNK, resamples - start)
        means[start:start + k] = x[rng.integers(0, x.size, size=(k, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_comparison(a: list[float], b: list[float], *, resamples: int = RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> dict:
    """B against A on the same rows (``a[i]`` and ``b[i]`` score row ``i``).

    A row is a win for B when ``b[i] > a[i]``, a loss when below, a tie when equal.
    ``diff`` is the mean of ``b[i] - a[i]``; ``ci_low``/``ci_high`` its bootstrap interval.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores differ in length ({len(a)} and {len(b)})")
    if not a:
        raise ValueError("no rows to compare")
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = xb - xa
    lo, hi = bootstrap_ci(d, resamples=resamples, seed=seed, level=level)
    return {"rows": len(a), "mean_a": float(xa.mean()), "mean_b": float(xb.mean()), "diff": float(d.mean()),
            "ci_low": lo, "ci_high": hi, "level": level, "resamples": resamples, "seed": seed,
            "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum())}


def verdict(cmp: dict) -> str:
    """'beats' when the whole interval is above 0, 'trails' when below, else 'is not clearly different from'."""
    if cmp["ci_low"] > 0:
        return "beats"
    if cmp["ci_high"] < 0:
        return "trails"
    return "is not clearly different from"


def headline(name_a: str, name_b: str, cmp: dict, metric: str = "ROUGE-L") -> str:
    """One line, e.g. ``tuned beats embedded: ROUGE-L 0.210 vs 0.133, +0.077 [95% CI +0.041, +0.112],
    31 wins / 12 ties / 7 losses``."""
    pct = f"{100 * cmp['level']:g}%"
    return (f"{name_b} {verdict(cmp)} {name_a}: {metric} {cmp['mean_b']:.3f} vs {cmp['mean_a']:.3f}, "
            f"{cmp['diff']:+.3f} [{pct} CI {cmp['ci_low']:+.3f}, {cmp['ci_high']:+.3f}], "
            f"{cmp['wins']} wins / {cmp['ties']} ties / {cmp['losses']} losses")


def answer_diversity(answers: list[str], key=str.strip) -> dict:
    """The most common answer (by ``key``), its count and share, and distinct answers per 100 rows."""
    if not answers:
        return {"rows": 0, "top_answer": None, "top_count": 0, "top_share": None, "distinct": 0,
                "distinct_per_100": None}
    counts = Counter(key(a) for a in answers)
    (top, n), = counts.most_common(1)  # stable: the first seen wins a tie
    return {"rows": len(answers), "top_answer": top, "top_count": n, "top_share": n / len(answers),
            "distinct": len(counts), "distinct_per_100": 100.0 * len(counts) / len(answers)}


def is_collapse(div: dict, reference: dict | None = None) -> bool | None:
    """The collapse rule of this module's docstring (``reference``: the references' diversity);
    None when there are too few rows to tell."""
    if div["rows"] < COLLAPSE_MIN_ROWS:
        return None
    top_limit, distinct_limit = COLLAPSE_TOP_SHARE, COLLAPSE_DISTINCT_PER_100
    if reference and reference.get("top_share") is not None:
        top_limit = max(top_limit, reference["top_share"])
        distinct_limit = min(distinct_limit, reference["distinct_per_100"])
    return div["top_share"] > top_limit or div["distinct_per_100"] < distinct_limit
