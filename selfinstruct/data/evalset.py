"""The packaged held-out eval set: 162 tasks written for this project.

Self-Instruct tasks (``{id, name, instruction, instances, is_classification}``) with one
reference answer each, covering the same kinds of task as the seeds. Every instruction
scores ROUGE-L <= 0.5 against every packaged seed (tests/test_evalset.py). ``eval`` reads it
when ``--data`` is omitted or ``packaged``; ``generate`` decontaminates against it.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

EVAL_FILE = "eval_tasks.jsonl"
PACKAGED = "packaged"  # the --data value that names this set


def packaged_eval_path() -> Path:
    """Where the packaged eval set lies (a real file in a wheel or an editable checkout)."""
    return Path(str(resources.files("selfinstruct").joinpath("eval_data", EVAL_FILE)))


def resolve_eval_data(data) -> Path:
    """``None`` or ``"packaged"``: the packaged set; anything else: that path."""
    return packaged_eval_path() if data in (None, PACKAGED) else Path(data)
