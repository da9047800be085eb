"""The Self-Instruct bootstrap loop: propose, screen, classify, add instances, keep.

Each stage is its own function; :class:`~selfinstruct.generation.journal.RunState` owns the
files. One round (``run_round``):

1. ``propose``: ``prompts_per_round`` prompts of 8 shown instructions (6 seeds +
   2 from the pool once it has some), parsed into candidates;
2. ``screen`` (``screen.py``): heuristics, then ROUGE-L against the seeds and everything kept;
3. ``classify``: a few-shot Yes/No prompt per survivor (``classify="teacher"``), or
   the cue-word rule ``filters.looks_like_classification`` (``"rules"``, the local
   default: the embedded model's Yes/No is no better than chance);
4. ``add_instances`` (``instances.py``): input-first (or output-first for classification)
   examples, cleaned by ``clean_instances``; a task left with none is rejected.

``style="alpaca"`` proposes whole tasks (instruction, input, output), about 20 a
request, and skips steps 3 and 4 but for cleaning.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable

from . import prompts as P
from .budget import cost_text, instruction_tokens, round_note
from ..data.filters import (clean_instances, copied_examples, looks_like_classification, repeated_outputs,
                            task_reason)
from .instances import INSTANCE_TOKENS, add_instances, structured
from .journal import USAGE_KEYS, RunState, total_of
from .parsing import parse_alpaca, parse_instructions, parse_yes_no
from .screen import Screen, build_screen, screen
from ..teachers import Usage, estimate_cost, in_order, iter_complete

STYLES = ("selfinstruct", "alpaca")
MAX_INSTANCES = 5
# Defaults follow the teacher (docs/benchmarks.md, "generate defaults"). API teachers: the paper's
# sampling and 20 requests a round, as its scripts batch. Local teachers: what fills about a minute of
# a 2-core CPU on llama.cpp, with the sampling that kept the most tasks per 1,000 generated tokens.
DEFAULTS = {
    "api": {"selfinstruct": 20, "alpaca": 5, "temperature": 0.7, "top_p": 0.5, "repeat_penalty": 1.0,
            "instance_temperature": 0.7, "instance_top_p": 0.5, "instance_repeat_penalty": 1.0, "classify": "teacher"},
    "local": {"selfinstruct": 16, "alpaca": 4, "temperature": 1.0, "top_p": 0.9, "repeat_penalty": 1.0,
              "instance_temperature": 0.7, "instance_top_p": 0.5, "instance_repeat_penalty": 1.2, "classify": "rules"},
}


def teacher_kind(spec: str | None) -> str:
    """'api' for openai:MODEL, else 'local' (round sizes and sampling defaults differ)."""
    return "api" if (spec or "").startswith("openai:") else "local"


def penalty_problem(spec: str | None, repeat_penalty, instance_repeat_penalty) -> tuple[str, str] | None:
    """(option, problem) when a repeat penalty is asked of a teacher that cannot apply it (an API), else None."""
    if teacher_kind(spec) != "api":
        return None
    for option, value in (("--repeat-penalty", repeat_penalty), ("--instance-repeat-penalty", instance_repeat_penalty)):
        if value not in (None, 1.0):
            return option, "applies to local teachers only (an OpenAI-compatible API takes none); leave it out"
    return None


CLASSIFY_TOKENS = 3
TOKEN_LIMITS = {"classify": CLASSIFY_TOKENS, "instances": INSTANCE_TOKENS}  # what budget plans with


@dataclass
class GenerateConfig:
    rounds: int = 5
    num_instructions: int | None = None  # stop once this many tasks are kept (or after `rounds`)
    teacher: str = "embedded"
    style: str = "selfinstruct"
    prompts_per_round: int | None = None
    instances: int = MAX_INSTANCES
    threshold: float = 0.7
    seed: int = 0
    max_tokens: int = 512
    temperature: float | None = None  # None: the teacher kind's default (DEFAULTS)
    top_p: float | None = None
    repeat_penalty: float | None = None  # local teachers only (both engines); API teachers: 1.0
    instance_temperature: float | None = None  # the instance stage's sampling (None: the kind's default)
    instance_top_p: float | None = None
    instance_repeat_penalty: float | None = None
    classify: str | None = None  # "teacher" (few-shot Yes/No) or "rules"; None: the teacher kind's default
    instance_samples: int = 1  # answers per task, their examples pooled before cleaning
    instance_demos: str = "random"  # base teachers' instance demos: drawn once a round, or "similar" (nearest seeds)
    endpoint: str = "chat"
    base_url: str | None = None
    seeds: str | None = None
    price_in: float | None = None
    price_out: float | None = None
    decontaminate: tuple = ("packaged",)  # eval files a candidate must not leak (decontam.py); () = off
    tokenizer: str = "rouge"  # ROUGE-L words: rouge-score's, or "unicode" for any script (as `filter`)
    blacklist: tuple | None = None  # words that mark tasks a text model cannot do; None: filters' default
    budget: object = None  # a budget.Budget (--max-cost): checked before every teacher call

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}")
        if self.instance_demos not in ("similar", "random"):
            raise ValueError("instance_demos must be 'similar' or 'random'")
        if self.instance_samples < 1:
            raise ValueError("instance_samples must be at least 1")
        if self.classify not in (None, "teacher", "rules"):
            raise ValueError("classify must be 'teacher' or 'rules'")
        if not 1 <= self.instances <= MAX_INSTANCES:
            raise ValueError(f"instances must be between 1 and {MAX_INSTANCES}")
        if not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        if self.rounds < 1 or (self.prompts_per_round is not None and self.prompts_per_round < 1):
            raise ValueError("rounds and prompts_per_round must be at least 1")
        if self.num_instructions is not None and self.num_instructions < 1:
            raise ValueError("num_instructions must be at least 1")
        self.teacher = self.teacher or "embedded"
        defaults = DEFAULTS[teacher_kind(self.teacher)]
        if self.prompts_per_round is None:
            self.prompts_per_round = defaults[self.style]
        for key in ("temperature", "top_p", "repeat_penalty", "instance_temperature", "instance_top_p",
                    "instance_repeat_penalty", "classify"):
            if getattr(self, key) is None:
                setattr(self, key, defaults[key])

    def run_json(self) -> dict:
        """What run.json keeps (never an API key: there is none in here)."""
        return {k: v for k, v in asdict(self).items() if k not in ("price_in", "price_out", "budget")}


@dataclass
class Candidate:
    instruction: str
    instances: list | None = None  # alpaca style: proposed with its one instance
    similarity: float | None = None
    most_similar: str | None = None
    error: str | None = None  # why the teacher request behind it failed for good
    contamination: dict | None = None  # the eval row it leaks and the rule (decontam.Hit.as_fields)
    responses: dict | None = None  # stage -> id of the raw teacher answer in responses.jsonl


# --------------------------------------------------------------------------- teacher stages


def _complete(teacher, prompts, cfg: GenerateConfig, *, max_tokens, stop, progress, temperature=None,
              answered: Callable = lambda: None, schema: dict | None = None):
    """Every answer, in prompt order; ``answered`` runs as each arrives (to checkpoint the spend)."""
    if cfg.budget is not None:
        cfg.budget.check(teacher, prompts, max_tokens)  # raises budget.BudgetReached; nothing is sent
    answers = iter_complete(teacher, prompts, max_tokens=max_tokens, stop=stop, progress=progress, top_p=cfg.top_p,
                            temperature=cfg.temperature if temperature is None else temperature,
                            **structured(teacher, schema))
    if cfg.budget is not None:
        answers = cfg.budget.track(prompts, answers)
    return in_order(answers, len(prompts), answered)


def propose(teacher, cfg: GenerateConfig, rng: random.Random, seeds: list[dict], pool: list[dict], label: str,
            answered: Callable = lambda: None, record: Callable = lambda stage, c: None):
    """Ask for new tasks; returns (candidates, [(garbage Candidate, reason)])."""
    chat = teacher.is_chat
    requests = P.request_prompts(rng, cfg.style, cfg.prompts_per_round, seeds, pool, chat=chat)
    built, shown = [p for p, _ in requests], [s for _, s in requests]
    stop = P.alpaca_stop(chat=chat) if cfg.style == "alpaca" else P.instruction_stop(P.IN_CONTEXT, chat=chat)
    max_tokens = instruction_tokens(cfg)
    schema = P.instruction_schema(P.CHAT_TOPICS) if cfg.style != "alpaca" and P.JSON_INSTRUCTIONS else None
    outs = _complete(teacher, built, cfg, max_tokens=max_tokens, stop=stop, progress=f"{label} instructions",
                     answered=answered, schema=schema)
    cands, garbage = [], []
    for texts, c in zip(shown, outs):
        n, source, got = len(texts), {"instructions": record("instructions", c)}, []
        if cfg.style == "alpaca":
            parsed = parse_alpaca(c.text, finish_reason=c.finish_reason,
                                  prefix="" if chat else f"{n + 1}. Instruction:")
            got = [Candidate(t["instruction"], [{"input": t["input"], "output": t["output"]}],
                             responses=dict(source)) for t in parsed.items]
        else:
            parsed = parse_instructions(c.text, finish_reason=c.finish_reason, prefix="" if chat else f"{n + 1}.")
            got = [Candidate(text, responses=dict(source)) for text in parsed.items]
        for cand, copied in zip(got, copied_examples([g.instruction for g in got], texts)):
            (garbage.append((cand, "copied_example")) if copied else cands.append(cand))  # shown in its prompt
        garbage += [(Candidate(text, error=c.error, responses=dict(source)), reason) for text, reason in parsed.rejected]
    return cands, garbage


def classify(teacher, cfg: GenerateConfig, cands: list[Candidate], label: str,
             answered: Callable = lambda: None) -> list[bool]:
    """Is each candidate a classification task? The teacher's greedy Yes/No (garbage reads as No),
    or with ``cfg.classify == "rules"`` the cue-word rule, which asks no teacher."""
    if not cands:
        return []
    if cfg.classify == "rules":
        return [looks_like_classification(c.instruction) for c in cands]
    chat = teacher.is_chat
    outs = _complete(teacher, [P.classify_prompt(c.instruction, chat=chat) for c in cands], cfg,
                     max_tokens=CLASSIFY_TOKENS, stop=None if chat else ["\n"], progress=f"{label} classify",
                     temperature=0.0, answered=answered)
    return [parse_yes_no(c.text) for c in outs]


# --------------------------------------------------------------------------- the loop


def _usage(teacher, before, carried: dict) -> dict:
    now = (teacher.usage - before).as_dict()
    return {k: int(now.get(k, 0)) + carried.get(k, 0) for k in USAGE_KEYS}


def run_round(teacher, cfg: GenerateConfig, state: RunState, gate: Screen, round_no: int) -> dict:
    """One round, written as it goes; returns its stats row."""
    carried = state.carried_usage(round_no)  # from an interrupted attempt at this round
    t0, before = time.monotonic() - carried["seconds"], teacher.usage.snapshot()
    label = f"round {round_no}/{cfg.rounds}"
    rng = random.Random(f"{cfg.seed}:{round_no}")
    seeds = state.seeds
    dropped: Counter = Counter()

    def checkpoint(sync: bool = True):
        state.checkpoint(round_no, _usage(teacher, before, carried), time.monotonic() - t0, sync=sync)

    def answered():  # after every teacher answer: its spend is on disk before anything else happens
        checkpoint(sync=False)

    def record(stage: str, c) -> str:  # the raw answer, for auditing (responses.jsonl)
        return state.add_response(round_no, stage, c.text, c.finish_reason)

    def reject(cand: Candidate, reason: str) -> None:
        state.add_rejected({"instruction": cand.instruction, "reason": reason, "round": round_no,
                            "similarity": cand.similarity, "most_similar": cand.most_similar,
                            "error": cand.error, "responses": cand.responses, **(cand.contamination or {})})

    def keep(cand: Candidate, is_cls: bool) -> None:
        task = {"instruction": cand.instruction, "instances": cand.instances, "is_classification": is_cls,
                "round": round_no, "teacher": teacher.name, "similarity": cand.similarity,
                "most_similar": cand.most_similar, "responses": cand.responses}
        if state.add_task(task):
            gate.admit(cand.instruction)
        else:
            reject(cand, "exact_duplicate")

    try:
        cands, garbage = propose(teacher, cfg, rng, seeds, state.pool, label, answered, record)
        for cand, reason in garbage:
            reject(cand, reason)
        kept, rejected = screen(cands, gate)
        for cand, reason in rejected:
            reject(cand, reason)
        checkpoint()
        if cfg.style == "alpaca":
            for cand in kept:
                cand.instances, why = clean_instances(cand.instances, cfg.instances, cand.instruction)
                dropped.update(why)
                if not cand.instances:
                    reject(cand, task_reason(why))
            kept = [c for c in kept if c.instances]
            for cand, repeated in zip(kept, repeated_outputs([vars(c) for c in kept])):
                (reject(cand, repeated) if repeated else keep(cand, False))
        else:
            labels = classify(teacher, cfg, kept, label, answered)
            checkpoint()
            add_instances(teacher, cfg, rng, seeds, kept, labels, keep, reject, dropped, label, answered, record)
    except BaseException:
        checkpoint()  # a crash or a lost server keeps this round's teacher usage (retries, failures)
        raise
    usage = _usage(teacher, before, carried)
    cost = estimate_cost(Usage(**usage), cfg.price_in, cfg.price_out)
    return state.finish_round(round_no, usage, time.monotonic() - t0, cost, dropped)


def run(teacher, cfg: GenerateConfig, state: RunState, *, echo: Callable[[str], None] = print,
        decontam=None) -> dict:
    """Run rounds ``state.next_round .. cfg.rounds``; returns the stats. ``decontam``: an index
    already loaded from ``cfg.decontaminate`` (else it is loaded here)."""
    if decontam is None and cfg.decontaminate:
        from ..data.decontam import load_index
        decontam = load_index(cfg.decontaminate)
    state.start(teacher.name)
    gate = build_screen(cfg, state, decontam)
    try:
        if state.next_round > cfg.rounds:
            echo(f"{state.out}: all {cfg.rounds} round(s) already done; pass a larger --rounds to continue")
        elif state.resumed:
            echo(f"resuming {state.out} at round {state.next_round} ({len(state.tasks)} tasks kept so far)")
        for r in range(state.next_round, cfg.rounds + 1):
            if target_reached(cfg, state):
                break
            row = run_round(teacher, cfg, state, gate, r)
            echo(f"round {r}: {row['kept']} kept of {row['candidates']} candidates, {row['instances']} instances, "
                 f"{row['seconds']:.0f}s" + round_note(row, state.stats))
    finally:
        state.close()
    return state.stats


def target_reached(cfg: GenerateConfig, state: RunState) -> bool:
    """``--num-instructions N``: N tasks kept (a round that crosses N finishes; its tasks are kept)."""
    return cfg.num_instructions is not None and len(state.tasks) >= cfg.num_instructions


def target_line(cfg: GenerateConfig, state: RunState) -> str | None:
    """Where the run stands against ``--num-instructions`` (None without it)."""
    if cfg.num_instructions is None:
        return None
    n, goal = len(state.tasks), cfg.num_instructions
    if n >= goal:
        return f"{n} tasks kept: --num-instructions {goal} reached"
    return (f"{n} of --num-instructions {goal} tasks kept after {state.next_round - 1} round(s); "
            "run the same command with a larger --rounds to continue")


def summary(stats: dict, state: RunState) -> str:
    """One screen: a line per round, the totals, and where the files are."""
    head = f"{'round':>5} {'cand':>6} {'kept':>5} {'inst':>5} {'tok in':>8} {'tok out':>8} {'cost $':>8} {'sec':>6}  rejected"
    lines = [f"teacher {stats.get('teacher')}, {stats.get('seeds')} seed tasks", head]

    def line(name, r):
        cost = cost_text(r["cost_usd"], r).lstrip("$")
        top = ", ".join(f"{k} {v}" for k, v in sorted(r["rejected"].items(), key=lambda kv: -kv[1])[:4])
        return (f"{name:>5} {r['candidates']:>6} {r['kept']:>5} {r['instances']:>5} {r['prompt_tokens']:>8} "
                f"{r['completion_tokens']:>8} {cost:>8} {r['seconds']:>6.0f}  {top}")

    rounds = stats.get("rounds", [])
    shown = rounds if len(rounds) <= 12 else rounds[:3] + rounds[-8:]
    lines += [line(str(r["round"]), r) for r in shown]
    if rounds:
        t = total_of(rounds)
        lines.append(line("all", t))
        if t["failures"] or t["retries"]:
            lines.append(f"teacher: {t['failures']} request(s) failed for good (rejected.jsonl rows with an "
                         f"'error'), {t['retries']} retried")
    lines.append(f"{len(state.tasks)} tasks -> {state.paths['tasks']}")
    lines.append(f"{sum(len(t['instances']) for t in state.tasks)} training rows -> {state.paths['data']} "
                 f"(as chat messages: {state.paths['messages'].name})")
    lines.append(f"{len(state.rejected)} rejected -> {state.paths['rejected']}; stats -> {state.paths['stats']}")
    return "\n".join(lines)
