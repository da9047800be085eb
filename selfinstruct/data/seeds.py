"""Seed tasks: the packaged set and a loader for any seed file.

The canonical seed file is ``seeds/seed_tasks.jsonl`` at the top of the
repository. The package reaches it as ``selfinstruct/seeds_data`` (a link to
``../seeds``), which setuptools ships as package data, so an installed wheel
and an editable checkout both find it through :mod:`importlib.resources`.
"""
from __future__ import annotations

from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

from .records import InputError, read_examples, read_tasks

SEED_FILE = "seed_tasks.jsonl"
MIN_SEEDS = 8  # each generation prompt samples 6 seed tasks; keep some variety


def default_seeds_path():
    """The packaged seed file, as an :mod:`importlib.resources` Traversable."""
    return resources.files("selfinstruct").joinpath("seeds_data", SEED_FILE)


@contextmanager
def _real_path(path) -> Iterator[Path]:
    if path is not None:
        yield Path(path)
        return
    with resources.as_file(default_seeds_path()) as p:
        yield Path(p)


def _task_id(task: dict, index: int, path: Path) -> str:
    if "id" not in task or task["id"] is None:
        return f"seed_task_{index}"
    value = task["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise InputError(path, task.get("_line"), "field 'id' must be a non-empty string or an integer")
    return str(value)


def load_seeds(path=None, *, skip_invalid: bool = False, skipped: list | None = None,
               min_tasks: int = MIN_SEEDS, columns: dict | None = None) -> list[dict]:
    """Seed tasks from a Self-Instruct task file or an Alpaca ``.json``/``.jsonl`` file.

    ``path=None`` reads the packaged seeds. Alpaca rows are grouped by
    instruction into tasks. Every task gets a unique ``id`` (kept if present,
    else ``seed_task_{i}``) and ``is_classification`` (default False); ``_line``
    records where it starts. Errors are :class:`InputError` naming ``file:line``.
    """
    with _real_path(path) as p:
        tasks = read_tasks(p, skip_invalid=skip_invalid, skipped=skipped, columns=columns)
        seen: dict[str, int | None] = {}
        out = []
        for i, task in enumerate(tasks):
            tid = _task_id(task, i, p)
            if tid in seen:
                raise InputError(p, task.get("_line"), f"duplicate id {tid!r} (first at line {seen[tid]})")
            seen[tid] = task.get("_line")
            out.append({**task, "id": tid, "is_classification": bool(task.get("is_classification", False))})
        if len(out) < min_tasks:
            raise InputError(p, None, f"only {len(out)} seed task(s); need at least {min_tasks} "
                                      "(each generation prompt samples 6)")
    return out


def seed_rows(path=None, *, skip_invalid: bool = False, skipped: list | None = None,
              columns: dict | None = None) -> list[dict]:
    """Every instance of the seed tasks as a training row (``path``: a seed file, ``packaged`` or None
    for the packaged seeds), each with ``seed: True``. The paper's ``prepare_for_finetuning.py
    --include_seed_tasks`` adds them to the fine-tuning data the same way."""
    with _real_path(None if path in (None, "packaged") else path) as p:
        rows = read_examples(p, skip_invalid=skip_invalid, skipped=skipped, columns=columns)
    return [{"instruction": r["instruction"], "input": r["input"], "output": r["output"], "seed": True}
            for r in rows]


def seed_stats(tasks: list[dict]) -> dict:
    """Count, classification share, share with a non-empty input, mean instruction words."""
    n = len(tasks)
    cls = sum(bool(t.get("is_classification")) for t in tasks)
    with_input = sum(any(i.get("input", "").strip() for i in t["instances"]) for t in tasks)
    words = sum(len(t["instruction"].split()) for t in tasks)
    return {
        "count": n,
        "classification": cls,
        "classification_share": cls / n if n else 0.0,
        "with_input": with_input,
        "with_input_share": with_input / n if n else 0.0,
        "mean_instruction_words": words / n if n else 0.0,
    }
