"""Helpers shared by the bench scripts."""
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the ``## name`` section of a shared markdown file, leaving the others."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    head = f"## {name}\n"
    start = text.find(head)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + head + body
    else:
        end = text.find("\n## ", start + len(head))
        text = text[:start] + head + body + (text[end + 1:] if end >= 0 else "")
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
