"""report.md and a self-contained report.html for `selfinstruct eval`.

Both lead with the comparison of each model against the first (mean ROUGE-L, paired
difference with its bootstrap interval, wins / ties / losses), the shares of empty,
echoing and runaway answers, and a line for each model that collapsed (``stats.py``).

Every piece of data text goes through ``html.escape`` in the HTML, and into
fenced code blocks in the Markdown, so model output can never become markup.
"""
from __future__ import annotations

import html
import re
import statistics
from importlib.resources import files
from pathlib import Path
from string import Template

from ..data.writers import atomic_write_text

METRICS = [  # (key, label, kind)
    ("rouge_l", "ROUGE-L F1 (mean)", "float"),
    ("exact_match", "Exact match (classification rows)", "pct"),
    ("empty", "Empty answers", "pct"),
    ("echo", "Echoing answers", "pct"),
    ("runaway", "Runaway answers (hit max new tokens)", "pct"),
    ("words", "Mean length (words)", "float1"),
    ("top_answer_share", "Most common answer's share", "pct"),
    ("distinct_per_100", "Distinct answers per 100 rows", "float1"),
    ("collapse", "Collapse (one answer for most rows; n/a under 10 rows)", "bool"),
    ("seconds", "Load + generation time (s)", "float1"),
]


