"""Teacher LLMs behind one small interface (work in progress: interface is final)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Protocol


class TeacherError(Exception):
    """A fatal teacher setup problem; the message is one line for the user."""


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    error: str | None = None


@dataclass
class Usage:
    """Cumulative counters; callers snapshot and diff them per round."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

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


def make_teacher(spec: str | None, *, base_url=None, api_key=None, endpoint="chat", concurrency=16, timeout=60.0,
                 max_retries=6, batch_size=8, trust_remote_code=False, seed=0) -> Teacher:
    raise NotImplementedError


def estimate_cost(usage: Usage, price_in: float | None, price_out: float | None) -> float | None:
    """Dollars for ``usage`` at prices per 1M tokens; None when a price is unknown."""
    if price_in is None or price_out is None:
        return None
    return usage.prompt_tokens / 1e6 * price_in + usage.completion_tokens / 1e6 * price_out
