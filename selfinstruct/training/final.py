"""The final model folder: the prompt format it was trained with, and the dtype it is served in.

- :func:`alpaca_chat_template`: the Alpaca prompt as a Jinja chat template, saved as the tokenizer's
  ``chat_template`` (as TRL's ``clone_chat_template`` saves a template), so ``apply_chat_template``
  and vLLM's chat endpoint give the model the prompt it was trained on;
- :func:`save_dtype` and :func:`cast_saved`: the final weights in bf16 where training ran in bf16.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..data.formatting import PROMPT_INPUT, PROMPT_NO_INPUT

SAVE_DTYPES = ("auto", "bfloat16", "float32")


def _jinja(prompt: str) -> str:
    return prompt.replace("{instruction}", "{{ message['content'] }}").replace("{input}", "{{ message['input'] }}")


def alpaca_chat_template(bos: str = "") -> str:
    """Each user message becomes the Alpaca prompt (with the Input section when the message has a
    non-empty ``input`` key), each assistant message its answer and EOS; system messages are dropped
    (the Alpaca format has none). The prompt already ends with ``### Response:``, so
    ``add_generation_prompt`` adds nothing. ``bos``: the token the tokenizer puts first in training."""
    return (
        ("{{ bos_token }}" if bos else "")
        + "{%- for message in messages %}"
        "{%- if message['role'] == 'user' %}"
        "{%- if message['input'] is defined and message['input'] %}" + _jinja(PROMPT_INPUT)
        + "{% else %}" + _jinja(PROMPT_NO_INPUT) + "{% endif %}"  # no '-': the prompt's last newline stays
        "{%- elif message['role'] == 'assistant' %}{{ message['content'] }}{{ eos_token }}"
        "{%- endif %}"
        "{%- endfor %}"
    )


def adds_bos(tokenizer) -> bool:
    """Whether tokenising a prompt (as training does) puts the BOS token first."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos] != tokenizer(
        "a", add_special_tokens=False)["input_ids"][:1]


def set_prompt_format(tokenizer, template: str) -> None:
    """``--template alpaca``: the tokenizer's chat template becomes the Alpaca prompt; ``chat`` keeps the
    model's own."""
    if template == "alpaca":
        tokenizer.chat_template = alpaca_chat_template(tokenizer.bos_token if adds_bos(tokenizer) else "")


def save_dtype(choice: str, trained_bf16: bool) -> str:
    """``auto``: bfloat16 where training ran in bf16 autocast, else float32."""
    if choice == "auto":
        return "bfloat16" if trained_bf16 else "float32"
    return choice


def cast_saved(folder, dtype: str) -> None:
    """Rewrite a saved model's floating-point safetensors (every shard, atomically) and its config in
    ``dtype``; nothing to do for float32 (the Trainer saves the fp32 master weights)."""
    if dtype == "float32":
        return
    import torch
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    target = getattr(torch, dtype)
    total = 0
    for f in sorted(folder.glob("*.safetensors")):
        tensors = {k: (v.to(target) if v.is_floating_point() else v) for k, v in load_file(f).items()}
        total += sum(v.numel() * v.element_size() for v in tensors.values())
        tmp = f.with_name(f.name + ".tmp")
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, f)
    _update_json(folder / "model.safetensors.index.json", lambda d: d.setdefault("metadata", {}).update(
        total_size=total))
    _update_json(folder / "config.json", lambda d: d.update(dtype=dtype))


def _update_json(path: Path, change) -> None:
    if not path.exists():
        return
    from ..data.writers import atomic_write_json

    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    atomic_write_json(path, data)
