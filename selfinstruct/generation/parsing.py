"""Turn teacher text into candidates. One parser for base and chat teachers; it never raises.

Each parser returns a :class:`Parsed`: the items it found and the pieces it
threw away, each with a reason (``"truncated"``, ``"unparseable"``, ...). When a
completion stopped at the token limit (``finish_reason == "length"``) the last
item is likely cut short and is dropped, as the paper does.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

MAX_ITEM_CHARS = 2000        # an "instruction" longer than this is runaway text
MAX_FIELD_CHARS = 8000       # an instance input or output longer than this is runaway text

# "1.", "1)", "1:", "(1)", "#1", "Task 1:", "Instruction 2.", "**3.**", "- ", "* ", "• "
_NUMBERED = re.compile(
    r"\s*(?:\*\*|__)?\s*(?:(?:task|instruction|question)\s*#?\s*(\d{1,3})\s*[.:)\-]"
    r"|\(?#?(\d{1,3})\s*(?:[.):\]]|\s-)(?!\d))\s*(?:\*\*|__)?\s*", re.I)
_BULLET = re.compile(r"\s*[-*•]\s+")
_INLINE = re.compile(r"(?:^|(?<=\s))(\d{1,9})\s?[.)]\s")  # a number marker inside a line
_FENCE = re.compile(r"^\s*```")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]{0,15}(?:\s[^<>]{0,200})?/?>")
_SPECIAL = re.compile(r"<\|[^|<>]{1,40}\|>|<(?:start|end)_of_turn>|</?s>|\[/?INST\]|<eos>|<bos>")
_NOINPUT = {"", "<noinput>", "<no input>", "noinput", "<none>"}


@dataclass
class Parsed:
    items: list = field(default_factory=list)
    rejected: list = field(default_factory=list)  # (text, reason)

    def reject(self, text: str, reason: str) -> None:
        self.rejected.append((_clip(text), reason))


def _clip(text: str, n: int = 500) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    return text if len(text) <= n else text[:n] + "…"


def clean_text(text) -> str:
    """Normalise newlines, drop chat special tokens, HTML-ish tags and code-fence lines."""
    if not isinstance(text, str):
        return ""
    text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate from a JSON reply -> "?"
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = _SPECIAL.sub("\n", text)
    text = _TAG.sub("", text)
    return "\n".join(line for line in text.split("\n") if not _FENCE.match(line))


def _tidy(item: str) -> str:
    item = re.sub(r"\s+", " ", item).strip().strip("*_`").strip()
    if len(item) > 1 and item[0] in "\"“'" and item[-1] in "\"”'":
        item = item[1:-1].strip()
    return item[:1].upper() + item[1:]


def _split_inline(number: int | None, body: str) -> list[tuple[int | None, str]]:
    """'9. A 10. B 11. C' on one line -> three items, when the numbers run on."""
    if number is None:
        return [(number, body)]
    out, start = [], 0
    for m in _INLINE.finditer(body):  # one pass, one pattern: linear in the line's length
        if m.group(1) == str(number + 1):
            out.append((number, body[start:m.start()]))
            number, start = number + 1, m.end()
    out.append((number, body[start:]))
    return out


def _list_items(text: str) -> tuple[list[str], list[tuple[int | None, str]]]:
    """Lines outside any item, and ``(number, raw item)`` per marker; a blank line closes an item."""
    loose, items, closed = [], [], False
    for line in text.split("\n"):
        m = _NUMBERED.match(line)
        b = None if m else _BULLET.match(line)
        if m:  # a bare "12." starts an item whose text may follow on the next line
            items.extend(_split_inline(int(m.group(1) or m.group(2)), line[m.end():]))
            closed = False
        elif b and line[b.end():].strip():
            items.append((None, line[b.end():]))
            closed = False
        elif not line.strip():
            closed = bool(items)
        elif items and not closed:
            n, prev = items[-1]
            items[-1] = (n, prev + " " + line)
        else:
            loose.append(line)
    return loose, [(n, body) for n, body in items if body.strip()]


_JSON_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"(\s*:)?')
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_LIST_KEYS = ("tasks", "instructions", "examples", "instances")


def _json_reply(text: str):
    """``(value, whole)`` for a reply that is (or holds, after chatter) a JSON object or array:
    ``whole`` False when it does not parse to its end (cut at the token limit, or broken); None
    for a reply that is not JSON at all."""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0 or text[:start].strip() and not text[:start].rstrip().endswith(":"):
        return None  # plain text that merely contains a brace somewhere
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
        return value, True
    except ValueError:
        return text[start:], False


def _json_list(value):
    """The list a JSON reply carries: the value itself, or under "tasks"/"examples"/...; None for any
    other shape (``{"response": "..."}`` included)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in _LIST_KEYS:
            if isinstance(value.get(key), list):
                return value[key]
    return None


