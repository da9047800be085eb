"""Column mapping: read rows whose fields have other names (``--columns instruction=question,output=answer``).

Every reader in ``records.py`` renames through :func:`rename_columns`, so every command that reads data
takes the same ``--columns``.
"""
from __future__ import annotations

from typing import Any

COLUMNS = ("instruction", "input", "output", "messages", "conversations", "prompt", "completion")
# axolotl's custom-format keys (field_instruction: question, ...) name the same columns
COLUMN_ALIASES = {"field_instruction": "instruction", "field_input": "input", "field_output": "output",
                  "field_messages": "messages"}


def parse_columns(spec: str | None) -> dict[str, str]:
    """``"instruction=question,output=answer"`` as ``{"question": "instruction", "answer": "output"}``
    (the file's column -> ours). Ours are :data:`COLUMNS` (TRL's prompt/completion/messages among them)
    or axolotl's ``field_*`` names. Raises ValueError naming the bad part."""
    mapping: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        ours, sep, theirs = (x.strip() for x in part.partition("="))
        ours = COLUMN_ALIASES.get(ours, ours)
        if not sep or not theirs or ours not in COLUMNS:
            raise ValueError(f"'{part.strip()}': expected OURS=THEIRS with OURS one of {', '.join(COLUMNS)}")
        if ours in mapping.values():
            raise ValueError(f"'{ours}' is mapped twice")
        mapping[theirs] = ours
    return mapping


def rename_columns(row: Any, columns: dict[str, str] | None) -> Any:
    """``row`` with each mapped column renamed to ours; a row that already has ours keeps it."""
    if not columns or not isinstance(row, dict):
        return row
    out = {k: v for k, v in row.items() if not (k in columns and columns[k] not in row)}
    out.update({columns[k]: v for k, v in row.items() if k in columns and columns[k] not in row})
    return out
