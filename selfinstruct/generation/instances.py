"""The loop's instance step: ask the teacher for each kept task's examples, parse, clean, keep or reject.

A chat teacher gets one prompt a task (JSON examples where it takes a schema). A base (completion) teacher
continues an input-first text prompt; with ``instance_demos="similar"`` its demonstrations are the seed tasks
most similar to the task. The embedded base model writes one example and moves on to a new "Task:";
``instance_samples`` > 1 asks each task that many times and pools the examples of all its answers before
cleaning. Neither is the default: neither gave more rows a task on the embedded teacher
(docs/benchmarks.md, "Better rows from the same teacher").
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Callable

from . import prompts as P
from ..data.filters import clean_instances, task_reason
from ..data.similarity import RougeIndex
from .parsing import parse_instances
from ..teachers import iter_complete

INSTANCE_TOKENS = 256   # token limit of one instance answer


def structured(teacher, schema: dict | None) -> dict:
    """``{"schema": schema}`` for a teacher that takes a JSON schema (openai chat), else nothing."""
    return {"schema": schema} if schema is not None and getattr(teacher, "structured", False) else {}


def samples_for(teacher, cfg) -> int:
    """Answers asked per task (``cfg.instance_samples``; 1, the default, as measured)."""
    return cfg.instance_samples


def seed_index(seeds: list[dict], tokenizer: str = "rouge") -> RougeIndex:
    """A ROUGE-L index of the seed instructions, in ``seeds`` order, that scores every overlap (floor 0)."""
    index = RougeIndex(1.0, tokenizer, floor=0.0)
    for t in seeds:
        index.add(t["instruction"])
    return index


def instance_prompts(teacher, cfg, rng: random.Random, seeds: list[dict], cands, labels) -> list:
    """One prompt per task. Base teachers with ``instance_demos="similar"``: each task's demos are the seed
    tasks nearest it (the template's fixed head stays shared, so llama.cpp prefills it once). Otherwise the
    demos are drawn once per round for each kind, as the paper's instance prompt is one fixed text."""
    chat = teacher.is_chat
    if not chat and cfg.instance_demos == "similar":
        index = seed_index(seeds, cfg.tokenizer)
        demos = [P.similar_demos(index, seeds, c.instruction, classification=y) for c, y in zip(cands, labels)]
    else:
        fixed = {y: P.pick_demos(rng, seeds, classification=y) for y in (False, True)}
        demos = [fixed[y] for y in labels]
    return [P.instance_prompt(c.instruction, d, classification=y, chat=chat, count=cfg.instances)
            for c, d, y in zip(cands, demos, labels)]


def repeat_penalty(teacher, value: float, answers):
    """``answers``, drawn with the teacher's repeat penalty set to ``value`` (teachers with one: llama.cpp)."""
    old = getattr(teacher, "repeat_penalty", None)
    if old is None:
        yield from answers
        return
    teacher.repeat_penalty = value
    try:
        yield from answers
    finally:
        teacher.repeat_penalty = old


def instance_kw(teacher, cfg) -> dict:
    """The instance requests' token limit, stops and sampling."""
    return dict(max_tokens=min(cfg.max_tokens, INSTANCE_TOKENS), stop=P.instance_stop(chat=teacher.is_chat,
                count=cfg.instances), temperature=cfg.instance_temperature, top_p=cfg.instance_top_p)


def _iter_answers(teacher, cfg, built: list, labels: list[bool], schemas: dict, progress: str):
    """``(index, Completion)`` per prompt of ``built`` as answers arrive; one call per kind of task when the
    teacher takes a JSON schema (classification answers label first), else one call."""
    kw = dict(instance_kw(teacher, cfg), progress=progress)
    if not structured(teacher, schemas.get(False, schemas.get(True))):
        yield from iter_complete(teacher, built, **kw)
        return
    for y, schema in schemas.items():
        idx = [i for i, lab in enumerate(labels) if lab == y]
        for j, out in iter_complete(teacher, [built[i] for i in idx], **kw, schema=schema):
            yield idx[j], out


def pooled(outs: list, *, classification: bool, chat: bool) -> tuple[list[dict], Counter]:
    """The instances parsed from all of one task's answers, in answer order, and the parse rejects."""
    items, dropped = [], Counter()
    for out in outs:
        parsed = parse_instances(out.text, classification=classification, finish_reason=out.finish_reason,
                                 prefix="" if chat else P.instance_prefix(classification))
        dropped.update(reason for _, reason in parsed.rejected)
        items += parsed.items
    return items, dropped


def add_instances(teacher, cfg, rng: random.Random, seeds: list[dict], cands: list, labels: list[bool],
                  keep: Callable, reject: Callable, dropped: Counter, label: str,
                  answered: Callable = lambda: None, record: Callable = lambda stage, c: None) -> None:
    """Ask for every task's instances at once; parse, clean, then ``keep`` or ``reject`` each task as its
    last answer arrives (no task waits for a slower one). ``answered`` runs after each answer."""
    chat, n = teacher.is_chat, samples_for(teacher, cfg)
    built = [p for p in instance_prompts(teacher, cfg, rng, seeds, cands, labels) for _ in range(n)]
    if cfg.budget is not None:
        cfg.budget.check(teacher, built, instance_kw(teacher, cfg)["max_tokens"])  # raises; nothing is sent
    schemas = {y: P.instance_schema(y, cfg.instances) for y in set(labels)}
    answers = _iter_answers(teacher, cfg, built, [y for y in labels for _ in range(n)], schemas,
                            f"{label} instances")
    if cfg.budget is not None:
        answers = cfg.budget.track(built, answers)
    got: dict[int, dict] = {}
    for k, out in repeat_penalty(teacher, cfg.instance_repeat_penalty, answers):
        answered()  # the spend is on disk before anything else happens
        i = k // n
        got.setdefault(i, {})[k % n] = (out, record("instances", out))
        if len(got[i]) < n:
            continue
        answers_of = got.pop(i)
        outs, ids = zip(*(answers_of[j] for j in range(n)))
        cand, y = cands[i], labels[i]
        cand.responses = {**(cand.responses or {}), "instances": ids[0] if n == 1 else list(ids)}
        items, why_parse = pooled(list(outs), classification=y, chat=chat)
        dropped.update(why_parse)
        cand.instances, why = clean_instances(items, cfg.instances, cand.instruction)
        cand.error = next((o.error for o in outs if o.error), None)
        dropped.update(why)
        (keep(cand, y) if cand.instances else reject(cand, task_reason(why)))
