"""Teacher LLMs behind one small interface (``base.Teacher``), one module per engine.

``make_teacher(spec)`` understands:

- ``None`` / ``"embedded"``: the embedded Gemma 3 270M base model, run locally
  (a completion model: prompts are plain strings);
- ``"smollm2"``: SmolLM2-135M-Instruct, run locally (a chat model);
- ``"hf:PATH_OR_ID"`` (or a bare existing folder): any local transformers model;
- ``"gguf:FILE.gguf"`` (or a bare ``.gguf`` file): any GGUF model on llama.cpp;
- ``"openai:MODEL"``: any OpenAI-compatible API (``openai_api``).

The packaged models run on llama.cpp (``llamacpp``) when ``llama-cpp-python`` is
installed, else on transformers (``hf``), and say which in one line.
"""
from __future__ import annotations

from .base import (LOCAL_MODELS, SPEC_FORMS, Completion, Teacher, TeacherError, Usage, cut_at_stop,
                   estimate_cost, gguf_file, in_order, iter_complete, parse_spec, progress_bar)

ENGINES = ("auto", "llamacpp", "transformers")
NAMES = {"embedded": "embedded:gemma3-270m", "smollm2": "smollm2:135m-instruct"}

__all__ = ["Completion", "ENGINES", "LOCAL_MODELS", "SPEC_FORMS", "Teacher", "TeacherError", "Usage", "cut_at_stop",
           "estimate_cost", "gguf_file", "in_order", "iter_complete", "make_teacher", "parse_spec", "progress_bar"]


def llamacpp_available() -> str | None:
    """None when llama.cpp can run here, else why not (one line)."""
    try:
        import llama_cpp  # noqa: F401
    except Exception as e:  # noqa: BLE001 - an ImportError, or a broken shared library
        return f"llama-cpp-python is not installed or does not load ({type(e).__name__}: {e})".splitlines()[0]
    return None


def make_teacher(spec: str | None, *, base_url=None, api_key=None, endpoint="chat", concurrency=16, timeout=60.0,
                 max_retries=6, batch_size=None, trust_remote_code=False, seed=0, engine="auto",
                 repeat_penalty=1.0, log=None, flags=("--api-key", "--base-url")) -> Teacher:
    """Build the teacher for ``spec`` (see the module docstring).

    API teachers use ``base_url``/``api_key`` (else ``OPENAI_BASE_URL``/``OPENAI_API_KEY``; a custom
    base URL needs no key), ``endpoint``, ``concurrency``, ``timeout`` and ``max_retries``, and check
    at once that the server answers. Local teachers use ``engine``, ``batch_size`` (sequences decoded
    together), ``trust_remote_code``, ``seed`` and ``repeat_penalty`` (llama.cpp's, on both engines; 1 = off);
    ``endpoint="completions"`` makes a local chat model take plain completion prompts. ``log`` gets one
    line saying which engine runs, and why. ``flags``: the command's options for the API key and the
    server URL, as errors name them.
    """
    if engine not in ENGINES:
        raise TeacherError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    kind, target = parse_spec(spec)
    say = log or (lambda line: None)
    if kind == "openai":
        from .openai_api import OpenAITeacher

        return OpenAITeacher(target, base_url=base_url, api_key=api_key, endpoint=endpoint,
                             concurrency=concurrency, timeout=timeout, max_retries=max_retries, flags=flags)
    if kind == "hf":
        from .hf import HFTeacher

        say(f"teacher {target} on transformers")
        return HFTeacher(target, batch_size=batch_size or 8, trust_remote_code=trust_remote_code, seed=seed,
                         repeat_penalty=repeat_penalty)
    chat = kind == "local" and target == "smollm2" and endpoint == "chat"
    if kind == "gguf":
        gguf_file(target)  # a missing file is its own line, whatever the engine
    why = llamacpp_available() if engine != "transformers" else "--engine transformers"
    if why and (engine == "llamacpp" or kind == "gguf"):
        raise TeacherError(why)
    if why:
        from .hf import HFTeacher

        say(f"teacher {target} on transformers: {why}")
        return HFTeacher(target, batch_size=batch_size or 32, seed=seed, name=NAMES[target], is_chat=chat,
                         repeat_penalty=repeat_penalty)
    from ..models import ModelError, packaged_gguf
    from .llamacpp import LlamaCppTeacher

    try:
        path = packaged_gguf(target) if kind == "local" else str(gguf_file(target))
    except ModelError as e:
        raise TeacherError(str(e)) from None
    teacher = LlamaCppTeacher(path, name=NAMES.get(target, f"gguf:{target}"), chat=chat or kind == "gguf",
                              parallel=batch_size or 16, seed=seed, repeat_penalty=repeat_penalty)
    say(f"teacher {teacher.name} on llama.cpp, {teacher.parallel} sequences at a time")
    return teacher
