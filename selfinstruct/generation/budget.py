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


ALPACA_MIN_TOKENS = 1024  # an alpaca-style request asks for ~20 whole tasks: at least this many tokens


def instruction_tokens(cfg) -> int:
    """The token limit of a round's instruction-generation requests (``--max-tokens``, raised for alpaca)."""
    return max(cfg.max_tokens, ALPACA_MIN_TOKENS) if cfg.style == "alpaca" else cfg.max_tokens


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
        self.chars = 0          # prompt characters of the requests answered (the server counted their tokens)
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
        record["spent_bound_usd"] = round(self.base + self.sent_bound, 6)

    def track(self, prompts: list, answers):
        """``answers`` (``(index, Completion)`` pairs for ``prompts``) passed on, counting the characters of
        the answered prompts only: a failed request reports no tokens, so its characters would lower the
        tokens-per-character ratio that bounds later prompts."""
        for i, c in answers:
            if c.error is None:
                self.chars += len(_text(prompts[i]))
            yield i, c


# --------------------------------------------------------------------------- the dry run


class TokenCounter:
    """Prompt tokens by the teacher's own tokenizer when it is local, else characters / 4."""

    def __init__(self, spec: str, endpoint: str = "chat", trust_remote_code: bool = False):
        from ..teachers import parse_spec

        kind, target = parse_spec(spec)
        self.tokenizer = None
        if kind == "openai":
            self.is_chat = endpoint == "chat"
            self.note = (f"approximate: characters / {CHARS_PER_TOKEN} (+{MESSAGE_TOKENS} per chat message); "
                         f"{spec}'s tokenizer is not local")
            return
        try:
            self.tokenizer = _local_tokenizer(kind, target, trust_remote_code)
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


def _local_tokenizer(kind: str, target: str, trust_remote_code: bool = False):
    """A local teacher's tokenizer: its folder (custom code only with ``trust_remote_code``), a packaged
    model's converted folder when cached, or the GGUF file itself (``models.load_tokenizer``; no weights
    are read or converted)."""
    from ..models import gguf_tokenizer, load_tokenizer
    from ..teachers import gguf_file

    return (gguf_tokenizer(gguf_file(target)) if kind == "gguf"
            else load_tokenizer(target, trust_remote_code=trust_remote_code))


# The expected answer lengths of a fresh run: the paper's generated data (Wang et al. 2022, Table 1: 52,445
# instructions of 15.9 words on average, 82,439 instances, inputs of 12.7 words, outputs of 18.9) at an English
# BPE's ~1.33 tokens a word, plus a few tokens of numbering and labels per item.
PAPER_WORDS = {"instruction": 15.9, "input": 12.7, "output": 18.9}
PAPER_ROWS_PER_TASK = 82_439 / 52_445
TOKENS_PER_WORD = 1.33


def expected_answer(cfg, kind: str, limit: int) -> int:
    """Completion tokens of one answer of ``kind`` at the paper's lengths, within its token ``limit``."""
    w = {k: v * TOKENS_PER_WORD for k, v in PAPER_WORDS.items()}
    tokens = {"instructions": P.NEW_PER_PROMPT * (w["instruction"] + 3),
              "alpaca": P.ALPACA_COUNT * (w["instruction"] + w["input"] + w["output"] + 10),
              "instances": cfg.instances * (w["input"] + w["output"] + 6), "classify": 1}[kind]
    return min(limit, math.ceil(tokens))


