"""Where rows come from: a data file, a `generate` folder, or an `export --format hf` folder.

Every command that reads data goes through :func:`data_file`, so they all accept the same sources.
"""
from __future__ import annotations

from pathlib import Path

from .records import InputError, flatten_task, read_any, row_kind


def data_file(path) -> Path:
    """A file, or a `generate` output folder (its data.jsonl)."""
    path = Path(path)
    if path.is_dir() and not (path / "data.jsonl").exists() and list(path.glob("data/*.parquet")):
        return hf_data_file(path)
    if path.is_dir():
        if not (path / "data.jsonl").exists():
            raise InputError(path, None, "folder has no data.jsonl (expected a `selfinstruct generate` output)")
        return path / "data.jsonl"
    return path


def hf_data_file(path: Path) -> Path:
    """The one parquet file of an `export --format hf` folder."""
    files = sorted(path.glob("data/*.parquet"))
    if len(files) > 1:
        raise InputError(path, None, f"holds {len(files)} parquet files; pass one of them")
    return files[0]


def load_rows(path, template: str = "alpaca", *, skip_invalid: bool = False,
              skipped: list | None = None, columns: dict | None = None) -> list[dict]:
    """Alpaca rows (tasks flattened) and chat rows, each with ``_line``; chat rows need --template chat."""
    path = data_file(path)
    rows = []
    for line, row in read_any(path, skip_invalid=skip_invalid, skipped=skipped, columns=columns):
        kind = row_kind(row)
        if kind == "chat" and template != "chat":
            err = InputError(path, line, "a chat 'messages' row: train it with --template chat")
            if not skip_invalid:
                raise err
            if skipped is not None:
                skipped.append(err)
            continue
        rows.extend({**r, "_line": line} for r in (flatten_task(row) if kind == "task" else [row]))
    if not rows:
        raise InputError(path, None, "no usable rows")
    return rows
