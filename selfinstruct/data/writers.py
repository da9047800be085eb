"""Safe writing: output checks, JSONL journals, atomic whole-file writes.

Writers never truncate an existing file by accident: appends repair a torn last
line first, and whole-file writes go to a temporary file that is then renamed.
"""
from __future__ import annotations

import gzip
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Iterable


STDOUT = "-"  # an --out of "-" writes JSONL rows to standard output


class OutputError(Exception):
    """An output that cannot be written (or would overwrite something)."""


def is_stdout(path) -> bool:
    return str(path) == STDOUT


def clean(row: dict) -> dict:
    """Drop private keys (those starting with '_') before writing."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _json(obj: Any, **kw) -> str:
    """JSON text that encodes as UTF-8: a lone surrogate (from a "\\ud800" escape in some input,
    or a teacher's reply) makes the whole text fall back to ASCII escapes, which read back the same."""
    text = json.dumps(obj, ensure_ascii=False, **kw)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True, **kw)
    return text


def dumps(row: dict) -> str:
    return _json(clean(row))


def check_writable(path, *, overwrite: bool = False, hint: str = "remove it or choose another path") -> Path:
    """Refuse an existing output (unless ``overwrite``; ``hint`` says what to do) or a folder we cannot
    write in."""
    if is_stdout(path):
        return Path(STDOUT)
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, expected a file path")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (will not overwrite; {hint})")
    parent = path.parent if str(path.parent) else Path(".")
    _check_ancestor(path, parent)
    return path


def nearest_existing(folder) -> Path:
    """``folder`` itself if it exists, else its nearest existing ancestor."""
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    return probe


def _check_ancestor(path: Path, folder: Path) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder we may write in."""
    probe = nearest_existing(folder)
    if not probe.is_dir():
        raise OutputError(f"{path}: cannot write there, {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK):
        raise OutputError(f"{path}: cannot write in {probe}")


def check_out_folder(path) -> Path:
    """An output folder: not an existing file, and creatable/writable (its contents are the caller's call)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder")
    _check_ancestor(path, path)
    return path


def check_new_files(folder, names) -> Path:
    """An output folder (as :func:`check_out_folder`) that holds none of ``names`` yet."""
    folder = check_out_folder(folder)
    for name in names:
        check_writable(folder / name)
    return folder


def check_out_dir(path, *, ours: Iterable[str] = (), marker: str | None = None, what: str = "run",
                  hint: str = "choose another --out") -> Path:
    """An output folder a command may fill: new, empty, holding only files named in ``ours`` (and
    ``*.tmp`` leftovers of an atomic write), or holding ``marker``, the file that shows an earlier run of
    the same command is there (to resume). Anything else is someone else's folder: refused."""
    out = check_out_folder(path)
    if out.is_dir():
        ours = set(ours)
        others = [p.name for p in out.iterdir() if p.name not in ours and not p.name.endswith(".tmp")]
        if others and not (marker and (out / marker).exists()):
            held = f" and holds no {what} ({marker})" if marker else ""
            raise OutputError(f"{out}: is not empty{held}; {hint}")
    return out


def repair_jsonl(path) -> int:
    """Cut a torn last line (one with no newline, left by a crash). Returns bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # walk back to the last newline
        pos, block = size, 65536
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        return size - keep


class JsonlWriter:
    """Append rows to a JSONL file, one flushed line each; ``sync()`` fsyncs.

    Opening repairs a torn last line first, so a crash mid-write never breaks reading.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl(self.path)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._f.write(dumps(row) + "\n")
        self._f.flush()

    def write_many(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.write(row)

    def sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self.sync()
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new sibling ``<name>.<random>.tmp`` created with mode 0666 less the umask, as a plain ``open``
    creates files (``tempfile.mkstemp`` would make it 0600 whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise OutputError(f"{path}: cannot create a temporary file beside it")


def atomic_write_text(path, text: str) -> None:
    """Write a whole file through a temporary sibling and ``os.replace``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path, data: bytes) -> None:
    """Write a whole file through a temporary sibling and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        if path.exists():
            os.chmod(fd, path.stat().st_mode & 0o7777)  # replacing a file keeps its mode, as open("w") does
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path, obj: Any) -> None:
    atomic_write_text(path, _json(obj, indent=2) + "\n")


def write_jsonl(path, rows: Iterable[dict]) -> int:
    """Write all rows atomically, gzip-compressed when the name ends in ``.gz``, or to standard output when
    ``path`` is ``"-"``; returns how many."""
    lines = [dumps(r) for r in rows]
    text = "".join(line + "\n" for line in lines)
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
    elif str(path).endswith(".gz"):
        atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))
    else:
        atomic_write_text(path, text)
    return len(lines)


def read_jsonl_lenient(path) -> list[dict]:
    """Read our own journal back, ignoring a torn last line (used on resume)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
