"""`selfinstruct answer`: a model writes each row's output anew, from its instruction and input.

The student as the next teacher (issue 24): a model tuned on the seed tasks answers the generated tasks
in the prompt it was trained on, and its answers replace the teacher's. Rows keep every other field.
An answer is cut at an echoed template header; one that ran to ``max_new_tokens`` without ending, or
is empty, is rejected (with ``reason``), since the student would learn to ramble or to say nothing.

``generate`` here is also what `eval` answers with, so a row is answered exactly as it is scored.
Answers are journaled to ``OUT.partial.jsonl`` as they come, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..data.formatting import TemplateError, adds_special_tokens, cut_at_header, format_prompt, has_header
from ..data.records import InputError, read_examples
from ..data.sources import data_file
from ..data.writers import JsonlWriter, OutputError, check_writable, clean, read_jsonl_lenient, write_jsonl
from ..models import (ModelError, check_model_files, generation_dtype, load_model_and_tokenizer, load_tokenizer,
                      resolve_model)


def _header_stop(tokenizer, prompt_len: int):
    import torch
    from transformers import StoppingCriteria

    class HeaderStop(StoppingCriteria):
        """Stop a row once its generated text holds a template header (tail decoded each step)."""

        def __call__(self, input_ids, scores, **kwargs):
            tails = tokenizer.batch_decode(input_ids[:, max(prompt_len, input_ids.shape[1] - 24):],
                                           skip_special_tokens=True)
            return torch.tensor([has_header(t) for t in tails], dtype=torch.bool, device=input_ids.device)

    return HeaderStop()


def encode_batch(tokenizer, prompts: list[str], template: str = "alpaca") -> list[list[int]]:
    """Token ids per prompt, as `train` tokenises them (training.examples.encode_rows): a chat template
    writes its own BOS, the Alpaca text gets the tokenizer's special tokens (unless it starts with BOS)."""
    return [tokenizer(p, add_special_tokens=adds_special_tokens(tokenizer, p, template))["input_ids"]
            for p in prompts]


def answers(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 256, batch_size: int = 8,
            temperature: float = 0.0, top_p: float = 1.0, repeat_penalty: float = 1.0, template: str = "alpaca",
            desc: str | None = None, skip: frozenset = frozenset()):
    """Yield ``(index, {"raw", "new_tokens", "runaway"})`` for each prompt not in ``skip``, batch by batch.

    The teachers' batched generation (one EOS rule for both), plus a stop at a template header.
    """
    from ..teachers.hf import generate as generate_ids

    todo = [i for i in range(len(prompts)) if i not in skip]
    ids = encode_batch(tokenizer, [prompts[i] for i in todo], template)
    for j, row, _ in generate_ids(model, tokenizer, ids, max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_p=top_p, batch_size=batch_size, repeat_penalty=repeat_penalty,
                                  stopping=lambda n: [_header_stop(tokenizer, n)], progress=desc, unit="row"):
        raw = tokenizer.decode(row, skip_special_tokens=True)
        yield todo[j], {"raw": raw, "new_tokens": len(row),
                        "runaway": len(row) >= max_new_tokens and not has_header(raw)}


def generate(model, tokenizer, prompts: list[str], **kw) -> list[dict]:
    """:func:`answers` as a list in prompt order (what `eval` scores)."""
    out: list[dict | None] = [None] * len(prompts)
    for i, a in answers(model, tokenizer, prompts, **kw):
        out[i] = a
    return out


def answered_row(row: dict, answer: dict) -> tuple[dict, str | None]:
    """(the row with the answer as its output, the reason to reject it or None)."""
    text = cut_at_header(answer["raw"])
    reason = "runaway" if answer["runaway"] else "empty_answer" if not text else None
    return {**clean(row), "output": text}, reason