def _round_prompts(cfg, seeds: list[dict], pool: list[dict], round_no: int, chat: bool, limits: dict):
    """[(prompt, max_tokens, certain, kind)] for one round, built as `generate` builds them.

    Instruction prompts are exact (same seeded sampling); classification and instance prompts
    stand in a seed instruction for each candidate the instruction prompts ask for.
    ``limits``: the token limits of the classify and instance requests (``generate``'s constants)."""
    rng = random.Random(f"{cfg.seed}:{round_no}")
    limit, kind = instruction_tokens(cfg), "alpaca" if cfg.style == "alpaca" else "instructions"
    out = [(p, limit, True, kind) for p, _ in P.request_prompts(rng, cfg.style, cfg.prompts_per_round, seeds, pool,
                                                                chat=chat)]
    if cfg.style == "alpaca":
        return out
    stand_in = random.Random(f"{cfg.seed}:{round_no}:plan")
    samples = cfg.instance_samples
    index = seed_index(seeds, cfg.tokenizer) if not chat and cfg.instance_demos == "similar" else None
    for k in range(cfg.prompts_per_round * P.NEW_PER_PROMPT):
        task = seeds[k % len(seeds)]
        cls = bool(task.get("is_classification"))
        if cfg.classify == "teacher":  # "rules" asks the teacher nothing
            out.append((P.classify_prompt(task["instruction"], chat=chat), limits["classify"], False, "classify"))
        demos = (P.similar_demos(index, seeds, task["instruction"], classification=cls) if index is not None
                 else P.pick_demos(stand_in, seeds, classification=cls))
        prompt = P.instance_prompt(task["instruction"], demos, classification=cls, chat=chat, count=cfg.instances)
        out += [(prompt, min(cfg.max_tokens, limits["instances"]), False, "instances")] * samples
    return out


def plan_rounds(cfg, seeds: list[dict], pool: list[dict], first: int, count: TokenCounter,
                limits: dict) -> list[dict]:
    """Per planned round: requests, prompt tokens and completion tokens as (low, high), and under
    ``expected`` the same at the paper's answer lengths with every planned request sent, and the rows
    that would keep (``rows``: every task asked for, with the paper's rows a task)."""
    rows = []
    for r in range(first, cfg.rounds + 1):
        built = _round_prompts(cfg, seeds, pool, r, count.is_chat, limits)
        sure = [(count(p), m) for p, m, certain, _ in built if certain]
        maybe = [(count(p), m) for p, m, certain, _ in built if not certain]
        tasks = cfg.prompts_per_round * (P.ALPACA_COUNT if cfg.style == "alpaca" else P.NEW_PER_PROMPT)
        rows.append({"round": r, "requests": (len(sure), len(sure) + len(maybe)),
                     "prompt_tokens": (sum(t for t, _ in sure), sum(t for t, _ in sure + maybe)),
                     "completion_tokens": (0, sum(m for _, m in sure + maybe)),
                     "expected": {"requests": len(built), "prompt_tokens": sum(t for t, _ in sure + maybe),
                                  "completion_tokens": sum(expected_answer(cfg, k, m) for _, m, _, k in built),
                                  "rows": tasks * (1 if cfg.style == "alpaca" else PAPER_ROWS_PER_TASK)}})
    return rows


def observed_rounds(rows: list[dict], stats: dict) -> str | None:
    """Replace each planned round's ``expected`` by the mean of this run's finished rounds (a resumed run's
    own answers); returns what the figure rests on, or None when no round has finished."""
    done = [r for r in stats.get("rounds") or [] if r.get("requests") and not r.get("unreported")]
    if not done:
        return None
    mean = {k: sum(r.get(k, 0) for r in done) / len(done)
            for k in ("requests", "prompt_tokens", "completion_tokens")}
    mean["rows"] = sum(r.get("instances", 0) for r in done) / len(done)
    for row in rows:
        row["expected"] = dict(mean)
    return f"the mean of this run's {len(done)} finished round(s)"


