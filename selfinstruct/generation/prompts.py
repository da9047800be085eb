"""Prompts for the Self-Instruct loop; texts live in ``selfinstruct/templates/``.

Every builder returns a plain string for a base (completion) teacher or a list
of ``{role, content}`` messages for a chat teacher. Base prompts end where the
teacher should continue (``"9."``, ``"Input:"``, ...); the parsers in
``parsing.py`` get that prefix back through their ``prefix`` argument.
"""
from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from importlib.resources import files

IN_CONTEXT = 8          # instructions shown per prompt (paper: 6 human + 2 machine)
FROM_POOL = 2
NEW_PER_PROMPT = 7      # base prompts stop at "16." after 8 shown; chat prompts ask for 7
ALPACA_DEMOS = 3        # Alpaca's num_prompt_instructions
ALPACA_COUNT = 20       # tasks asked for per Alpaca-style request
INSTANCE_DEMOS = 2      # seed tasks shown as examples in an instance prompt
CHAT_TOPICS = 7         # topics per chat instruction prompt: one new task asked for each (7 beat 5)
CHAT_SHOWN = 0          # instructions a chat prompt shows as "already in the dataset": none, as measured best
JSON_INSTRUCTIONS = False  # chat instruction replies: enforce instruction_schema (not measured better than text)
MIN_CHAT_INSTANCES = 3   # a chat instance reply holds at least this many examples (capped by the count asked)


@lru_cache(maxsize=None)
def template(name: str) -> str:
    """A template file from the package (``templates/NAME.txt``)."""
    return files("selfinstruct").joinpath("templates", f"{name}.txt").read_text(encoding="utf-8")


def fill(text: str, **values) -> str:
    """Replace ``{key}`` placeholders in one pass (values may contain braces)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def one_line(text: str) -> str:
    """Collapse whitespace; drop a trailing colon (as the paper does for shown instructions)."""
    return re.sub(r"\s+", " ", text).strip().rstrip(":").strip()


def _chat(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system.strip()}, {"role": "user", "content": user.strip()}]


# --------------------------------------------------------------------------- sampling


def sample_context(rng: random.Random, seeds: list[str], pool: list[str], *, n: int = IN_CONTEXT,
                   from_pool: int = FROM_POOL) -> list[str]:
    """``n`` instructions: ``from_pool`` machine ones when the pool has them, the rest seeds; shuffled."""
    k = min(from_pool, len(pool))
    picked = rng.sample(pool, k) + rng.sample(seeds, min(n - k, len(seeds)))
    rng.shuffle(picked)
    return picked


# --------------------------------------------------------------------------- instructions


def topics() -> list[str]:
    """The packaged topic list (``templates/topics.txt``) that chat instruction prompts draw from."""
    return [t.strip() for t in template("topics").splitlines() if t.strip()]


def sample_topics(rng: random.Random, k: int = CHAT_TOPICS) -> list[str]:
    return rng.sample(topics(), k)


def instruction_prompt(instructions: list[str], *, chat: bool, topics: list[str] | None = None):
    """Ask for new tasks. Base: continue a numbered list of ``instructions``. Chat: one new task for each
    of ``topics``, as a numbered list (or JSON where the server enforces ``instruction_schema``), showing
    the first ``CHAT_SHOWN`` instructions inline as taken. A small instruction-tuned model copies the
    examples it is shown, numbered or not, so by default none is (docs/benchmarks.md, "chat teachers")."""
    if not chat:
        listed = "".join(f"{i}. {one_line(s)}\n" for i, s in enumerate(instructions, 1))
        return template("instructions_base") + listed + f"{len(instructions) + 1}."
    topics = list(topics or sample_topics(random.Random(" ".join(instructions))))
    shown = "; ".join(f'"{one_line(s)}"' for s in chat_shown(instructions))
    avoid = f" The dataset already has these, so do not repeat them: {shown}." if shown else ""
    user = fill(template("instructions_chat_user"), count=len(topics), topics=", ".join(topics), avoid=avoid)
    return _chat(template("instructions_chat_system"), user)


def chat_shown(instructions: list[str]) -> list[str]:
    """The instructions a chat instruction prompt shows (what a copy is checked against)."""
    return instructions[:CHAT_SHOWN] if CHAT_SHOWN else []


def instruction_schema(n: int = CHAT_TOPICS) -> dict:
    """JSON schema of a chat instruction reply: ``{"tasks": [up to n strings]}``."""
    return {"type": "object", "additionalProperties": False, "required": ["tasks"],
            "properties": {"tasks": {"type": "array", "minItems": 1, "maxItems": n,
                                     "items": {"type": "string"}}}}


def instruction_stop(n_shown: int, *, chat: bool) -> list[str] | None:
    """The paper's stop sequences: a blank line, or reaching item 16."""
    last = n_shown + NEW_PER_PROMPT + 1
    return None if chat else ["\n\n", f"\n{last}", f"{last}.", f"{last} ."]


