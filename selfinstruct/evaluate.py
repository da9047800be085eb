"""`selfinstruct eval`: each model answers held-out instructions; answers are scored.

Prompts come from :mod:`selfinstruct.formatting` (the same text `train` used).
Generation is batched with left padding, greedy by default, stops at EOS or at an
echoed template header, and is cut at the first header (``cut_at_header``).

Metrics per model: ROUGE-L F1 against the reference, exact match on
classification rows, the share of empty / echoing / runaway answers, and the
mean answer length in words. Flags are defined in :func:`answer_flags`.
"""
from __future__ import annotations

import gc
import json
import random
import time
import unicodedata
from pathlib import Path

from .formatting import HEADERS, cut_at_header, format_prompt, TemplateError
from .models import ModelError, load_error, resolve_model
from .records import InputError, read_examples
from .writers import JsonlWriter, atomic_write_json, check_out_folder, check_writable

RESULT_FILES = ("results.jsonl", "metrics.json", "judge.jsonl", "report.md", "report.html")
ECHO_MIN_INPUT_WORDS = 8

# --------------------------------------------------------------------------- metrics (pure)

_SCORER = None


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (rouge-score's tokenizer: lowercase, alphanumeric tokens, no stemming)."""
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return _SCORER.score(reference, prediction)["rougeL"].fmeasure


def normalize(text: str) -> str:
    """Lowercase, drop punctuation (Unicode category P*), collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


def has_header(text: str) -> bool:
    return any(h in text for h in HEADERS)


def answer_flags(answer: str, raw: str, row: dict, *, runaway: bool) -> dict:
    """Flags for one answer (``answer`` is ``raw`` cut at the first header).

    - empty: nothing left after cutting;
    - echo: the raw text holds a template header, or the answer contains the whole
      instruction, equals the input, or contains the whole input when the input has
      at least ``ECHO_MIN_INPUT_WORDS`` words (normalised text);
    - runaway: generation hit ``max_new_tokens`` without EOS or header.
    """
    ans, ins, inp = normalize(answer), normalize(row["instruction"]), normalize(row.get("input", ""))
    repeats = bool(ans) and (
        (ins and ins in ans) or (inp and ans == inp)
        or (len(inp.split()) >= ECHO_MIN_INPUT_WORDS and inp in ans))
    return {"empty": not answer.strip(), "echo": has_header(raw) or bool(repeats), "runaway": bool(runaway)}


def score_answer(row: dict, raw: str, *, runaway: bool) -> dict:
    """Everything results.jsonl stores about one answer."""
    answer = cut_at_header(raw)
    cls = bool(row.get("is_classification", False))
    return {
        "answer": answer, "raw": raw,
        "rouge_l": rouge_l(answer, row["output"]),
        "exact_match": exact_match(answer, row["output"]) if cls else None,
        **answer_flags(answer, raw, row, runaway=runaway),
        "words": len(answer.split()),
    }


def _mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def summarize(scored: list[dict]) -> dict:
    """Per-model summary from that model's scored rows."""
    em = [r["exact_match"] for r in scored if r["exact_match"] is not None]
    return {
        "rows": len(scored),
        "rouge_l": _mean(r["rouge_l"] for r in scored),
        "exact_match": _mean(em), "classification_rows": len(em),
        "empty": _mean(r["empty"] for r in scored),
        "echo": _mean(r["echo"] for r in scored),
        "runaway": _mean(r["runaway"] for r in scored),
        "words": _mean(r["words"] for r in scored),
    }


def pick_examples(rouge_a: list[float], rouge_b: list[float] | None, k: int) -> tuple[list[int], list[int]]:
    """(best, worst) row indices by ROUGE-L gap b - a (or by a alone with one model)."""
    key = [b - a for a, b in zip(rouge_a, rouge_b)] if rouge_b is not None else list(rouge_a)
    order = sorted(range(len(key)), key=lambda i: (key[i], -i))
    best = order[::-1][:k]
    worst = [i for i in order[:k] if i not in best] if len(order) > k else []
    return best, worst


# --------------------------------------------------------------------------- data


def load_rows(path, *, limit: int | None = None, seed: int = 0, skip_invalid: bool = False,
              skipped: list | None = None) -> list[dict]:
    """Alpaca/Self-Instruct rows with references; ``limit`` takes a seeded sample (file order kept).
    With ``skip_invalid`` bad rows go to ``skipped`` (InputErrors) instead of raising."""
    rows = read_examples(path, skip_invalid=skip_invalid, skipped=skipped)
    if limit is not None and limit < len(rows):
        keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
        rows = [rows[i] for i in keep]
    return rows


def check_out_dir(out) -> Path:
    """Refuse a file, or a folder already holding eval outputs (nothing is overwritten)."""
    out = check_out_folder(out)
    for name in RESULT_FILES:
        check_writable(out / name)
    return out


def model_names(specs: list[str]) -> list[str]:
    names, seen = [], {}
    for s in specs:
        seen[s] = seen.get(s, 0) + 1
        names.append(s if seen[s] == 1 else f"{s}#{seen[s]}")
    return names


# --------------------------------------------------------------------------- generation


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
    """Token ids per prompt, as `train` tokenises them (data.encode_rows): a chat template
    writes its own BOS, the Alpaca text gets the tokenizer's special tokens."""
    return [tokenizer(p, add_special_tokens=template != "chat")["input_ids"] for p in prompts]


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 256, batch_size: int = 8,
             temperature: float = 0.0, template: str = "alpaca", desc: str | None = None) -> list[dict]:
    """Answer each prompt: ``{"raw", "new_tokens", "runaway"}`` in prompt order.

    The teachers' batched generation (one EOS rule for both), plus a stop at a template header.
    """
    from .teachers.hf import generate as generate_ids

    out: list[dict | None] = [None] * len(prompts)
    ids = encode_batch(tokenizer, prompts, template)
    for i, row, _ in generate_ids(model, tokenizer, ids, max_new_tokens=max_new_tokens, temperature=temperature,
                                  batch_size=batch_size, stopping=lambda n: [_header_stop(tokenizer, n)],
                                  progress=desc, unit="row"):
        raw = tokenizer.decode(row, skip_special_tokens=True)
        out[i] = {"raw": raw, "new_tokens": len(row), "runaway": len(row) >= max_new_tokens and not has_header(raw)}
    return out