def _span(pair, fmt="{:,}") -> str:
    lo, hi = pair
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def plan_lines(cfg, rows: list[dict], count: TokenCounter, *, price_in=None, price_out=None,
               spent: float | None = None, cap: float | None = None, basis: str | None = None) -> list[str]:
    """The dry run's screen: a line per round and the total, each a low-high range beside the expected
    figure (``basis``: what it rests on; None: the paper's answer lengths)."""
    priced = price_in is not None and price_out is not None
    head = (f"{'round':>5} {'requests':>12} {'prompt tokens':>20} {'completion tokens':>20} {'cost $':>18} "
            f"{'expected ' + ('$' if priced else 'tokens'):>16}")
    limit = instruction_tokens(cfg)
    lines = [f"dry run: nothing is sent and nothing is written. teacher {cfg.teacher}, "
             f"{cfg.prompts_per_round} instruction prompt(s) per round, --max-tokens {cfg.max_tokens}"
             + (f" (alpaca-style requests: {limit:,})" if limit != cfg.max_tokens else ""),
             f"tokens: {count.note}", head]

    def expected(row) -> float:
        e = row["expected"]
        if priced:
            return price(e["prompt_tokens"], e["completion_tokens"], price_in, price_out)
        return e["prompt_tokens"] + e["completion_tokens"]

    def cost(row):
        if not priced:
            return "-"
        lo = price(row["prompt_tokens"][0], row["completion_tokens"][0], price_in, price_out)
        hi = price(row["prompt_tokens"][1], row["completion_tokens"][1], price_in, price_out)
        return _span((lo, hi), "{:.4f}")

    def line(name, row):
        shown = f"{expected(row):.4f}" if priced else f"{expected(row):,.0f}"
        return (f"{name:>5} {_span(row['requests']):>12} {_span(row['prompt_tokens']):>20} "
                f"{_span(row['completion_tokens']):>20} {cost(row):>18} {shown:>16}")

    lines += [line(str(r["round"]), r) for r in rows]
    if rows:
        total = {k: (sum(r[k][0] for r in rows), sum(r[k][1] for r in rows))
                 for k in ("requests", "prompt_tokens", "completion_tokens")}
        total["expected"] = {k: sum(r["expected"][k] for r in rows) for k in rows[0]["expected"]}
        lines.append(line("all", total))
        kept = total["expected"]["rows"]
        per_row = (f"${expected(total) / kept:.5f}" if priced else f"{expected(total) / kept:,.0f} tokens") \
            if kept else "-"
        lines.append(f"expected: {basis}; per kept row {per_row} ({kept:,.0f} rows)" if basis else
                     f"expected: every planned request sent, answers at the paper's lengths (its Table 1: "
                     f"{PAPER_WORDS['instruction']}-word instructions, {PAPER_WORDS['output']}-word outputs, at "
                     f"{TOKENS_PER_WORD} tokens a word); per kept row {per_row} if every task asked for is kept "
                     + ("(one row each" if cfg.style == "alpaca" else
                        f"with the paper's {PAPER_ROWS_PER_TASK:.2f} rows a task (")
                     + f"{kept:,.0f} rows): fewer kept rows cost more each")
    lines.append("low: only the instruction requests, with empty answers; high: every instruction the prompts "
                 f"ask for ({P.NEW_PER_PROMPT} each) passes screening and every answer runs to its token limit"
                 if cfg.style == "selfinstruct" else
                 "low: empty answers; high: every answer runs to its token limit")
    if not priced:
        lines.append("cost: pass --price-in and --price-out (USD per 1M tokens) to price it")
    if spent is not None:
        lines.append(f"already recorded for this run: ${spent:.4f}" + (f" of the ${cap:.4f} cap" if cap else ""))
    return lines


def dry_run_lines(cfg, state, limits: dict, *, price_in=None, price_out=None, cap=None,
                  trust_remote_code: bool = False) -> list[str]:
    """`generate --dry-run`: plan the rounds still to run in ``state``'s folder (nothing is written).
    ``limits``: ``{"classify": tokens, "instances": tokens}``, generate's limits for those requests;
    ``trust_remote_code``: an ``hf:`` teacher's tokenizer may run its custom code (``--trust-remote-code``)."""
    count = TokenCounter(cfg.teacher, cfg.endpoint, trust_remote_code)
    rows = plan_rounds(cfg, state.seeds, state.pool, state.next_round, count, limits)
    basis = observed_rounds(rows, state.stats)
    spent = None
    if state.resumed and price_in is not None:
        spent = recorded_cost(state.stats, price_in, price_out)
    return plan_lines(cfg, rows, count, price_in=price_in, price_out=price_out, spent=spent, cap=cap, basis=basis)


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
