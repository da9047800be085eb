"""`selfinstruct eval`: each model answers held-out instructions; answers are scored.

Prompts come from :mod:`selfinstruct.data.formatting` (the same text `train` used).
Generation is batched with left padding, greedy by default, stops at EOS or at an
echoed template header, and is cut at the first header (``cut_at_header``).

Metrics per model: ROUGE-L F1 against the reference, exact match on
classification rows, the share of empty / echoing / runaway answers, the mean
answer length in words, and answer diversity (a collapse flag, ``stats.py``).
Flags are defined in :func:`answer_flags`. Each later model is compared with the
first: paired ROUGE-L difference, bootstrap interval, wins / ties / losses.

Everything is checked (data, output folder, judge server, model files) before a
model loads, and nothing is written until every answer is in: a run that fails
leaves the output folder as it was.
"""
from __future__ import annotations

import gc
import random
import time
from pathlib import Path

from .metrics import _mean, compare_models, pick_examples, score_answer, summarize
from ..data.formatting import TemplateError, format_prompt
from ..generation.answer import generate
from ..models import ModelError, check_model_files, load_error, resolve_model
from ..data.records import InputError, read_examples
from ..data.sources import data_file
from ..data.writers import atomic_write_json, check_new_files, write_jsonl

RESULT_FILES = ("results.jsonl", "metrics.json", "judge.jsonl", "report.md", "report.html")

# --------------------------------------------------------------------------- data


def sample_rows(rows: list[dict], limit: int | None, seed: int = 0) -> list[dict]:
    """A seeded sample of ``limit`` rows, in file order (all rows when ``limit`` is None or larger)."""
    if limit is not None and limit < len(rows):
        keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
        rows = [rows[i] for i in keep]
    return rows


def model_names(specs: list[str], given: list[str] | tuple = ()) -> list[str]:
    """What reports call each model: its ``--name``, else a folder's (or hub id's) last part, so a
    temporary folder's whole path never reaches a title; a repeated name gets ``#2``, ``#3``."""
    if given and len(given) != len(specs):
        raise InputError("--name", None, f"{len(given)} name(s) for {len(specs)} model(s): give one per --model")
    if any(not g.strip() for g in given):
        raise InputError("--name", None, "a name is empty")
    names, seen = [], {}
    for i, s in enumerate(specs):
        base = given[i] if given else (Path(s.rstrip("/\\")).name or s)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return names


# --------------------------------------------------------------------------- the command


