"""Pairwise LLM judge: is model B's answer better than model A's?

Each row is judged twice, A shown first and then B shown first, so position bias
cancels out. The two verdicts (mapped back to models) give the row B 1, 0.5
(tie) or 0 points each; the row is a win for B when its mean is above 0.5, a
loss below, a tie at 0.5. Unparseable verdicts are dropped; a row with none
left is "unparsed" and not counted. The win rate counts ties as half a win,
``(wins + ties/2) / n``, with a 95% Wilson score interval on those n rows.
"""
from __future__ import annotations

import math
import re

from ..generation.prompts import fill, template

_VERDICT = re.compile(r"verdict\s*[:=\-]?\s*\**\s*\"?\(?(1|2|tie|a|b)\b", re.I)
_BARE = re.compile(r"^\W*(1|2|tie|a|b)\W*$", re.I)
_BETTER = re.compile(r"response\s*(1|2)\s+(?:is|was)\s+(?:better|preferred|superior)", re.I)
_TIE_WORDS = re.compile(r"\b(tie|equally good|equally bad|both equally)\b", re.I)


def parse_verdict(text: str) -> str | None:
    """'1', '2', 'tie' or None. Reads "Verdict: X" (the last one), a bare first line,
    then "Response N is better", then tie words; anything else is None."""
    hits = _VERDICT.findall(text or "")
    if hits:
        v = hits[-1].lower()
        return {"a": "1", "b": "2"}.get(v, v)
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    if lines:
        m = _BARE.match(lines[0])
        if m:
            v = m.group(1).lower()
            return {"a": "1", "b": "2"}.get(v, v)
    better = set(_BETTER.findall(text or ""))
    if len(better) == 1:
        return better.pop()
    if _TIE_WORDS.search(text or "") and not better:
        return "tie"
    return None


def row_outcome(first_a: str | None, first_b: str | None) -> str | None:
    """'win' / 'loss' / 'tie' for B from the A-first and B-first verdicts (None: both unparsed)."""
    points = []
    if first_a is not None:
        points.append({"2": 1.0, "tie": 0.5, "1": 0.0}[first_a])
    if first_b is not None:
        points.append({"1": 1.0, "tie": 0.5, "2": 0.0}[first_b])
    if not points:
        return None
    mean = sum(points) / len(points)
    return "win" if mean > 0.5 else "loss" if mean < 0.5 else "tie"


def win_rate(wins: int, losses: int, ties: int, z: float = 1.959963984540054) -> dict:
    """Win rate with ties as half a win, and its Wilson score interval (95% by default)."""
    n = wins + losses + ties
    if n == 0:
        return {"n": 0, "wins": 0, "losses": 0, "ties": 0, "win_rate": None, "ci_low": None, "ci_high": None}
    p = (wins + 0.5 * ties) / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"n": n, "wins": wins, "losses": losses, "ties": ties, "win_rate": p,
            "ci_low": max(0.0, centre - half), "ci_high": min(1.0, centre + half)}


def judge_prompt(row: dict, first: str, second: str) -> str:
    return fill(template("judge_pairwise"), instruction=row["instruction"],
                input=row.get("input", "").strip() or "(none)", reference=row.get("output", ""),
                response_1=first.strip() or "(empty)", response_2=second.strip() or "(empty)")


def judge_pairs(teacher, rows: list[dict], answers_a: list[str], answers_b: list[str],
                *, max_tokens: int = 64) -> list[dict]:
    """Ask ``teacher`` twice per row (A first, then B first); one record per row."""
    texts = [judge_prompt(r, a, b) for r, a, b in zip(rows, answers_a, answers_b)]
    texts += [judge_prompt(r, b, a) for r, a, b in zip(rows, answers_a, answers_b)]
    prompts = [[{"role": "user", "content": t}] for t in texts] if teacher.is_chat else texts
    done = teacher.complete(prompts, max_tokens=max_tokens, temperature=0.0, top_p=1.0, progress="judge")
    n = len(rows)
    out = []
    for i in range(n):
        ab, ba = done[i], done[n + i]
        va, vb = parse_verdict(ab.text), parse_verdict(ba.text)
        out.append({"row": i, "a_first": ab.text, "b_first": ba.text, "verdict_a_first": va,
                    "verdict_b_first": vb, "outcome": row_outcome(va, vb),
                    "error": ab.error or ba.error})
    return out


def summarize_judgements(records: list[dict]) -> dict:
    counts = {k: sum(r["outcome"] == k for r in records) for k in ("win", "loss", "tie")}
    return {**win_rate(counts["win"], counts["loss"], counts["tie"]),
            "unparsed": sum(r["outcome"] is None for r in records)}


def run_judge(spec: str, rows: list[dict], name_a: str, name_b: str, answers_a: list[str],
              answers_b: list[str], *, teacher=None, log=print) -> tuple[dict, list[dict]]:
    """Judge with ``teacher`` (built from ``spec`` when None, and then closed here).

    Returns the summary for metrics.json and one record per row for judge.jsonl.
    """
    from ..teachers import TeacherError, make_teacher
    from ..models import ModelError

    own = teacher is None
    try:
        if own:
            teacher = make_teacher(spec)
        records = judge_pairs(teacher, rows, answers_a, answers_b)
    except TeacherError as e:
        raise ModelError(f"--judge {spec}: {e}") from None
    finally:
        if own and teacher is not None:
            teacher.close()
    s = {"judge": spec, "a": name_a, "b": name_b, **summarize_judgements(records)}
    if s["win_rate"] is not None:
        log(f"  judge: {name_b} vs {name_a}: win rate {s['win_rate']:.3f} "
            f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}] over {s['n']} rows ({s['unparsed']} unparsed)")
    return s, records
