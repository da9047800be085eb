"""`selfinstruct export`: training rows in the formats other tools read as they are.

- ``alpaca``: ``{instruction, input, output}``;
- ``prompt-completion``: ``{prompt, completion}`` strings, the prompt rendered by the
  template `train` uses (``formatting.format_example``); TRL trains on it with
  completion-only loss;
- ``messages``: ``{messages: [{role: user}, {role: assistant}]}`` (TRL, axolotl ``chat_template``);
- ``sharegpt``: ``{conversations: [{from: human, value}, {from: gpt, value}]}``
  (older axolotl and LLaMA-Factory configs);
- ``hf``: a folder that ``datasets.load_dataset(FOLDER)`` loads: one parquet file
  written by ``datasets`` and a ``README.md`` dataset card (``card.py``).

Every format reads back in `train --data` and gives the same (prompt, response) pairs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .sources import data_file, load_rows
from .formatting import format_example, to_messages
from .records import InputError, row_kind
from .writers import OutputError, atomic_write_text, check_out_folder, check_writable, is_stdout, write_jsonl

FORMATS = ("alpaca", "prompt-completion", "messages", "sharegpt", "hf")
SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "system": "system"}
HF_DATA = "data/train-00000-of-00001.parquet"


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InputError("--format", None, f"{fmt!r} is not an export format (choose from {', '.join(FORMATS)})")


def check_out(out, fmt: str) -> Path:
    """Refuse an existing output (file or folder) before anything is read."""
    if fmt != "hf":
        return check_writable(out)  # "-": standard output
    if is_stdout(out):
        raise InputError("--out", None, "--format hf writes a folder; '-' (stdout) is for the JSONL formats")
    out = Path(out)
    if out.exists():
        raise OutputError(f"{out}: already exists (will not overwrite; remove it or choose another path)")
    return check_out_folder(out)


def shape(row: dict) -> str:
    """'alpaca', 'messages' or 'prompt-completion': what a row read by `load_rows` holds."""
    kind = row_kind(row)
    return {"chat": "messages", "prompt_completion": "prompt-completion"}.get(kind, "alpaca")


def _refuse(path, row, fmt) -> InputError:
    return InputError(path, row.get("_line"), f"a {shape(row)} row cannot become a {fmt} row "
                                              "(export it as messages, sharegpt or prompt-completion)")


def convert(row: dict, fmt: str, *, path, template: str = "alpaca", tokenizer=None) -> dict:
    """One source row in format ``fmt`` (not 'hf': that keeps the rows' own shape)."""
    kind = shape(row)
    if fmt == "alpaca":
        if kind != "alpaca":
            raise _refuse(path, row, fmt)
        return {"instruction": row["instruction"], "input": row.get("input", ""), "output": row["output"]}
    if fmt == "prompt-completion":
        if kind == "messages" and template != "chat":
            raise InputError(path, row.get("_line"), "a chat 'messages' row: export it with --template chat")
        prompt, completion = format_example(row, template, tokenizer)
        return {"prompt": prompt, "completion": completion}
    if kind == "prompt-completion":
        raise _refuse(path, row, fmt)
    msgs = [{"role": m["role"], "content": m["content"]} for m in to_messages(row)]
    if fmt == "messages":
        return {"messages": msgs}
    if fmt == "sharegpt":
        return {"conversations": [{"from": SHAREGPT_FROM[m["role"]], "value": m["content"]} for m in msgs]}
    raise ValueError(fmt)


def hf_rows(rows: list[dict], path) -> list[dict]:
    """Rows for the hf folder: all in the source's shape, or as messages when shapes are mixed."""
    kinds = {shape(r) for r in rows}
    if len(kinds) == 1:
        (kind,) = kinds
        return [convert(r, kind, path=path) for r in rows]
    if "prompt-completion" in kinds:
        raise InputError(path, None, "mixes prompt-completion rows with others; an hf dataset needs one shape")
    return [convert(r, "messages", path=path) for r in rows]


def export(source, fmt: str, out, *, template: str = "alpaca", model: str | None = None,
           skip_invalid: bool = False, skipped: list | None = None, license: str | None = None,
           language=("en",), columns: dict | None = None) -> dict:
    """Write ``source``'s rows to ``out`` in ``fmt``; returns ``{rows, out, format}``.

    ``source`` is a file `train` reads or a `generate` folder. Nothing is overwritten;
    the hf folder appears whole (written beside ``out``, then renamed), its card naming
    ``license`` and ``language`` (ISO 639 codes).
    """
    check_format(fmt)
    if fmt == "hf":
        from .card import check_card_options

        check_card_options(license, language)
    out = check_out(out, fmt)
    path = data_file(source)
    rows = load_rows(source, template="chat", skip_invalid=skip_invalid, skipped=skipped, columns=columns)
    if fmt == "hf":
        from .card import dataset_card

        converted = hf_rows(rows, path)
        write_hf(out, converted, lambda ds, size: dataset_card(source, converted, ds, size, license=license,
                                                               language=language))
        return {"rows": len(converted), "out": str(out), "format": fmt}
    tokenizer = None
    if fmt == "prompt-completion" and template == "chat":
        from .formatting import check_template

        from ..models import load_tokenizer

        tokenizer = load_tokenizer(model)
        check_template(template, tokenizer, model=model or "embedded")
    converted = [convert(r, fmt, path=path, template=template, tokenizer=tokenizer) for r in rows]
    write_jsonl(out, converted)
    return {"rows": len(converted), "out": str(out), "format": fmt}


def write_hf(out: Path, rows: list[dict], card) -> None:
    """Parquet (by ``datasets``, so features match what ``load_dataset`` infers) + README.md, atomically.
    ``card(dataset, parquet_bytes)`` gives the README's text."""
    import datasets

    datasets.disable_progress_bars()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent))
    try:
        (tmp / "data").mkdir()
        ds = datasets.Dataset.from_list(rows)
        ds.to_parquet(str(tmp / HF_DATA))
        atomic_write_text(tmp / "README.md", card(ds, (tmp / HF_DATA).stat().st_size))
        tmp.chmod(0o755)
        if out.exists():  # appeared meanwhile: still never overwrite
            raise OutputError(f"{out}: already exists (will not overwrite; remove it or choose another path)")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
