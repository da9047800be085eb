"""What a `generate` run costs: a plan before anything is sent, and a cap while it runs.

- ``plan_rounds`` builds each planned round's real prompts (the same builders and seeded
  sampling as ``generate.propose``) and counts their tokens with the teacher's own
  tokenizer where it is local, else with a stated approximation (characters / 4).
  It gives a range: low = only the instruction requests, with empty answers; high =
  every instruction the prompts ask for passes screening and every answer runs to its
  token limit.
- ``Budget`` bounds the whole run's recorded cost (resumed runs included): before each
  teacher call, ``check`` prices the call's worst case (its prompts' token bound plus
  ``max_tokens`` per request) and raises :class:`BudgetReached` rather than send a call
  that could take the total over the cap.
"""
from __future__ import annotations

import json
import math
import random

from . import prompts as P
from ..data.records import InputError
from ..teachers import Usage
from .instances import seed_index

CHARS_PER_TOKEN = 4      # the approximation when the teacher's tokenizer is not local
MESSAGE_TOKENS = 4       # chat formatting around each message (role, separators)
RATIO_MARGIN = 1.5       # the cap's prompt bound: 1.5 x the tokens-per-character the server reported so far


class BudgetReached(Exception):
    """The next teacher call could take the run's cost over ``--max-cost``; nothing of it was sent."""


def price(prompt_tokens: float, completion_tokens: float, price_in: float, price_out: float) -> float:
    """Dollars at prices per 1M tokens."""
    return prompt_tokens / 1e6 * price_in + completion_tokens / 1e6 * price_out


def recorded_cost(stats: dict, price_in: float, price_out: float) -> float | None:
    """Finished rounds' cost plus the running round's usage so far; None when some usage went unreported."""
    rows = [*(stats.get("rounds") or []), stats.get("in_progress") or {}]
    if any(r.get("unreported") for r in rows):
        return None
    total = 0.0
    for r in stats.get("rounds") or []:
        cost = r.get("cost_usd")
        total += price(r.get("prompt_tokens", 0), r.get("completion_tokens", 0), price_in, price_out) \
            if cost is None else cost
    prog = stats.get("in_progress") or {}
    return total + price(prog.get("prompt_tokens", 0), prog.get("completion_tokens", 0), price_in, price_out)


def cost_text(value, row: dict) -> str:
    """'$0.0123'; 'unknown' when some answers of ``row`` (a stats round or total) came without token
    usage (``unreported``), never $0; '-' without prices."""
    if row.get("unreported"):
        return "unknown"
    return "-" if value is None else f"${value:.4f}"


def round_note(row: dict, stats: dict) -> str:
    """The live per-round line's tokens and cost, with the run's total against the cap."""
    total = stats.get("total") or {}
    text = (f"; tokens {row['prompt_tokens']:,} in / {row['completion_tokens']:,} out, "
            f"cost {cost_text(row['cost_usd'], row)}")
    cap = (stats.get("budget") or {}).get("max_cost_usd")
    if cap is not None:
        text += f" (run {cost_text(total.get('cost_usd'), total)} of the ${cap:.4f} cap)"
    if row.get("unreported"):
        text += f" ({row['unreported']} answer(s) came without token usage)"
    return text


# --------------------------------------------------------------------------- the cap


def _text(prompt) -> str:
    return prompt if isinstance(prompt, str) else "".join(m["content"] for m in prompt)


def _messages(prompt) -> int:
    return 1 if isinstance(prompt, str) else len(prompt)