def fmt(value, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "bool":
        return "YES" if value else "no"
    return {"pct": f"{100 * value:.1f}%", "float": f"{value:.3f}", "float1": f"{value:.1f}"}.get(kind, str(value))


def lead_lines(summary: dict) -> list[str]:
    """The report's first lines (plain text): each comparison's headline, then the failure shares."""
    names, m = summary["models"], summary["metrics"]
    lines = [c["headline"] for c in summary.get("comparisons", [])]
    if not lines:
        lines = [f"{names[0]}: ROUGE-L {fmt(m[names[0]]['rouge_l'], 'float')} over {summary['rows']} rows"]
    shares = "; ".join(f"{n} {fmt(m[n]['empty'], 'pct')} / {fmt(m[n]['echo'], 'pct')} / {fmt(m[n]['runaway'], 'pct')}"
                       for n in names)
    return lines + [f"Empty / echoing / runaway answers: {shares}."]


def collapse_lines(summary: dict, scored: dict) -> list[tuple[str, str]]:
    """(text, an answer as the model wrote it) for each model flagged as collapsed."""
    from .metrics import normalize

    out = []
    for n in summary["models"]:
        m = summary["metrics"][n]
        if not m.get("collapse"):
            continue
        answer = next((s["answer"] for s in scored[n] if normalize(s["answer"]) == m["top_answer"]), "")
        out.append((f"COLLAPSE: {n} gives the same answer to {fmt(m['top_answer_share'], 'pct')} of rows, "
                    f"{m['distinct_per_100']:.1f} distinct answers per 100 rows. Its most common answer:",
                    answer[:200] + ("…" if len(answer) > 200 else "")))
    return out


def metric_rows(summary: dict) -> list[list[str]]:
    """[[label, value per model...]] for the summary table."""
    out = []
    for key, label, kind in METRICS:
        cells = []
        for n in summary["models"]:
            m = summary["metrics"][n]
            cell = fmt(m.get(key), kind)
            if key == "exact_match" and m.get("classification_rows"):
                cell += f" of {m['classification_rows']}"
            cells.append(cell)
        out.append([label, *cells])
    return out


def distribution_rows(summary: dict, scored: dict) -> list[list[str]]:
    """ROUGE-L quartiles per model."""
    out = []
    for n in summary["models"]:
        xs = sorted(s["rouge_l"] for s in scored[n])
        q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
        out.append([n, *(f"{v:.3f}" for v in (xs[0], q[0], q[1], q[2], xs[-1]))])
    return out


def comparison_rows(summary: dict) -> list[list[str]]:
    """One row per comparison of a model (B) with the first (A)."""
    return [[c["a"], c["b"], f"{c['mean_a']:.3f}", f"{c['mean_b']:.3f}", f"{c['diff']:+.3f}",
             f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]", str(c["wins"]), str(c["ties"]), str(c["losses"])]
            for c in summary.get("comparisons", [])]


def tie_note(summary: dict, scored: dict) -> str | None:
    """How many rows the example sections leave out because the first two models tie on them."""
    names = summary["models"]
    if len(names) < 2:
        return None
    a, b = (scored[n] for n in names[:2])
    ties = sum(x["rouge_l"] == y["rouge_l"] for x, y in zip(a, b))
    return (f"{ties} of {len(a)} rows tie ({names[1]} and {names[0]} have equal ROUGE-L); "
            "the examples below show only rows that differ.")


def judge_row(j: dict) -> list[str]:
    rate = "n/a" if j["win_rate"] is None else f"{j['win_rate']:.3f}"
    ci = "n/a" if j["win_rate"] is None else f"[{j['ci_low']:.3f}, {j['ci_high']:.3f}]"
    return [j["judge"], str(j["wins"]), str(j["losses"]), str(j["ties"]), str(j["unparsed"]), rate, ci]


JUDGE_HEAD = ["judge", "B wins", "A wins", "ties", "unparsed", "B win rate (ties = ½)", "95% Wilson CI"]
DIST_HEAD = ["model", "min", "25%", "median", "75%", "max"]
CMP_HEAD = ["A", "B", "ROUGE-L A", "ROUGE-L B", "B − A", "95% CI (bootstrap)", "B wins", "ties", "B losses"]


def header_text(summary: dict) -> str:
    sample = f", a seeded sample (seed {summary['seed']})" if summary.get("limit") else ""
    decoding = "greedy" if not summary.get("temperature") else f"sampling at T={summary['temperature']}"
    return (f"Data: {summary['data']} ({summary['rows']} rows{sample}). Template: {summary['template']}; "
            f"{decoding}, at most {summary['max_new_tokens']} new tokens.")


def examples(summary: dict, rows: list[dict], scored: dict, best: list[int], worst: list[int]):
    """[(section title, [row index...])]."""
    names = summary["models"]
    if len(names) > 1:
        return [(f"Largest ROUGE-L gain of {names[1]} over {names[0]}", best),
                (f"Largest ROUGE-L loss of {names[1]} against {names[0]}", worst)]
    return [(f"Highest ROUGE-L of {names[0]}", best), (f"Lowest ROUGE-L of {names[0]}", worst)]


def _flags(s: dict) -> list[str]:
    return [k for k in ("empty", "echo", "runaway") if s[k]]


# --------------------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def md_block(text: str) -> str:
    """A fenced block longer than any backtick run inside ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def md_code(text: str) -> str:
    """An inline code span on one line, safe for any backticks inside."""
    text = " ".join(text.split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if text else "(empty)"


def render_markdown(summary: dict, rows: list[dict], scored: dict, best: list[int], worst: list[int]) -> str:
    names = summary["models"]
    lead = lead_lines(summary)
    parts = ["# Eval report", "", *(f"**{_md_cell(x)}**  " for x in lead[:-1]), _md_cell(lead[-1]), ""]
    for text, answer in collapse_lines(summary, scored):
        parts += [f"**{text}** {md_code(answer)}", ""]
    parts += [header_text(summary), ""]
    if summary.get("comparisons"):
        parts += ["## Comparison", "", "Paired over the same rows; the interval is a percentile bootstrap "
                  f"({summary['comparisons'][0]['resamples']:,} resamples, seed {summary['comparisons'][0]['seed']}).",
                  "", md_table(CMP_HEAD, comparison_rows(summary)), ""]
    parts += ["## Metrics", "", md_table(["metric", *names], metric_rows(summary)), "",
              "## ROUGE-L distribution", "", md_table(DIST_HEAD, distribution_rows(summary, scored)), ""]
    if summary.get("judge"):
        j = summary["judge"]
        parts += ["## Judge", "", f"Pairwise, each row asked twice with positions swapped; A = {j['a']}, "
                  f"B = {j['b']}.", "", md_table(JUDGE_HEAD, [judge_row(j)]), ""]
    note = tie_note(summary, scored)
    if note:
        parts += [note, ""]
    for title, idx in examples(summary, rows, scored, best, worst):
        if not idx:
            continue
        parts += [f"## {title}", ""]
        for i in idx:
            r = rows[i]
            scores = ", ".join(f"{n} {scored[n][i]['rouge_l']:.3f}" for n in names)
            parts += [f"### Row {i} (ROUGE-L: {scores})", "", "**Instruction**", "", md_block(r["instruction"]), ""]
            if r.get("input", "").strip():
                parts += ["**Input**", "", md_block(r["input"]), ""]
            parts += ["**Reference**", "", md_block(r["output"]), ""]
            for n in names:
                flags = _flags(scored[n][i])
                parts += [f"**{n}**" + (f" ({', '.join(flags)})" if flags else ""), "",
                          md_block(scored[n][i]["answer"]), ""]
    return "\n".join(parts).rstrip() + "\n"


# --------------------------------------------------------------------------- html

e = html.escape


def html_table(head: list[str], body: list[list[str]], numeric_from: int = 1) -> str:
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td class=\"num\">{e(c)}</td>" if j >= numeric_from else f"<td>{e(c)}</td>"
                                   for j, c in enumerate(row)) + "</tr>" for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _box(label: str, text: str, flags: list[str] = ()) -> str:
    tags = "".join(f"<span class=\"flag\">{e(f)}</span>" for f in flags)
    return f"<div><div class=\"label\">{e(label)}{tags}</div><pre>{e(text)}</pre></div>"


def render_html(summary: dict, rows: list[dict], scored: dict, best: list[int], worst: list[int]) -> str:
    names = summary["models"]
    lead = lead_lines(summary)
    body = ["<h1>Eval report</h1>", *(f"<p class=\"lead\">{e(x)}</p>" for x in lead[:-1]), f"<p>{e(lead[-1])}</p>"]
    body += [f"<p class=\"collapse\">{e(text)} <code>{e(answer) or '(empty)'}</code></p>"
             for text, answer in collapse_lines(summary, scored)]
    body.append(f"<p class=\"meta\">{e(header_text(summary))}</p>")
    if summary.get("comparisons"):
        c0 = summary["comparisons"][0]
        body += ["<h2>Comparison</h2>", f"<p>Paired over the same rows; the interval is a percentile bootstrap "
                 f"({c0['resamples']:,} resamples, seed {c0['seed']}).</p>",
                 html_table(CMP_HEAD, comparison_rows(summary), 2)]
    body += ["<h2>Metrics</h2>", html_table(["metric", *names], metric_rows(summary)),
             "<h2>ROUGE-L distribution</h2>", html_table(DIST_HEAD, distribution_rows(summary, scored))]
    if summary.get("judge"):
        j = summary["judge"]
        body += ["<h2>Judge</h2>", f"<p>Pairwise, each row asked twice with positions swapped; A = {e(j['a'])}, "
                 f"B = {e(j['b'])}.</p>", html_table(JUDGE_HEAD, [judge_row(j)])]
    note = tie_note(summary, scored)
    if note:
        body.append(f"<p>{e(note)}</p>")
    for title, idx in examples(summary, rows, scored, best, worst):
        if not idx:
            continue
        body.append(f"<h2>{e(title)}</h2>")
        for i in idx:
            r = rows[i]
            scores = ", ".join(f"{n} {scored[n][i]['rouge_l']:.3f}" for n in names)
            cols = [_box("Reference", r["output"])]
            cols += [_box(n, scored[n][i]["answer"], _flags(scored[n][i])) for n in names]
            inp = _box("Input", r["input"]) if r.get("input", "").strip() else ""
            body.append(f"<div class=\"example\"><h3>Row {i} — ROUGE-L: {e(scores)}</h3>"
                        f"{_box('Instruction', r['instruction'])}{inp}<div class=\"cols\">{''.join(cols)}</div></div>")
    page = files("selfinstruct").joinpath("templates", "report.html").read_text(encoding="utf-8")
    return Template(page).substitute(title=e("Eval report: " + " vs ".join(names)), body="\n".join(body))


def write_eval_reports(out, summary: dict, rows: list[dict], scored: dict, best: list[int],
                       worst: list[int]) -> tuple[Path, Path]:
    out = Path(out)
    atomic_write_text(out / "report.md", render_markdown(summary, rows, scored, best, worst))
    atomic_write_text(out / "report.html", render_html(summary, rows, scored, best, worst))
    return out / "report.md", out / "report.html"
