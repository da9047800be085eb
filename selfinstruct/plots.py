"""PNG plots for `selfinstruct report` (matplotlib's object API on the Agg canvas: no pyplot state)."""
from __future__ import annotations

from pathlib import Path


def _figure(width: float = 7.0, height: float = 4.0, layout: str | None = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    path = Path(path)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, format="png")
    return path


KEPT_COLOR = "#2e7d32"
# one colour a reason, none of them green (kept's) or grey (other's)
REASON_COLORS = ("#c62828", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#6d4c41", "#f9a825",
                 "#212121", "#f48fb1")
OTHER_COLOR = "#9e9e9e"


def group_reasons(rounds: list[dict], most: int = len(REASON_COLORS)) -> tuple[list[str], list[dict]]:
    """(reasons by total, most first; per round ``{reason: count}``): every ``blacklist:WORD`` counts as
    ``blacklist``, and beyond ``most`` reasons the smallest are summed as ``other``."""
    per_round = []
    for r in rounds:
        counts: dict = {}
        for k, v in r.get("rejected", {}).items():
            key = "blacklist" if k.startswith("blacklist:") else k
            counts[key] = counts.get(key, 0) + v
        per_round.append(counts)
    totals: dict = {}
    for counts in per_round:
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    reasons = sorted(totals, key=lambda k: (-totals[k], k))
    if len(reasons) <= most:
        return reasons, per_round
    shown = set(reasons[:most - 1])
    grouped = [{**{k: v for k, v in c.items() if k in shown},
                "other": sum(v for k, v in c.items() if k not in shown)} for c in per_round]
    return reasons[:most - 1] + ["other"], grouped


def reason_color(reasons: list[str], reason: str) -> str:
    return OTHER_COLOR if reason == "other" else REASON_COLORS[reasons.index(reason)]


def plot_rounds(rounds: list[dict], path) -> Path:
    """Kept and rejected (stacked by reason) per round; rejected totals per reason."""
    return _save(rounds_figure(rounds), path)


def rounds_figure(rounds: list[dict]):
    """The figure of :func:`plot_rounds`; its legend sits above the axes, clear of the bars."""
    fig = _figure(10, 4, layout="constrained")
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    labels = [str(r["round"]) for r in rounds]
    reasons, per_round = group_reasons(rounds)
    bottom = [r.get("kept", 0) for r in rounds]
    ax.bar(labels, bottom, label="kept", color=KEPT_COLOR)
    for reason in reasons:
        vals = [c.get(reason, 0) for c in per_round]
        ax.bar(labels, vals, bottom=bottom, label=f"rejected: {reason}", color=reason_color(reasons, reason))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xlabel("round")
    ax.set_ylabel("candidate instructions")
    ax.set_title("Kept and rejected per round")
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncol=min(4, len(names)), fontsize=7, frameon=False)
    totals = [sum(c.get(k, 0) for c in per_round) for k in reasons]
    ax2.barh(reasons[::-1], totals[::-1], color=[reason_color(reasons, k) for k in reasons][::-1])
    ax2.set_xlabel("rejected (all rounds)")
    ax2.set_title("Rejections by reason")
    _integer_ticks(ax.yaxis, ax2.xaxis)
    return fig


def _integer_ticks(*axes) -> None:
    from matplotlib.ticker import MaxNLocator

    for a in axes:
        a.set_major_locator(MaxNLocator(integer=True))


def plot_lengths(instruction_words: list[int], output_words: list[int], path) -> Path:
    return _save(lengths_figure(instruction_words, output_words), path)


