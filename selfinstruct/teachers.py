"""Teacher LLMs behind one small interface.

``make_teacher(spec)`` understands:

- ``None`` / ``"embedded"``: the embedded Gemma 3 270M base model, run locally
  (a completion model: prompts are plain strings);
- ``"smollm2"``: SmolLM2-135M-Instruct, run locally (a chat model);
- ``"hf:PATH_OR_ID"`` (or a bare existing folder): any local transformers model;
- ``"openai:MODEL"``: any OpenAI-compatible API (see ``openai_teacher``).

``Teacher.complete(prompts)`` returns one ``Completion`` per prompt, in order.
A request that fails for good comes back with ``finish_reason="error"`` and a
one-line ``error``; ``TeacherError`` is raised only for setup problems (no key,
server unreachable, model missing) and, for API teachers, when every request
of a call failed to connect (the server went away; rerunning resumes).
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

SPEC_FORMS = "embedded, smollm2, hf:PATH_OR_HUB_ID, openai:MODEL, or a local model folder"


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
    attempts, ``failures`` the prompts that failed for good.
    """

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


def estimate_cost(usage: Usage, price_in: float | None, price_out: float | None) -> float | None:
    """Dollars for ``usage`` at prices per 1M tokens; None when a price is unknown."""
    if price_in is None or price_out is None:
        return None
    return usage.prompt_tokens / 1e6 * price_in + usage.completion_tokens / 1e6 * price_out


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; (text, whether it was cut)."""
    hits = [i for i in (text.find(s) for s in stop or () if s) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


def parse_spec(spec: str | None) -> tuple[str, str]:
    """('hf' | 'openai', target) for a teacher spec; TeacherError naming the valid forms."""
    spec = (spec or "embedded").strip()
    if spec in ("embedded", "smollm2"):
        return "hf", spec
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in ("hf", "openai"):
        if not rest.strip():
            raise TeacherError(f"teacher {spec!r} names no model; use {SPEC_FORMS}")
        return prefix, rest.strip()
    if Path(spec).expanduser().is_dir():
        return "hf", spec
    raise TeacherError(f"unknown teacher {spec!r}; use {SPEC_FORMS}")


@contextlib.contextmanager
def progress_bar(total: int, desc: str | None):
    """A tqdm bar when ``desc`` is given, else a silent stand-in with ``update``."""
    if desc is None:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="req", dynamic_ncols=True) as bar:
        yield bar


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def make_teacher(spec: str | None, *, base_url=None, api_key=None, endpoint="chat", concurrency=16, timeout=60.0,
                 max_retries=6, batch_size=8, trust_remote_code=False, seed=0) -> Teacher:
    """Build the teacher for ``spec`` (see the module docstring).

    API teachers use ``base_url``/``api_key`` (else ``OPENAI_BASE_URL``/``OPENAI_API_KEY``; a custom
    base URL needs no key), ``endpoint``, ``concurrency``, ``timeout`` and ``max_retries``, and check
    at once that the server answers. Local teachers use ``batch_size``, ``trust_remote_code`` and ``seed``.
    """
    kind, target = parse_spec(spec)
    if kind == "openai":
        from .openai_teacher import OpenAITeacher

        return OpenAITeacher(target, base_url=base_url, api_key=api_key, endpoint=endpoint,
                             concurrency=concurrency, timeout=timeout, max_retries=max_retries)
    return HFTeacher(target, batch_size=batch_size, trust_remote_code=trust_remote_code, seed=seed)


class HFTeacher:
    """A local transformers model, generating ``batch_size`` prompts at a time (left padding)."""

    def __init__(self, spec: str, *, batch_size: int = 8, trust_remote_code: bool = False, seed: int = 0,
                 device: str | None = None):
        from .models import ModelError, load_model_and_tokenizer

        try:
            self.model, self.tokenizer = load_model_and_tokenizer(
                spec, device=device, trust_remote_code=trust_remote_code)
        except ModelError as e:
            raise TeacherError(str(e)) from None
        self.model.eval()
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        embedded = spec == "embedded"
        self.name = "embedded:gemma3-270m" if embedded else f"hf:{spec}"
        # the embedded Gemma is a base model: its tokenizer's chat template would only mislead it
        self.is_chat = bool(getattr(tok, "chat_template", None)) and not embedded
        self.usage = Usage()
        self.batch_size, self.seed, self._calls = max(1, batch_size), seed, 0
        self._stop_criteria = {}
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if tok.eos_token_id is not None:
            eos.add(tok.eos_token_id)
        self._eos = eos
        self._ends = eos | {tok.pad_token_id}

    def __repr__(self):
        return f"HFTeacher({self.name!r})"

    def encode(self, prompt) -> list[int]:
        """Token ids for one prompt: chat messages through the chat template, strings as they are."""
        tok = self.tokenizer
        if isinstance(prompt, str):
            return tok(prompt, add_special_tokens=True)["input_ids"]
        if not getattr(tok, "chat_template", None):
            raise TeacherError(f"{self.name} has no chat template; pass plain string prompts")
        text = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return tok(text, add_special_tokens=False)["input_ids"]

    def _criteria(self, stop):
        from transformers import StoppingCriteriaList, StopStringCriteria

        key = tuple(s for s in stop or () if s)
        if not key:
            return None
        if key not in self._stop_criteria:  # building one scans the whole vocabulary
            self._stop_criteria[key] = StopStringCriteria(self.tokenizer, list(key))
        return StoppingCriteriaList([self._stop_criteria[key]])

    def complete(self, prompts: list, *, max_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.5,
                 stop: list[str] | None = None, progress: str | None = None) -> list[Completion]:
        """Generate for every prompt; batches hold prompts of similar length."""
        import torch

        ids = [self.encode(p) for p in prompts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        torch.manual_seed(self.seed + self._calls)
        self._calls += 1
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0 \
            else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        out: list[Completion | None] = [None] * len(prompts)
        with progress_bar(len(prompts), progress) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                enc = self.tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
                enc = enc.to(self.model.device)
                with torch.no_grad():
                    gen = self.model.generate(
                        **enc, max_new_tokens=max_tokens, stopping_criteria=self._criteria(stop),
                        pad_token_id=self.tokenizer.pad_token_id, eos_token_id=sorted(self._eos) or None,
                        **sampling)
                new = gen[:, enc["input_ids"].shape[1]:].tolist()
                for i, row in zip(batch, new):
                    out[i] = self._completion(row, len(ids[i]), max_tokens, stop)
                bar.update(len(batch))
        self.usage.requests += len(prompts)
        return out

    def _completion(self, row: list[int], n_prompt: int, max_tokens: int, stop) -> Completion:
        end = next((j for j, t in enumerate(row) if t in self._ends), len(row))
        hit_eos = end < len(row) and row[end] in self._eos
        n_new = end + hit_eos
        text, cut = cut_at_stop(self.tokenizer.decode(row[:end], skip_special_tokens=True), stop)
        reason = "length" if not (cut or hit_eos) and n_new >= max_tokens else "stop"
        self.usage.prompt_tokens += n_prompt
        self.usage.completion_tokens += n_new
        return Completion(text, n_prompt, n_new, reason)

    def close(self) -> None:
        """Free the model (and GPU memory)."""
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
