"""What every teacher shares: the protocol, the result types and small pure helpers.

``Teacher.complete(prompts)`` returns one ``Completion`` per prompt, in order.
A request that fails for good comes back with ``finish_reason="error"`` and a
one-line ``error``; ``TeacherError`` is raised only for setup problems (no key,
server unreachable, model missing) and, for API teachers, when a whole call
failed in a way no retry fixes (the server went away; rerunning resumes).
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

SPEC_FORMS = "embedded, smollm2, hf:PATH_OR_HUB_ID, gguf:FILE.gguf, openai:MODEL, or a local model folder"
LOCAL_MODELS = ("embedded", "smollm2")  # shipped by PyPI packages, as GGUF


class TeacherError(Exception):
    """A fatal teacher problem; the message is one line for the user (never holds an API key)."""


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    error: str | None = None


@dataclass
class Usage:
    """Cumulative counters; callers snapshot and diff them per round.

    ``requests`` counts prompts sent (not HTTP attempts), ``retries`` the extra
    attempts, ``failures`` the prompts that failed for good, ``unreported`` the
    answers that came without token counts (so tokens and cost are a lower bound).
    """

    requests: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unreported: int = 0  # answers whose server reported no token usage (their tokens are unknown)

    def snapshot(self) -> "Usage":
        return Usage(**asdict(self))

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict:
        return asdict(self)


class Teacher(Protocol):
    name: str
    is_chat: bool
    usage: Usage

    def complete(self, prompts: list, *, max_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.5,
                 stop: list[str] | None = None, progress: str | None = None) -> list[Completion]: ...

    def close(self) -> None: ...


def in_order(answers, n: int, each=lambda: None) -> list[Completion]:
    """The ``(index, Completion)`` pairs of a stream as a list in prompt order; ``each`` runs per answer."""
    out: list[Completion | None] = [None] * n
    for i, c in answers:
        out[i] = c
        each()
    return out


def iter_complete(teacher, prompts: list, **kw):
    """Yield ``(index, Completion)`` as answers arrive: the teacher's ``stream`` where it has one,
    else its ``complete`` in order."""
    stream = getattr(teacher, "stream", None)
    if stream is not None:
        yield from stream(prompts, **kw)
    else:
        yield from enumerate(teacher.complete(prompts, **kw))


def estimate_cost(usage: Usage, price_in: float | None, price_out: float | None) -> float | None:
    """Dollars for ``usage`` at prices per 1M tokens; None when a price or some usage is unknown."""
    if price_in is None or price_out is None or usage.unreported:
        return None
    return usage.prompt_tokens / 1e6 * price_in + usage.completion_tokens / 1e6 * price_out


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; (text, whether it was cut)."""
    hits = [i for i in (text.find(s) for s in stop or () if s) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


def parse_spec(spec: str | None) -> tuple[str, str]:
    """('local' | 'hf' | 'gguf' | 'openai', target) for a teacher spec; TeacherError naming the valid forms.

    'local' is a packaged model (embedded, smollm2) that either engine can run.
    """
    spec = (spec or "embedded").strip()
    if spec in LOCAL_MODELS:
        return "local", spec
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in ("hf", "gguf", "openai"):
        if not rest.strip():
            raise TeacherError(f"teacher {spec!r} names no model; use {SPEC_FORMS}")
        return prefix, rest.strip()
    path = Path(spec).expanduser()
    if path.is_dir():
        return "hf", spec
    if path.is_file() and path.suffix == ".gguf":
        return "gguf", spec
    raise TeacherError(f"unknown teacher {spec!r}; use {SPEC_FORMS}")


def gguf_file(target: str) -> Path:
    """The file of a ``gguf:`` spec; TeacherError in one line when there is none."""
    path = Path(target).expanduser()
    if not path.is_file():
        raise TeacherError(f"gguf:{target}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    return path


@contextlib.contextmanager
def progress_bar(total: int, desc: str | None, unit: str = "req"):
    """A tqdm bar when ``desc`` is given, else a silent stand-in with ``update``."""
    if desc is None:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True) as bar:
        yield bar


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


