"""Records: schemas, and reading JSON/JSONL with line-numbered errors (writing: ``writers.py``).

Three row shapes are read:

- Alpaca examples ``{instruction, input, output}`` (``input`` may be missing);
- Self-Instruct tasks ``{instruction, instances: [{input, output}], ...}``;
- chat rows ``{messages: [{role, content}, ...]}``.

Every problem in an input file becomes an :class:`InputError` whose message is
one line, ``path:line: what is wrong``. The CLI prints it and exits with 2.
"""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from .columns import rename_columns

ROLES = ("system", "user", "assistant")
# No instruction-tuning row is this long; refusing it early keeps a stray 50 MB line from
# taking minutes and gigabytes in tokenisers and ROUGE (docs/reliability.md).
MAX_ROW_CHARS = 1_000_000


class InputError(Exception):
    """A problem with a user's file: ``path:line: message`` on one line."""

    def __init__(self, path, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- reading


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise InputError(path, None, "no such file")
    if path.is_dir():
        raise InputError(path, None, "is a directory, expected a file")
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise InputError(path, None, f"not a valid gzip file ({e})") from None
    return data


def _decode_each(data: bytes) -> Iterator[tuple[int, str | None]]:
    """``(line, text)`` per line; ``None`` for a line that is not UTF-8."""
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError:
            yield n, None


def _too_long(path: Path, line: int, size: int) -> InputError:
    return InputError(path, line, f"row is {size:,} characters long (limit {MAX_ROW_CHARS:,})")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(raw: str, value: Any) -> bool:
    """True when a "\\udXXX" escape decoded to half a character (no UTF-8 text can hold it)."""
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


LONE_SURROGATE = "invalid text: a \\uXXXX escape holds half a surrogate pair, not a character"


def _short(err: json.JSONDecodeError) -> str:
    return f"invalid JSON: {err.msg} (column {err.colno})"


def iter_json_rows(path, *, skip_invalid: bool = False,
                   on_skip: Callable[[InputError], None] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, value)`` for each row of a ``.jsonl`` file or a ``.json`` array (``.gz`` too).

    A ``.json`` file that does not start with ``[`` is read as JSON Lines; a ``.jsonl`` file always is.
    With ``skip_invalid``, bad lines (not UTF-8, over ``MAX_ROW_CHARS``, malformed JSON) are
    passed to ``on_skip`` instead of raising (a broken JSON array cannot be skipped past).
    """
    path = Path(path)
    if path.suffix == ".parquet":  # an `export --format hf` folder's data (datasets writes it)
        yield from _iter_parquet(path)
        return
    data = _read_bytes(path)
    if not data.strip():
        raise InputError(path, 1, "file is empty")

    def skip(err: InputError) -> None:
        if not skip_invalid:
            raise err
        if on_skip:
            on_skip(err)

    jsonl = path.name.endswith((".jsonl", ".jsonl.gz"))
    is_array = not jsonl and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if not skip_invalid or is_array:  # no skipping past a bad line inside one JSON array
            raise InputError(path, data.count(b"\n", 0, e.start) + 1, "not valid UTF-8") from None
        text = None
    if is_array:
        del data
        yield from _iter_array(path, text)
        return
    if text is None:
        lines = _decode_each(data)
    else:
        lines = enumerate(text.split("\n"), 1)
        del data, text  # a 50 MB line is held once, not three times
    for n, line in lines:
        if line is None:
            skip(InputError(path, n, "not valid UTF-8"))
            continue
        if len(line) > MAX_ROW_CHARS:
            skip(_too_long(path, n, len(line)))
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            skip(InputError(path, n, _short(e)))
            continue
        if _lone_surrogate(line, value):
            skip(InputError(path, n, LONE_SURROGATE))
            continue
        yield n, value


def _iter_array(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    n = len(text)
    expect_value = True
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            raise InputError(path, _line_of(text, pos), "invalid JSON: unterminated array")
        ch = text[pos]
        if ch == "]" :
            rest = text[pos + 1:].strip()
            if rest:
                raise InputError(path, _line_of(text, pos + 1), "invalid JSON: extra data after the array")
            return
        if ch == "," and not expect_value:
            pos += 1
            expect_value = True
            continue
        if not expect_value:
            raise InputError(path, _line_of(text, pos), "invalid JSON: expected ',' or ']'")
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InputError(path, e.lineno, _short(e)) from None
        if end - pos > MAX_ROW_CHARS:
            raise _too_long(path, _line_of(text, pos), end - pos)
        if _lone_surrogate(text[pos:end], value):
            raise InputError(path, _line_of(text, pos), LONE_SURROGATE)
        yield _line_of(text, pos), value
        pos, expect_value = end, False


def _iter_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    """``(row number, row)`` for each row of a parquet file; the row number stands in for the line."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InputError(path, None, "no such file")
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        raise InputError(path, None, f"not a readable parquet file ({type(e).__name__})") from None
    yield from enumerate(table.to_pylist(), 1)


def _text_field(row: dict, key: str, *, required: bool, allow_empty: bool = True) -> str:
    if key not in row or row[key] is None:
        if required:
            raise ValueError(f"missing field '{key}'")
        return ""
    value = row[key]
    if not isinstance(value, str):
        raise ValueError(f"field '{key}' must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"field '{key}' is empty")
    return value


def _object(row: Any) -> dict:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    return row


def validate_example(row: Any) -> dict:
    """An Alpaca row with string ``instruction``, ``input`` and ``output``; extra keys kept."""
    row = _object(row)
    out = dict(row)
    out["instruction"] = _text_field(row, "instruction", required=True, allow_empty=False)
    out["input"] = _text_field(row, "input", required=False)
    out["output"] = _text_field(row, "output", required=True)
    return out


def validate_task(row: Any) -> dict:
    """A Self-Instruct task; ``instances`` is a non-empty list of ``{input, output}``."""
    row = _object(row)
    out = dict(row)
    out["instruction"] = _text_field(row, "instruction", required=True, allow_empty=False)
    instances = row.get("instances")
    if not isinstance(instances, list) or not instances:
        raise ValueError("field 'instances' must be a non-empty list")
    out["instances"] = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise ValueError(f"instances[{i}] must be an object")
        out["instances"].append({"input": _text_field(inst, "input", required=False),
                                 "output": _text_field(inst, "output", required=True)})
    cls = row.get("is_classification", False)
    if not isinstance(cls, bool):
        raise ValueError("field 'is_classification' must be true or false")
    out["is_classification"] = cls
    return out


def validate_messages(row: Any) -> dict:
    """A chat row: ``messages`` is a list of ``{role, content}`` ending with the assistant."""
    row = _object(row)
    if "messages" not in row and "conversations" in row:
        row = from_sharegpt(row)
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ValueError("field 'messages' must be a non-empty list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}] must be {{role: system|user|assistant, content: string}}")
    if msgs[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's")
    return {**row, "messages": [{"role": m["role"], "content": m["content"]} for m in msgs]}


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system"}


def from_sharegpt(row: dict) -> dict:
    """``{conversations: [{from, value}]}`` (ShareGPT) as ``{messages: [{role, content}]}``."""
    convs = row["conversations"]
    if not isinstance(convs, list) or not convs:
        raise ValueError("field 'conversations' must be a non-empty list")
    msgs = []
    for i, m in enumerate(convs):
        if not isinstance(m, dict) or m.get("from") not in SHAREGPT_ROLES or not isinstance(m.get("value"), str):
            raise ValueError(f"conversations[{i}] must be {{from: human|gpt|system, value: string}}")
        msgs.append({"role": SHAREGPT_ROLES[m["from"]], "content": m["value"]})
    return {**{k: v for k, v in row.items() if k != "conversations"}, "messages": msgs}


def validate_prompt_completion(row: Any) -> dict:
    """A ``{prompt, completion}`` row whose prompt is already rendered (TRL's prompt-completion)."""
    row = _object(row)
    return {**row, "prompt": _text_field(row, "prompt", required=True, allow_empty=False),
            "completion": _text_field(row, "completion", required=True)}


def row_kind(row: Any) -> str:
    """'task', 'chat', 'prompt_completion' or 'example', by the keys a row has."""
    if isinstance(row, dict):
        if "instances" in row:
            return "task"
        if "messages" in row or "conversations" in row:
            return "chat"
        if "prompt" in row and "completion" in row and "instruction" not in row:
            return "prompt_completion"
    return "example"


def read_validated(path, validate: Callable[[Any], dict], *, skip_invalid: bool = False,
                   skipped: list | None = None, columns: dict | None = None) -> list[tuple[int, dict]]:
    """Read rows (renaming ``columns``, see :func:`parse_columns`) and validate each; errors name ``path:line``.

    With ``skip_invalid`` bad rows are appended to ``skipped`` (as InputErrors)
    instead of raising. Raises if no valid row is left.
    """
    skipped = skipped if skipped is not None else []
    rows = []
    for line, raw in iter_json_rows(path, skip_invalid=skip_invalid, on_skip=skipped.append):
        try:
            rows.append((line, validate(rename_columns(raw, columns))))
        except ValueError as e:
            hint = " (name yours with --columns instruction=NAME)" if str(e) == "missing field 'instruction'" else ""
            err = InputError(path, line, str(e) + hint)
            if not skip_invalid:
                raise err from None
            skipped.append(err)
    if not rows:
        raise InputError(path, None, "no valid rows")
    return rows


def _any_row(raw: Any) -> dict:
    kind = row_kind(raw)
    return {"task": validate_task, "chat": validate_messages, "example": validate_example,
            "prompt_completion": validate_prompt_completion}[kind](raw)


def flatten_task(task: dict) -> list[dict]:
    """One Alpaca row per instance; the task's other fields (not ``instances``) are kept."""
    meta = {k: v for k, v in task.items() if k not in ("instances", "input", "output")}
    return [{**meta, "input": i["input"], "output": i["output"]} for i in task["instances"]]


def chat_example(row: dict) -> dict:
    """A validated single-turn chat row as an Alpaca row: the user turn is the instruction (input
    empty), the assistant's answer the output; ``messages`` is kept for chat templates."""
    turns = [m for m in row["messages"] if m["role"] != "system"]
    if [m["role"] for m in turns] != ["user", "assistant"]:
        raise ValueError("a chat row here must be one user turn and the assistant's answer "
                         f"(optionally after system messages); this one has {len(turns)} turns")
    if not turns[0]["content"].strip():
        raise ValueError("the user turn is empty")
    return {**row, "instruction": turns[0]["content"], "input": "", "output": turns[1]["content"]}


def read_examples(path, *, skip_invalid: bool = False, skipped: list | None = None, chat: bool = False,
                  references: bool = False, columns: dict | None = None) -> list[dict]:
    """Alpaca rows from Alpaca or Self-Instruct files; tasks flatten to one row per instance.

    ``chat``: single-turn chat rows are read too (:func:`chat_example`). ``references``: every
    output must be non-empty (an eval scores answers against it). Each row gets ``_line`` (its
    line in the file) for later messages; writers drop it.
    """
    def validate(raw):
        kind = row_kind(raw)
        if kind == "chat":
            if not chat:
                raise ValueError("a chat 'messages' row, expected {instruction, input, output}")
            row = chat_example(validate_messages(raw))
        else:
            row = validate_task(raw) if kind == "task" else validate_example(raw)
        outputs = [i["output"] for i in row["instances"]] if kind == "task" else [row["output"]]
        if references and not all(o.strip() for o in outputs):
            raise ValueError("empty reference output (nothing to score answers against)")
        return row

    out = []
    for line, row in read_validated(path, validate, skip_invalid=skip_invalid, skipped=skipped, columns=columns):
        for ex in (flatten_task(row) if "instances" in row else [row]):
            out.append({**ex, "_line": line})
    return out


def read_tasks(path, *, skip_invalid: bool = False, skipped: list | None = None,
               columns: dict | None = None) -> list[dict]:
    """Self-Instruct tasks; Alpaca rows are grouped by instruction into tasks."""
    tasks: dict[str, dict] = {}
    for line, row in read_validated(path, lambda r: validate_task(r) if row_kind(r) == "task"
                                    else validate_example(r), skip_invalid=skip_invalid, skipped=skipped,
                                    columns=columns):
        if "instances" in row:
            key = row["instruction"]
            if key in tasks:
                tasks[key]["instances"].extend(row["instances"])
            else:
                tasks[key] = {**row, "_line": line}
        else:
            task = tasks.setdefault(row["instruction"], {
                "instruction": row["instruction"], "instances": [], "is_classification": False, "_line": line})
            task["instances"].append({"input": row["input"], "output": row["output"]})
    return list(tasks.values())


def read_any(path, *, skip_invalid: bool = False, skipped: list | None = None,
             columns: dict | None = None) -> list[tuple[int, dict]]:
    """Rows of any of the three shapes, validated, as ``(line, row)``."""
    return read_validated(path, _any_row, skip_invalid=skip_invalid, skipped=skipped, columns=columns)