class Budget:
    """``--max-cost``: ``check`` before every teacher call; ``stats['budget']`` records the cap and spend."""

    def __init__(self, cap: float, price_in: float, price_out: float, stats: dict, usage=None):
        """``stats``: the run's (read back on resume); ``usage``: the teacher's counters now (default: zero)."""
        if not cap > 0:
            raise ValueError("the cap must be above zero")
        self.cap, self.price_in, self.price_out = cap, price_in, price_out
        old = stats.get("budget") or {}
        recorded = recorded_cost(stats, price_in, price_out)
        if recorded is None and old.get("spent_bound_usd") is None:
            raise InputError("--max-cost", None, "this run's cost so far is unknown (its server sent answers "
                                                 "without token usage), so no cap can bound it; resume without it")
        # with no usage from the server, an earlier invocation's bound is all we know
        self.base = recorded if recorded is not None else float(old["spent_bound_usd"])
        self.start = (usage or Usage()).snapshot()
        self.sent_bound = 0.0   # worst-case cost of the calls this process sent
        self.chars = 0          # prompt characters this process sent
        self.stats = stats
        # spent_bound_usd: the worst case of every call sent, what counts when a server reports no usage
        stats["budget"] = {"max_cost_usd": cap, "price_in": price_in, "price_out": price_out,
                           "cost_usd": recorded, "spent_bound_usd": self.base, "reached": False}

    def spent(self, teacher) -> float:
        """Dollars spent by the run so far: reported usage, or the sent calls' bound when some is missing."""
        d = teacher.usage - self.start
        if d.unreported:
            return self.base + self.sent_bound
        return self.base + price(d.prompt_tokens, d.completion_tokens, self.price_in, self.price_out)

    def prompt_bound(self, teacher, prompts) -> int:
        """At most this many prompt tokens: UTF-8 bytes (a byte-level BPE never does worse), or 1.5x the
        tokens per character the server reported so far, whichever is smaller; plus chat formatting."""
        chars = sum(len(_text(p)) for p in prompts)
        nbytes = sum(len(_text(p).encode("utf-8")) for p in prompts)
        d = teacher.usage - self.start
        reported = d.prompt_tokens
        bound = nbytes
        if reported and self.chars and not d.unreported:
            bound = min(nbytes, math.ceil(reported / self.chars * RATIO_MARGIN * chars))
        return bound + MESSAGE_TOKENS * sum(_messages(p) for p in prompts)

    def check(self, teacher, prompts: list, max_tokens: int) -> None:
        """Raise BudgetReached when sending ``prompts`` could take the total over the cap."""
        if not prompts:
            return
        worst = price(self.prompt_bound(teacher, prompts), len(prompts) * max_tokens, self.price_in,
                      self.price_out)
        spent = self.spent(teacher)
        record = self.stats["budget"]
        if spent + worst > self.cap:
            record["reached"] = True
            raise BudgetReached(f"budget reached: ${spent:.4f} spent of the ${self.cap:.4f} --max-cost, and the "
                                f"next {len(prompts)} request(s) could cost up to ${worst:.4f}")
        self.sent_bound += worst
        self.chars += sum(len(_text(p)) for p in prompts)
        record["spent_bound_usd"] = round(self.base + self.sent_bound, 6)


# --------------------------------------------------------------------------- the dry run


class TokenCounter:
    """Prompt tokens by the teacher's own tokenizer when it is local, else characters / 4."""

    def __init__(self, spec: str, endpoint: str = "chat"):
        from ..teachers import parse_spec

        kind, target = parse_spec(spec)
        self.tokenizer = None
        if kind == "openai":
            self.is_chat = endpoint == "chat"
            self.note = (f"approximate: characters / {CHARS_PER_TOKEN} (+{MESSAGE_TOKENS} per chat message); "
                         f"{spec}'s tokenizer is not local")
            return
        try:
            self.tokenizer = _local_tokenizer(kind, target)
        except (OSError, ValueError) as e:
            from ..models import load_error

            raise load_error(target, e) from None
        # as make_teacher: packaged models are chat only for smollm2, GGUF files always, hf: by template
        self.is_chat = endpoint == "chat" and (target == "smollm2" if kind == "local" else kind == "gguf" or
                                               bool(getattr(self.tokenizer, "chat_template", None)))
        self.note = f"counted with {spec}'s own tokenizer"

    def __call__(self, prompt) -> int:
        tok = self.tokenizer
        if tok is None:
            return math.ceil(len(_text(prompt)) / CHARS_PER_TOKEN) + \
                (0 if isinstance(prompt, str) else MESSAGE_TOKENS * len(prompt))
        if isinstance(prompt, str):
            return len(tok(prompt, add_special_tokens=True)["input_ids"])
        text = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])