def _salvage_strings(text: str) -> list[str]:
    """Complete JSON string values (not keys) of a cut or broken reply, in order."""
    out = []
    for m in _JSON_STRING.finditer(text):
        if m.group(2) is None:
            try:
                out.append(json.loads(f'"{m.group(1)}"'))
            except ValueError:
                continue
    return [s for s in out if s.strip().lower() not in _LIST_KEYS]


def _salvage_objects(text: str) -> list[dict]:
    """Complete flat ``{...}`` objects of a cut or broken JSON reply, in order."""
    out = []
    for m in _JSON_OBJECT.finditer(text):
        try:
            value = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def _unnumber(item: str) -> str:
    """A JSON item without a list marker the teacher put inside it ("3. Write a poem")."""
    m = _NUMBERED.match(item)
    return item[m.end():] if m and (m.group(1) or m.group(2)) else item


def _json_instructions(out: Parsed, reply, finish_reason: str) -> list[str]:
    value, whole = reply
    if whole:
        items = _json_list(value)
        if items is None or not all(isinstance(x, (str, dict)) for x in items):
            out.reject(json.dumps(value)[:500], "unexpected_json")
            return []
        texts = [x if isinstance(x, str) else next((str(v) for k, v in x.items()
                                                      if k.lower() in ("instruction", "task")), "") for x in items]
        if not any(t.strip() for t in texts):
            out.reject(json.dumps(value)[:500], "unexpected_json")
        return texts
    texts = _salvage_strings(value)
    if not texts:
        out.reject(value, "truncated" if finish_reason == "length" else "unparseable")
    return texts


def parse_instructions(text, *, finish_reason: str = "stop", prefix: str = "") -> Parsed:
    """Instructions from a numbered (or bulleted) list.

    ``prefix`` is what the prompt already wrote (``"9."`` for a base prompt), put back before parsing.
    """
    out = Parsed()
    text = clean_text(text)
    if finish_reason == "error" or not text.strip():
        out.reject(text, "teacher_error" if finish_reason == "error" else "empty_response")
        return out
    reply = None if prefix else _json_reply(text)  # a chat teacher asked for JSON
    if reply is not None:
        items = [(None, raw) for raw in _json_instructions(out, reply, finish_reason)]
    else:
        loose, items = _list_items(clean_text(prefix) + text)
        garbage = [line for line in loose if not line.rstrip().endswith(":")]  # "Here are 7 tasks:" is fine
        if garbage:
            out.reject("\n".join(garbage), "unparseable")
        if finish_reason == "length" and items:
            out.reject(items.pop()[1], "truncated")
    seen = set()
    for _, raw in items:
        item = _tidy(_unnumber(raw) if reply is not None else raw)
        if not item:
            continue
        if len(item) > MAX_ITEM_CHARS:
            out.reject(item, "too_long")
        elif item.lower() in seen:
            out.reject(item, "repeated_in_response")
        else:
            seen.add(item.lower())
            out.items.append(item)
    return out


def parse_yes_no(text) -> bool:
    """True for an answer starting with yes (or "true"); False for anything else, garbage included."""
    words = re.findall(r"[a-z]+", clean_text(text).lower()[:200])
    for w in words:
        if w in ("yes", "true"):
            return True
        if w in ("no", "false"):
            return False
        if w not in ("classification", "answer", "is", "it", "a", "the", "task"):
            return False
    return False


_INSTANCE_KEY = re.compile(r"^\s*[*_#]*\s*(?:(example\s*#?\d+)[*_\s]*:?|(input|output|class\s*label|label|task)[*_\s]*:)"
                           r"[*_]*\s*", re.I)


def _fields(text: str) -> list[tuple[str, str]]:
    """``(key, value)`` for lines starting with Example N / Input: / Output: / Class label: / Task:."""
    pairs: list[list[str]] = []
    for line in text.split("\n"):
        m = _INSTANCE_KEY.match(line)
        if m:
            key = "example" if m.group(1) else m.group(2).lower().replace(" ", "")
            pairs.append(["label" if key == "classlabel" else key, line[m.end():]])
        elif pairs:
            pairs[-1][1] += "\n" + line
    return [(k, v.strip()) for k, v in pairs]


def _value(text: str) -> str:
    text = text.strip()
    return "" if text.lower() in _NOINPUT else text