# --------------------------------------------------------------------------- classification


def classify_prompt(instruction: str, *, chat: bool):
    """Few-shot Yes/No: is this a classification task?"""
    text = fill(template("classify"), instruction=one_line(instruction)).rstrip()
    if not chat:
        return text
    head = text[: -len("Classification:")].rstrip()
    return _chat("Answer with one word: Yes or No.",
                 head + "\n\nIs the last task a classification task? Answer Yes or No.")


# --------------------------------------------------------------------------- instances


def format_demo(task: dict, *, classification: bool) -> str:
    """One seed task with its first instance, in the instance prompt's format."""
    inst = task["instances"][0]
    inp = inst["input"].strip() or "<noinput>"
    if classification:
        return f"Task: {one_line(task['instruction'])}\nClass label: {inst['output'].strip()}\nInput: {inp}\n\n"
    return f"Task: {one_line(task['instruction'])}\nExample 1\nInput: {inp}\nOutput: {inst['output'].strip()}\n\n"


def pick_demos(rng: random.Random, seeds: list[dict], *, classification: bool, k: int = INSTANCE_DEMOS) -> list[dict]:
    """Seed tasks to show: same kind (classification or not) where possible, each with an instance."""
    usable = [t for t in seeds if t.get("instances")]
    same = [t for t in usable if bool(t.get("is_classification")) == classification]
    source = same if len(same) >= k else usable
    return rng.sample(source, min(k, len(source)))


def similar_demos(index, seeds: list[dict], instruction: str, *, classification: bool,
                  k: int = INSTANCE_DEMOS) -> list[dict]:
    """The ``k`` seed tasks most similar to ``instruction`` by ROUGE-L (``index``: a ``RougeIndex`` of the
    seeds' instructions, ``floor=0``, in ``seeds`` order), of the same kind where ``k`` of that kind exist,
    each with an instance; the most similar last (nearest the task). Ties keep seed order."""
    usable = [i for i, t in enumerate(seeds) if t.get("instances")]
    same = [i for i in usable if bool(seeds[i].get("is_classification")) == classification]
    allowed = set(same if len(same) >= k else usable)
    ids, scores = index.scores(instruction)
    score = {int(i): float(f) for i, f in zip(ids, scores)}
    ranked = sorted(allowed, key=lambda i: (-score.get(i, 0.0), i))[:k]
    return [seeds[i] for i in reversed(ranked)]


def instance_prompt(instruction: str, demos: list[dict], *, classification: bool, chat: bool, count: int = 5):
    """Input-first (ordinary tasks) or output-first (classification) instance prompt. Chat: the same
    order as JSON (``instance_schema``), with the first demo shown as a JSON reply."""
    if chat:
        return _chat_instance_prompt(instruction, demos[0] if demos else None, classification, count)
    name = "instances_output_first" if classification else "instances_input_first"
    shown = "".join(format_demo(t, classification=classification) for t in demos)
    return fill(template(name), demos=shown, instruction=one_line(instruction), count=count).rstrip()