def lengths_figure(instruction_words: list[int], output_words: list[int]):
    """Histograms of instruction and output lengths in words; counts and lengths on integer ticks."""
    fig = _figure(10, 3.8)
    for ax, xs, what, color in zip(fig.subplots(1, 2), (instruction_words, output_words),
                                   ("instruction", "output"), ("#1565c0", "#6a1b9a")):
        ax.hist(xs, bins=min(30, max(5, len(set(xs)))), color=color)
        ax.set_xlabel(f"{what} length (words)")
        ax.set_ylabel("count")
        ax.set_title(f"{what.capitalize()}s: n={len(xs)}")
        _integer_ticks(ax.xaxis, ax.yaxis)
    return fig


def plot_similarity(similarities: list[float], path, threshold: float | None = None,
                    what: str = "kept instructions") -> Path:
    """Histogram of each instruction's max ROUGE-L to the rest (Self-Instruct, figure 3)."""
    fig = _figure(7, 4)
    ax = fig.subplots()
    ax.hist(similarities, bins=[i / 20 for i in range(21)], color="#00838f", edgecolor="white")
    if threshold is not None:
        ax.axvline(threshold, color="#c62828", linestyle="--", label=f"filter threshold {threshold}")
        ax.legend()
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROUGE-L with the most similar other instruction")
    ax.set_ylabel(what)
    ax.set_title(f"Similarity of {what}")
    _integer_ticks(ax.yaxis)
    return _save(fig, path)


def plot_first_words(counts: list[tuple[str, int]], path) -> Path:
    return _save(first_words_figure(counts), path)


def first_words_figure(counts: list[tuple[str, int]]):
    """The most common first words of the instructions (not parsed verbs: "what" and "if" count too)."""
    fig = _figure(7, max(3.0, 0.28 * len(counts) + 1))
    ax = fig.subplots()
    words = [w for w, _ in counts][::-1]
    ax.barh(words, [n for _, n in counts][::-1], color="#ef6c00")
    ax.set_xlabel("instructions that start with the word")
    ax.set_title(f"First word of each instruction (top {len(counts)}, lowercased)")
    _integer_ticks(ax.xaxis)
    return fig


def plot_losses(rows: list[dict], path) -> Path:
    """Train and validation loss per optimizer step, from ``train``'s metrics.jsonl rows."""
    fig = _figure(7, 4)
    ax = fig.subplots()
    tr = [(r["step"], r["loss"]) for r in rows if r.get("type") == "train"]
    ev = [(r["step"], r["eval_loss"]) for r in rows if r.get("type") == "eval"]
    if tr:
        ax.plot(*zip(*tr), label="train")
    if ev:
        ax.plot(*zip(*ev), marker="o", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (response tokens)")
    if tr or ev:
        ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


SCORE_LABELS = {"ifd": "IFD (loss given the instruction / loss alone)", "ppl": "response perplexity",
                "response_tokens": "response length (tokens)", "rating": "LLM rating (1-5)"}


def plot_scores(records: list[dict], fields: list[str], marks: dict, path) -> Path:
    """One histogram per score of `select`'s rows, kept and dropped stacked; ``marks[field]``: (label, x) lines."""
    import math

    fig = _figure(4.2 * max(1, len(fields)), 3.8)
    axes = fig.subplots(1, max(1, len(fields)), squeeze=False)[0]
    for ax, f in zip(axes, fields):
        log = f == "ppl"
        vals = [((r["scores"] or {}).get(f), r["kept"]) for r in records]
        kept = [math.log10(v) if log else v for v, k in vals if v is not None and k]
        dropped = [math.log10(v) if log else v for v, k in vals if v is not None and not k]
        ax.hist([kept, dropped], bins=20, stacked=True, color=["#2e7d32", "#9e9e9e"], label=["kept", "dropped"])
        for (label, x), style in zip(marks.get(f, []), ("--", ":")):
            if x is not None:
                ax.axvline(math.log10(x) if log else x, color="#c62828", linestyle=style, label=label)
        ax.set_xlabel(SCORE_LABELS.get(f, f) + (" (log10)" if log else ""))
        ax.set_ylabel("rows")
        ax.legend(fontsize=7)
    return _save(fig, path)