def _load_tokenizer(path: str, spec: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(spec, e) from e


def _load_model(path: str, spec: str, trust_remote_code: bool):
    """load_model_and_tokenizer; a model that does not load is one line naming the spec the user gave."""
    from ..models import ModelError, generation_dtype, load_model_and_tokenizer

    try:
        return load_model_and_tokenizer(path, dtype=generation_dtype(), trust_remote_code=trust_remote_code)
    except ModelError as e:
        raise ModelError(str(e).replace(path, spec, 1) if str(e).startswith(path) else str(e)) from None


def _prompts(rows, template, tokenizer, spec) -> list[str]:
    try:
        return [format_prompt(r, template, tokenizer) for r in rows]
    except TemplateError as e:
        raise ModelError(f"{spec}: {e}") from None


def _open_judge(judge: str | None, models: list[str], base_url: str | None, api_key: str | None):
    """Check the judge before any model loads; an API judge is built now (it checks its server)."""
    if not judge:
        if base_url or api_key:
            raise InputError("--judge-base-url/--judge-api-key", None, "give --judge too")
        return None
    if len(models) < 2:
        raise InputError("--judge", None, "the judge compares two models; give a second --model")
    from ..teachers import TeacherError, make_teacher, parse_spec

    try:
        if parse_spec(judge)[0] != "openai":
            if base_url or api_key:
                raise TeacherError("--judge-base-url and --judge-api-key are for openai:MODEL judges")
            return None  # a local judge loads after the models are done with
        return make_teacher(judge, base_url=base_url, api_key=api_key, flags=("--judge-api-key", "--judge-base-url"))
    except TeacherError as e:
        raise ModelError(f"--judge {judge}: {e}") from None


def result_rows(rows: list[dict], names: list[str], scored: dict[str, list[dict]]) -> list[dict]:
    """results.jsonl: one row per (model, data row)."""
    return [{"row": i, "id": row.get("id"), "line": row.get("_line"), "model": name,
             "instruction": row["instruction"], "input": row.get("input", ""), "reference": row["output"],
             "is_classification": bool(row.get("is_classification", False)), **s}
            for name in names for i, (row, s) in enumerate(zip(rows, scored[name]))]


def run_eval(models: list[str], data, out, *, limit: int | None = None, seed: int = 0,
             max_new_tokens: int = 256, batch_size: int = 8, template: str = "alpaca",
             temperature: float = 0.0, judge: str | None = None, judge_base_url: str | None = None,
             judge_api_key: str | None = None, examples: int = 3, skip_invalid: bool = False,
             trust_remote_code: bool = False, columns: dict | None = None, names: tuple = (),
             log=print) -> dict:
    """Generate, score and report; returns the summary written to metrics.json."""
    if not models:
        raise InputError("--model", None, "give at least one model")
    skipped: list[InputError] = []
    rows = read_examples(data_file(data), skip_invalid=skip_invalid, skipped=skipped, chat=True,  # 1. data
                         references=True, columns=columns)
    rows = sample_rows(rows, limit, seed)
    for err in skipped:
        log(f"skipped: {err}")
    out = check_new_files(out, RESULT_FILES)                  # 2. outputs (never overwrite)
    names = model_names(models, names)
    paths = [resolve_model(m) for m in models]                # 3. models exist, tokenizers/templates fit
    prompts = {}
    for n, p, m in zip(names, paths, models):
        check_model_files(p, m, trust_remote_code)
        prompts[n] = _prompts(rows, template, _load_tokenizer(p, m, trust_remote_code), m)
    teacher = _open_judge(judge, models, judge_base_url, judge_api_key)  # 4. an API judge answers
    try:
        return _run(rows, names, paths, models, prompts, data, out, teacher, judge, limit=limit, seed=seed,
                    skipped=len(skipped), max_new_tokens=max_new_tokens, batch_size=batch_size,
                    template=template, temperature=temperature, examples=examples,
                    trust_remote_code=trust_remote_code, log=log)
    finally:
        if teacher is not None:
            teacher.close()


def _run(rows, names, paths, models, prompts, data, out, teacher, judge, *, limit, seed, skipped,
         max_new_tokens, batch_size, template, temperature, examples, trust_remote_code, log) -> dict:
    if temperature > 0:
        import torch

        torch.manual_seed(seed)
    log(f"eval: {len(rows)} rows from {data}, models: {', '.join(names)}")
    scored: dict[str, list[dict]] = {}
    timing: dict[str, dict] = {}
    for name, path, spec in zip(names, paths, models):
        t0 = time.perf_counter()
        model, tokenizer = _load_model(path, spec, trust_remote_code)
        answers = generate(model, tokenizer, prompts[name], max_new_tokens=max_new_tokens,
                           batch_size=batch_size, temperature=temperature, template=template, desc=name)
        seconds = time.perf_counter() - t0
        del model
        gc.collect()
        scored[name] = [{**score_answer(row, a["raw"], runaway=a["runaway"]), "new_tokens": a["new_tokens"]}
                        for row, a in zip(rows, answers)]
        tokens = sum(a["new_tokens"] for a in answers)
        timing[name] = {"seconds": round(seconds, 2), "new_tokens": tokens}
        log(f"  {name}: ROUGE-L {_mean(s['rouge_l'] for s in scored[name]):.3f} "
            f"({seconds:.0f} s, {tokens} tokens)")

    refs = [r["output"] for r in rows]
    summary = {
        "data": str(data), "rows": len(rows), "skipped_invalid": skipped, "limit": limit, "seed": seed,
        "template": template,
        "max_new_tokens": max_new_tokens, "temperature": temperature, "models": names,
        "model_specs": dict(zip(names, models)),
        "metrics": {n: {**summarize(scored[n], refs), **timing[n]} for n in names},
        "comparisons": compare_models(names, scored, seed=seed),
    }
    for c in summary["comparisons"]:
        log(f"  {c['headline']}")
    judged = None
    if judge:
        from .judge import run_judge

        summary["judge"], judged = run_judge(judge, rows, names[0], names[1],
                                             [s["answer"] for s in scored[names[0]]],
                                             [s["answer"] for s in scored[names[1]]], teacher=teacher, log=log)

    from .report import write_eval_reports

    check_new_files(out, RESULT_FILES)                        # 5. every answer is in: write (still nothing
    out.mkdir(parents=True, exist_ok=True)                    #    overwritten, should another run have written)
    write_jsonl(out / "results.jsonl", result_rows(rows, names, scored))
    if judged is not None:
        write_jsonl(out / "judge.jsonl", judged)
    atomic_write_json(out / "metrics.json", summary)
    a = [s["rouge_l"] for s in scored[names[0]]]
    b = [s["rouge_l"] for s in scored[names[1]]] if len(names) > 1 else None
    best, worst = pick_examples(a, b, examples)
    write_eval_reports(out, summary, rows, scored, best, worst)
    return summary