def _json_demo(task: dict, classification: bool) -> str:
    inst = task["instances"][0]
    first, second = ("label", "input") if classification else ("input", "output")
    pair = {"label": inst["output"].strip(), "input": inst["input"].strip()} if classification else \
        {"input": inst["input"].strip(), "output": inst["output"].strip()}
    return json.dumps({"examples": [{first: pair[first], second: pair[second]}]}, ensure_ascii=False)


def _chat_instance_prompt(instruction: str, demo: dict | None, classification: bool, count: int):
    name = "instances_chat_classify" if classification else "instances_chat_user"
    demo_text = "" if demo is None else fill(template("instances_chat_demo"), task=one_line(demo["instruction"]),
                                            reply=_json_demo(demo, classification))
    user = fill(template(name), demo=demo_text, instruction=one_line(instruction), count=count)
    return _chat(template("instances_chat_system"), user)


def instance_schema(classification: bool, count: int = 5) -> dict:
    """JSON schema of a chat instance reply: ``{"examples": [{"input", "output"}]}``, or label first
    (``{"label", "input"}``) for a classification task, as the paper's output-first prompt. At least
    ``MIN_CHAT_INSTANCES``: a small model shown one example writes one. No length bounds: they made
    llama.cpp's grammar slower and kept fewer tasks (docs/benchmarks.md, "chat teachers")."""
    keys = ("label", "input") if classification else ("input", "output")
    item = {"type": "object", "additionalProperties": False, "required": list(keys),
            "properties": {k: {"type": "string"} for k in keys}}
    return {"type": "object", "additionalProperties": False, "required": ["examples"],
            "properties": {"examples": {"type": "array", "minItems": min(MIN_CHAT_INSTANCES, count),
                                        "maxItems": count, "items": item}}}


def instance_prefix(classification: bool) -> str:
    """What a base instance prompt already wrote of the answer."""
    return "Class label:" if classification else "Example 1\nInput:"


def instance_stop(*, chat: bool, count: int = 5) -> list[str] | None:
    return ["\nTask:", "\nTask ", f"Example {count + 1}"] if not chat else None


# --------------------------------------------------------------------------- alpaca style


def alpaca_prompt(demos: list[dict], *, chat: bool, count: int = ALPACA_COUNT):
    """Alpaca's one-pass prompt: numbered Instruction/Input/Output blocks separated by ``###``."""
    text = fill(template("alpaca"), count=count) + "\n"
    for i, task in enumerate(demos, 1):
        inst = task["instances"][0]
        text += (f"###\n{i}. Instruction: {one_line(task['instruction'])}\n"
                 f"{i}. Input:\n{inst['input'].strip() or '<noinput>'}\n{i}. Output:\n{inst['output'].strip()}\n")
    text += "###\n"
    nxt = len(demos) + 1
    if not chat:
        return text + f"{nxt}. Instruction:"
    return _chat("You write instruction-tuning data in a fixed format. Reply in that format only.",
                 text + f"Continue the list from {nxt} to {count} in the same format, with ### between tasks.")


def alpaca_stop(*, chat: bool, count: int = ALPACA_COUNT) -> list[str] | None:
    return None if chat else [f"\n{count + 1}.", f"{count + 1}. Instruction:"]


def request_prompts(rng: random.Random, style: str, n: int, seeds: list[dict], pool: list[dict], *,
                    chat: bool) -> list[tuple[object, list[str]]]:
    """A round's ``n`` instruction-generation prompts, each with the instructions it shows, drawn from ``rng``
    in the one order that both the run and its ``--dry-run`` plan use."""
    out = []
    for _ in range(n):
        if style == "alpaca":
            demos = sample_context(rng, [t for t in seeds if t.get("instances")], pool, n=ALPACA_DEMOS, from_pool=1)
            out.append((alpaca_prompt(demos, chat=chat), [t["instruction"] for t in demos]))
        else:
            demos = sample_context(rng, [t["instruction"] for t in seeds], [t["instruction"] for t in pool])
            out.append((instruction_prompt(demos, chat=chat, topics=sample_topics(rng) if chat else None),
                        chat_shown(demos) if chat else demos))
    return out