def fingerprint(rows: list[dict], settings: dict) -> str:
    """What a journal must match to be resumed: the rows' instructions and inputs, and the settings."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for r in rows:
        h.update(json.dumps([r["instruction"], r.get("input", "")]).encode())
    return h.hexdigest()[:16]


def read_journal(path: Path, key: str) -> dict[int, dict]:
    """The answers a killed run left in ``path`` (row index -> answer); refused if made otherwise."""
    if not path.exists():
        return {}
    lines = read_jsonl_lenient(path)
    if not lines:  # killed before its first line was whole: start over
        path.unlink()
        return {}
    if lines[0].get("fingerprint") != key:
        raise OutputError(f"{path}: left by an answer run with other data or settings (remove it to start over)")
    return {r["row"]: r for r in lines[1:]}


def answer_file(data, model: str, out, *, rejected=None, max_new_tokens: int = 256, batch_size: int = 8,
                temperature: float = 0.0, top_p: float = 1.0, repeat_penalty: float = 1.2, template: str = "alpaca",
                seed: int = 0, skip_invalid: bool = False, columns: dict | None = None,
                trust_remote_code: bool = False, progress: bool = True, log=print) -> dict:
    """Answer every row of ``data`` with ``model``; write the kept rows to ``out``, the rejected to
    ``rejected``. Everything is checked before the model loads; nothing is overwritten."""
    skipped: list[InputError] = []
    rows = read_examples(data_file(data), skip_invalid=skip_invalid, skipped=skipped, chat=True, columns=columns)
    for err in skipped:
        log(f"skipped: {err}")
    if not rows:
        raise InputError(str(data), None, "no rows to answer")
    out = check_writable(out)
    if rejected:
        rejected = check_writable(rejected)
    path = resolve_model(model)
    check_model_files(path, model, trust_remote_code)
    settings = dict(model=model, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                    repeat_penalty=repeat_penalty, template=template, seed=seed)
    key = fingerprint(rows, settings)
    journal = out.with_name(out.name + ".partial.jsonl")
    done = read_journal(journal, key)
    try:  # the prompts first (a model with no chat template fails here), then the weights
        tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
        prompts = [format_prompt(r, template, tokenizer) for r in rows]
    except TemplateError as e:
        raise ModelError(f"{model}: {e}") from None
    try:
        lm, tokenizer = load_model_and_tokenizer(path, dtype=generation_dtype(), trust_remote_code=trust_remote_code)
    except ModelError as e:  # name the model as the user gave it, not its resolved folder
        raise ModelError(str(e).replace(path, model, 1)) from None
    if temperature > 0:
        import torch

        torch.manual_seed(seed)
    if done:
        log(f"resuming: {len(done)} of {len(rows)} rows were answered before")
    fresh = not journal.exists()
    with JsonlWriter(journal) as j:
        if fresh:
            j.write({"fingerprint": key, **settings})
        for i, a in answers(lm, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                            temperature=temperature, top_p=top_p, repeat_penalty=repeat_penalty, template=template,
                            desc="answer" if progress else None, skip=frozenset(done)):
            j.write({"row": i, **a})
            done[i] = a
    kept, bad = [], []
    for i, row in enumerate(rows):
        new, reason = answered_row(row, done[i])
        (bad.append({**new, "reason": reason}) if reason else kept.append(new))
    if rejected:
        write_jsonl(rejected, bad)
    write_jsonl(out, kept)
    journal.unlink()
    stats = {"rows": len(rows), "kept": len(kept), "rejected": len(bad),
             "runaway": sum(r["reason"] == "runaway" for r in bad),
             "empty_answer": sum(r["reason"] == "empty_answer" for r in bad),
             "new_tokens": sum(a["new_tokens"] for a in done.values()), "skipped_invalid": len(skipped)}
    log(f"answer: {stats['rows']} rows -> {stats['kept']} kept, {stats['rejected']} rejected "
        f"({stats['runaway']} runaway, {stats['empty_answer']} empty); {stats['new_tokens']} new tokens")
    log(f"wrote {out}" + (f", {rejected}" if rejected else ""))
    return stats