# --------------------------------------------------------------------------- the command


def _load_tokenizer(path: str, spec: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(spec, e) from e


def _prompts(rows, template, tokenizer, spec) -> list[str]:
    try:
        return [format_prompt(r, template, tokenizer) for r in rows]
    except TemplateError as e:
        raise ModelError(f"{spec}: {e}") from None


def run_eval(models: list[str], data, out, *, limit: int | None = None, seed: int = 0,
             max_new_tokens: int = 256, batch_size: int = 8, template: str = "alpaca",
             temperature: float = 0.0, judge: str | None = None, examples: int = 3,
             skip_invalid: bool = False, trust_remote_code: bool = False, log=print) -> dict:
    """Generate, score and report; returns the summary written to metrics.json."""
    from .models import generation_dtype, load_model_and_tokenizer

    if not models:
        raise InputError("--model", None, "give at least one model")
    skipped: list[InputError] = []
    rows = load_rows(data, limit=limit, seed=seed, skip_invalid=skip_invalid, skipped=skipped)  # 1. data
    for err in skipped:
        log(f"skipped: {err}")
    out = check_out_dir(out)                                  # 2. outputs (never overwrite)
    if judge and len(models) < 2:
        raise InputError("--judge", None, "the judge compares two models; give a second --model")
    names = model_names(models)
    paths = [resolve_model(m) for m in models]                # 3. models exist, tokenizers/templates fit
    prompts = {n: _prompts(rows, template, _load_tokenizer(p, m, trust_remote_code), m)
               for n, p, m in zip(names, paths, models)}
    out.mkdir(parents=True, exist_ok=True)
    if temperature > 0:
        import torch

        torch.manual_seed(seed)
    log(f"eval: {len(rows)} rows from {data}, models: {', '.join(names)}")

    scored: dict[str, list[dict]] = {}
    timing: dict[str, dict] = {}
    with JsonlWriter(out / "results.jsonl") as writer:
        for name, path in zip(names, paths):
            t0 = time.perf_counter()
            model, tokenizer = load_model_and_tokenizer(path, dtype=generation_dtype(),
                                                        trust_remote_code=trust_remote_code)
            answers = generate(model, tokenizer, prompts[name], max_new_tokens=max_new_tokens,
                               batch_size=batch_size, temperature=temperature, template=template, desc=name)
            seconds = time.perf_counter() - t0
            del model
            gc.collect()
            scored[name] = []
            for i, (row, a) in enumerate(zip(rows, answers)):
                s = {**score_answer(row, a["raw"], runaway=a["runaway"]), "new_tokens": a["new_tokens"]}
                scored[name].append(s)
                writer.write({"row": i, "id": row.get("id"), "line": row.get("_line"), "model": name,
                              "instruction": row["instruction"], "input": row.get("input", ""),
                              "reference": row["output"],
                              "is_classification": bool(row.get("is_classification", False)), **s})
            writer.sync()
            tokens = sum(a["new_tokens"] for a in answers)
            timing[name] = {"seconds": round(seconds, 2), "new_tokens": tokens}
            log(f"  {name}: ROUGE-L {summarize(scored[name])['rouge_l']:.3f} ({seconds:.0f} s, {tokens} tokens)")

    summary = {
        "data": str(data), "rows": len(rows), "skipped_invalid": len(skipped), "limit": limit, "seed": seed,
        "template": template,
        "max_new_tokens": max_new_tokens, "temperature": temperature, "models": names,
        "metrics": {n: {**summarize(scored[n]), **timing[n]} for n in names},
    }
    if judge:
        from .judge import run_judge

        summary["judge"] = run_judge(judge, rows, names[0], names[1], [s["answer"] for s in scored[names[0]]],
                                     [s["answer"] for s in scored[names[1]]], out / "judge.jsonl", log=log)
    atomic_write_json(out / "metrics.json", summary)

    from .eval_report import write_eval_reports

    a = [s["rouge_l"] for s in scored[names[0]]]
    b = [s["rouge_l"] for s in scored[names[1]]] if len(names) > 1 else None
    best, worst = pick_examples(a, b, examples)
    write_eval_reports(out, summary, rows, scored, best, worst)
    return summary


def read_summary(out) -> dict:
    return json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))