def _local_tokenizer(kind: str, target: str):
    """A local teacher's tokenizer: its folder, a packaged model's converted folder when cached, or the
    GGUF file itself (transformers reads GGUF tokenizers; about 30 s of CPU for the embedded Gemma)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from ..models import _gguf_sources, converted_dir, packaged_gguf, resolve_model

    if kind == "hf":
        return AutoTokenizer.from_pretrained(resolve_model(target))
    if kind == "local":
        folder = converted_dir(_gguf_sources()[target][0])
        if (folder / "tokenizer_config.json").exists():
            return AutoTokenizer.from_pretrained(folder)
    path = packaged_gguf(target) if kind == "local" else Path(target).expanduser()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def _round_prompts(cfg, seeds: list[dict], pool: list[dict], round_no: int, chat: bool, limits: dict):
    """[(prompt, max_tokens, certain)] for one round, built as `generate` builds them.

    Instruction prompts are exact (same seeded sampling); classification and instance prompts
    stand in a seed instruction for each candidate the instruction prompts ask for.
    ``limits``: the token limits of the classify and instance requests (``generate``'s constants)."""
    rng = random.Random(f"{cfg.seed}:{round_no}")
    out = []
    for _ in range(cfg.prompts_per_round):
        if cfg.style == "alpaca":
            demos = P.sample_context(rng, [t for t in seeds if t.get("instances")], pool, n=P.ALPACA_DEMOS,
                                     from_pool=1)
            out.append((P.alpaca_prompt(demos, chat=chat), max(cfg.max_tokens, 1024), True))
        else:
            demos = P.sample_context(rng, [t["instruction"] for t in seeds], [t["instruction"] for t in pool])
            out.append((P.instruction_prompt(demos, chat=chat), cfg.max_tokens, True))
    if cfg.style == "alpaca":
        return out
    stand_in = random.Random(f"{cfg.seed}:{round_no}:plan")
    samples = cfg.instance_samples
    index = seed_index(seeds, cfg.tokenizer) if not chat and cfg.instance_demos == "similar" else None
    for k in range(cfg.prompts_per_round * P.NEW_PER_PROMPT):
        task = seeds[k % len(seeds)]
        cls = bool(task.get("is_classification"))
        if cfg.classify == "teacher":  # "rules" asks the teacher nothing
            out.append((P.classify_prompt(task["instruction"], chat=chat), limits["classify"], False))
        demos = (P.similar_demos(index, seeds, task["instruction"], classification=cls) if index is not None
                 else P.pick_demos(stand_in, seeds, classification=cls))
        prompt = P.instance_prompt(task["instruction"], demos, classification=cls, chat=chat, count=cfg.instances)
        out += [(prompt, min(cfg.max_tokens, limits["instances"]), False)] * samples
    return out


def plan_rounds(cfg, seeds: list[dict], pool: list[dict], first: int, count: TokenCounter,
                limits: dict) -> list[dict]:
    """Per planned round: requests, prompt tokens and completion tokens as (low, high)."""
    rows = []
    for r in range(first, cfg.rounds + 1):
        built = _round_prompts(cfg, seeds, pool, r, count.is_chat, limits)
        sure = [(count(p), m) for p, m, certain in built if certain]
        maybe = [(count(p), m) for p, m, certain in built if not certain]
        rows.append({"round": r, "requests": (len(sure), len(sure) + len(maybe)),
                     "prompt_tokens": (sum(t for t, _ in sure), sum(t for t, _ in sure + maybe)),
                     "completion_tokens": (0, sum(m for _, m in sure + maybe))})
    return rows


def _span(pair, fmt="{:,}") -> str:
    lo, hi = pair
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def plan_lines(cfg, rows: list[dict], count: TokenCounter, *, price_in=None, price_out=None,
               spent: float | None = None, cap: float | None = None) -> list[str]:
    """The dry run's screen: a line per round and the total, each a low-high range."""
    priced = price_in is not None and price_out is not None
    head = f"{'round':>5} {'requests':>12} {'prompt tokens':>20} {'completion tokens':>20} {'cost $':>18}"
    lines = [f"dry run: nothing is sent and nothing is written. teacher {cfg.teacher}, "
             f"{cfg.prompts_per_round} instruction prompt(s) per round, --max-tokens {cfg.max_tokens}",
             f"tokens: {count.note}", head]

    def cost(row):
        if not priced:
            return "-"
        lo = price(row["prompt_tokens"][0], row["completion_tokens"][0], price_in, price_out)
        hi = price(row["prompt_tokens"][1], row["completion_tokens"][1], price_in, price_out)
        return _span((lo, hi), "{:.4f}")

    def line(name, row):
        return (f"{name:>5} {_span(row['requests']):>12} {_span(row['prompt_tokens']):>20} "
                f"{_span(row['completion_tokens']):>20} {cost(row):>18}")

    lines += [line(str(r["round"]), r) for r in rows]
    if rows:
        total = {k: (sum(r[k][0] for r in rows), sum(r[k][1] for r in rows))
                 for k in ("requests", "prompt_tokens", "completion_tokens")}
        lines.append(line("all", total))
    lines.append("low: only the instruction requests, with empty answers; high: every instruction the prompts "
                 f"ask for ({P.NEW_PER_PROMPT} each) passes screening and every answer runs to its token limit"
                 if cfg.style == "selfinstruct" else
                 "low: empty answers; high: every answer runs to its token limit")
    if not priced:
        lines.append("cost: pass --price-in and --price-out (USD per 1M tokens) to price it")
    if spent is not None:
        lines.append(f"already recorded for this run: ${spent:.4f}" + (f" of the ${cap:.4f} cap" if cap else ""))
    return lines


def dry_run_lines(cfg, state, limits: dict, *, price_in=None, price_out=None, cap=None) -> list[str]:
    """`generate --dry-run`: plan the rounds still to run in ``state``'s folder (nothing is written).
    ``limits``: ``{"classify": tokens, "instances": tokens}``, generate's limits for those requests."""
    count = TokenCounter(cfg.teacher, cfg.endpoint)
    rows = plan_rounds(cfg, state.seeds, state.pool, state.next_round, count, limits)
    spent = None
    if state.resumed and price_in is not None:
        spent = recorded_cost(state.stats, price_in, price_out)
    return plan_lines(cfg, rows, count, price_in=price_in, price_out=price_out, spent=spent, cap=cap)


def check_cost_options(max_cost, price_in, price_out) -> tuple[str, str] | None:
    """(option, problem) with --max-cost/--price-in/--price-out, or None."""
    if (price_in is None) != (price_out is None):
        return "--price-in", "goes with --price-out (USD per 1M prompt and completion tokens)"
    if max_cost is not None:
        if not max_cost > 0 or not math.isfinite(max_cost):
            return "--max-cost", f"must be a positive number of dollars, not {json.dumps(max_cost)}"
        if price_in is None:
            return "--max-cost", "needs --price-in and --price-out (USD per 1M prompt and completion tokens)"
    return None