def parse_instances(text, *, classification: bool, finish_reason: str = "stop", prefix: str = "") -> Parsed:
    """Instances ``{input, output}`` from "Input: ... Output: ..." (or "Class label: ... Input: ...") text."""
    out = Parsed()
    text = clean_text(text)
    if finish_reason == "error" or not text.strip():
        out.reject(text, "teacher_error" if finish_reason == "error" else "empty_response")
        return out
    first, second = ("label", "input") if classification else ("input", "output")
    reply = None if prefix else _json_reply(text)  # a chat teacher asked for JSON
    if reply is not None:
        return _json_instances(out, reply, classification, finish_reason)
    blocks: list[dict] = []
    fresh = True  # after "Example N" an Output with no Input starts a new instance
    for key, value in _fields(clean_text(prefix) + text):
        if key == "task":
            break  # the teacher went on to invent another task
        if key == "example":
            fresh = True
        elif key == first:
            blocks.append({first: value})
            fresh = False
        elif key == second:
            if blocks and second not in blocks[-1] and not fresh:
                blocks[-1][second] = value
            elif not classification:
                blocks.append({"input": "", "output": value})
            fresh = False
    if finish_reason == "length" and blocks:
        out.reject(str(blocks.pop()), "truncated")
    for b in blocks:
        if second not in b:
            out.reject(str(b), "incomplete")
            continue
        inst = {"input": _value(b["input"]), "output": b["label" if classification else "output"].strip()}
        if len(inst["input"]) > MAX_FIELD_CHARS or len(inst["output"]) > MAX_FIELD_CHARS:
            out.reject(str(b), "too_long")
            continue
        out.items.append(inst)
    if not out.items and not out.rejected:
        out.reject(text, "unparseable")
    return out


_LABEL_KEYS = ("label", "class_label", "class label", "class", "output")
_OUTPUT_KEYS = ("output", "answer", "response")


def _field(d: dict, keys) -> str | None:
    low = {str(k).lower(): v for k, v in d.items()}
    for k in keys:
        if k in low and isinstance(low[k], (str, int, float, bool)) and not isinstance(low[k], bool):
            return str(low[k])
    return None


def _json_instances(out: Parsed, reply, classification: bool, finish_reason: str) -> Parsed:
    """Instances from {"examples": [{"input": ..., "output": ...}]} (or "label" first for classification)."""
    value, whole = reply
    items = _json_list(value) if whole else _salvage_objects(value)
    if items is None or (whole and not all(isinstance(x, dict) for x in items)):
        out.reject(json.dumps(value)[:500], "unexpected_json")
        return out
    for d in items:
        if not isinstance(d, dict):
            continue
        inp = _field(d, ("input",))
        answer = _field(d, _LABEL_KEYS if classification else _OUTPUT_KEYS)
        if answer is None or (inp is None and classification):
            out.reject(json.dumps(d)[:500], "incomplete")
            continue
        inst = {"input": _value(clean_text(inp or "")), "output": clean_text(answer).strip()}
        if len(inst["input"]) > MAX_FIELD_CHARS or len(inst["output"]) > MAX_FIELD_CHARS:
            out.reject(json.dumps(d)[:500], "too_long")
            continue
        out.items.append(inst)
    if not out.items and not out.rejected:
        out.reject(value if isinstance(value, str) else json.dumps(value)[:500],
                   "truncated" if finish_reason == "length" else "unexpected_json")
    return out


_ALPACA_KEY = re.compile(r"^\s*(?:#{0,3}\s*)?(?:(\d{1,3})\s*[.)]\s*)?(instruction|input|output)\s*:\s*", re.I)


def parse_alpaca(text, *, finish_reason: str = "stop", prefix: str = "") -> Parsed:
    """Tasks ``{instruction, input, output}`` from Alpaca-style numbered blocks separated by ``###``."""
    out = Parsed()
    text = clean_text(text)
    if finish_reason == "error" or not text.strip():
        out.reject(text, "teacher_error" if finish_reason == "error" else "empty_response")
        return out
    blocks: list[dict] = []
    key = None
    for line in (clean_text(prefix) + text).split("\n"):
        if re.fullmatch(r"\s*#{3,}\s*", line):
            key = None
            continue
        m = _ALPACA_KEY.match(line)
        if m:
            key = m.group(2).lower()
            if key == "instruction" or not blocks or key in blocks[-1]:
                blocks.append({})
            blocks[-1][key] = line[m.end():]
        elif key and blocks:
            blocks[-1][key] += "\n" + line
        elif line.strip():
            out.reject(line, "unparseable")
    if finish_reason == "length" and blocks:
        out.reject(blocks.pop().get("instruction", ""), "truncated")
    for b in blocks:
        instruction = _tidy(b.get("instruction", ""))
        if not instruction or "output" not in b:
            out.reject(instruction or str(b), "incomplete")
            continue
        if len(instruction) > MAX_ITEM_CHARS or len(b["output"]) > MAX_FIELD_CHARS:
            out.reject(instruction, "too_long")
            continue
        out.items.append({"instruction": instruction, "input": _value(b.get("input", "")),
                          "output": b["output"].strip()})
    return out
