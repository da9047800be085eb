"""report.md and a self-contained report.html for `selfinstruct eval`.

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

from .writers import atomic_write_text

METRICS = [  # (key, label, kind)
    ("rouge_l", "ROUGE-L F1 (mean)", "float"),
    ("exact_match", "Exact match (classification rows)", "pct"),
    ("empty", "Empty answers", "pct"),
    ("echo", "Echoing answers", "pct"),
    ("runaway", "Runaway answers (hit max new tokens)", "pct"),
    ("words", "Mean length (words)", "float1"),
    ("seconds", "Load + generation time (s)", "float1"),
]


def fmt(value, kind: str) -> str:
    if value is None:
        return "n/a"
    return {"pct": f"{100 * value:.1f}%", "float": f"{value:.3f}", "float1": f"{value:.1f}"}.get(kind, str(value))


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


def comparison_row(summary: dict, scored: dict) -> list[str] | None:
    if len(summary["models"]) < 2:
        return None
    a, b = (scored[n] for n in summary["models"][:2])
    ahead = sum(y["rouge_l"] > x["rouge_l"] for x, y in zip(a, b))
    behind = sum(y["rouge_l"] < x["rouge_l"] for x, y in zip(a, b))
    return [str(ahead), str(behind), str(len(a) - ahead - behind)]


def judge_row(j: dict) -> list[str]:
    rate = "n/a" if j["win_rate"] is None else f"{j['win_rate']:.3f}"
    ci = "n/a" if j["win_rate"] is None else f"[{j['ci_low']:.3f}, {j['ci_high']:.3f}]"
    return [j["judge"], str(j["wins"]), str(j["losses"]), str(j["ties"]), str(j["unparsed"]), rate, ci]


JUDGE_HEAD = ["judge", "B wins", "A wins", "ties", "unparsed", "B win rate (ties = ½)", "95% Wilson CI"]
DIST_HEAD = ["model", "min", "25%", "median", "75%", "max"]
CMP_HEAD = ["B ahead", "A ahead", "equal"]


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


def render_markdown(summary: dict, rows: list[dict], scored: dict, best: list[int], worst: list[int]) -> str:
    names = summary["models"]
    parts = ["# Eval report", "", header_text(summary), "", "## Metrics", "",
             md_table(["metric", *names], metric_rows(summary)), "",
             "## ROUGE-L distribution", "", md_table(DIST_HEAD, distribution_rows(summary, scored)), ""]
    cmp = comparison_row(summary, scored)
    if cmp:
        parts += [f"Rows where B = {names[1]} scores above / below / equal to A = {names[0]}:", "",
                  md_table(CMP_HEAD, [cmp]), ""]
    if summary.get("judge"):
        j = summary["judge"]
        parts += ["## Judge", "", f"Pairwise, each row asked twice with positions swapped; A = {j['a']}, "
                  f"B = {j['b']}.", "", md_table(JUDGE_HEAD, [judge_row(j)]), ""]
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
    body = ["<h1>Eval report</h1>", f"<p class=\"meta\">{e(header_text(summary))}</p>",
            "<h2>Metrics</h2>", html_table(["metric", *names], metric_rows(summary)),
            "<h2>ROUGE-L distribution</h2>", html_table(DIST_HEAD, distribution_rows(summary, scored))]
    cmp = comparison_row(summary, scored)
    if cmp:
        body += [f"<p>Rows where B = {e(names[1])} scores above / below / equal to A = {e(names[0])}:</p>",
                 html_table(CMP_HEAD, [cmp], 0)]
    if summary.get("judge"):
        j = summary["judge"]
        body += ["<h2>Judge</h2>", f"<p>Pairwise, each row asked twice with positions swapped; A = {e(j['a'])}, "
                 f"B = {e(j['b'])}.</p>", html_table(JUDGE_HEAD, [judge_row(j)])]
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
