"""An LLM's rating of each row on a 1-5 scale, as AlpaGasus did (Chen et al. 2023, "AlpaGasus: Training a
Better Alpaca with Fewer Data", arXiv:2307.08701: ChatGPT rated Alpaca's 52K rows for accuracy and the 9K
rated 4.5 or more trained a better model than all 52K).

The prompt is ``templates/rate.txt``; :func:`format_input` fills it for one row and :func:`parse_output`
reads the rating back, so both are testable without a model. :func:`rate_rows` sends every row through a
teacher (``teachers.make_teacher``, any ``openai:MODEL``) at temperature 0.
"""
from __future__ import annotations

import re
from importlib.resources import files

from .formatting import to_messages

_SCORE = re.compile(r"(?:score|rating)\s*(?:[:=]|is)?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*5|out of 5)?", re.IGNORECASE)
_BARE = re.compile(r"^\W*(\d+(?:\.\d+)?)\s*(?:/\s*5|out of 5)?\W*$", re.IGNORECASE)


def _template() -> str:
    return files("selfinstruct").joinpath("templates", "rate.txt").read_text(encoding="utf-8")


def row_parts(row: dict) -> tuple[str, str, str]:
    """(instruction, input, response) of an Alpaca, prompt-completion or chat row."""
    if "instruction" in row:
        return row["instruction"], row.get("input", ""), row.get("output", "")
    if "prompt" in row and "completion" in row:
        return row["prompt"], "", row["completion"]
    msgs = to_messages(row)
    answer = msgs[-1]["content"] if msgs and msgs[-1].get("role") == "assistant" else ""
    asked = "\n\n".join(m["content"] for m in msgs[:-1] if m.get("role") == "user") if answer else ""
    return asked, "", answer


def format_input(row: dict) -> str:
    """The rating prompt for one row."""
    instruction, inp, response = row_parts(row)
    values = {"instruction": instruction.strip(), "input": inp.strip() or "(none)",
              "response": response.strip() or "(empty)"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), _template())


def parse_output(text: str | None) -> float | None:
    """The rating in a reply (1 to 5), or None: "Score: N" (the first one), else a bare number on the first
    line. A number outside 1-5 is None."""
    text = text or ""
    m = _SCORE.search(text)
    if m is None:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        m = _BARE.match(lines[0]) if lines else None
    if m is None:
        return None
    value = float(m.group(1))
    return value if 1 <= value <= 5 else None


def rate_rows(teacher, rows: list[dict], *, max_tokens: int = 48, progress: bool = False) -> list[dict]:
    """``{rating, rating_reply}`` per row, in order (rating None when the reply has none or failed)."""
    texts = [format_input(r) for r in rows]
    prompts = [[{"role": "user", "content": t}] for t in texts] if teacher.is_chat else texts
    done = teacher.complete(prompts, max_tokens=max_tokens, temperature=0.0, top_p=1.0,
                            progress="rating" if progress else None)
    return [{"rating": parse_output(c.text) if c.finish_reason != "error" else None,
             "rating_reply": c.text if c.finish_reason != "error" else f"error: {c.error}"} for c in done]
