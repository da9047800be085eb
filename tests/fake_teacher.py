"""A deterministic fake teacher (the Teacher protocol) for crash and garbage tests.

``FakeTeacher(seed)`` answers chat prompts the way a small instruction model
would: numbered lists of plausible, varied instructions built from a seeded RNG
over a word list (with some copies, blanks and junk lines mixed in), Yes/No for
the classification prompt, and ``Input:/Output:`` (or ``Class label:/Input:``)
instances. The answer to a prompt depends only on ``seed`` and the prompt text,
so a resumed run is reproducible. ``delay`` seconds are slept per prompt so a
SIGKILL lands in the middle of a round.

``run(out_dir, seed, ...)`` runs the generate library loop with it; the crash
campaign runs it as ``python tests/fake_teacher.py OUT SEED ROUNDS``.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path

from selfinstruct.teachers import Completion, Usage

_SYL = ("ba be bi bo bu da de di do du fa fe fi fo ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu "
        "pa pe pi po ra re ri ro ru sa se si so ta te ti to va ve vi vo za ze zi zo").split()
VERBS = ("Explain", "Describe", "Summarize", "List", "Compare", "Classify", "Rewrite", "Translate", "Suggest",
         "Outline", "Estimate", "Identify", "Rank", "Define", "Predict", "Critique")
FRAMES = (
    "{v} how the {a} {b} changes the {c} of a {d}.",
    "{v} three ways a {a} could improve {b} {c} for {d} owners.",
    "{v} the main differences between {a} and {b} in {c} {d}.",
    "{v} whether the following {a} note about {b} is about {c} or {d}.",
    "{v} a short plan to teach {a} {b} to a {c} {d} team.",
    "{v} the {a} {b} below in plain words for a {c} reader from {d}.",
)


def _words(n: int = 3000, seed: int = 12345) -> list[str]:
    rng = random.Random(seed)
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4))))
    return sorted(out)


WORDS = _words()


def _text(prompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


def kind_of(prompt) -> str:
    text = _text(prompt)
    if "classification task? Answer" in text or text.rstrip().endswith("Classification:"):
        return "classify"
    if "Come up with examples" in text or "Given a classification task" in text or '{"examples":' in text:
        return "instances"
    return "instructions"


class FakeTeacher:
    """Chat teacher; ``complete`` answers every prompt from ``Random(seed, prompt)``."""

    def __init__(self, seed: int = 0, *, delay: float = 0.0, name: str = "fake", ledger=None):
        self.seed, self.delay = seed, delay
        self.ledger = open(ledger, "a", encoding="utf-8") if ledger else None  # what a server would bill
        self.name, self.is_chat, self.usage = name, True, Usage()

    def rng(self, prompt) -> random.Random:
        return random.Random(f"{self.seed}:" + hashlib.sha256(_text(prompt).encode()).hexdigest())

    def instructions(self, rng: random.Random, prompt) -> str:
        shown = [line.split(". ", 1)[1] for line in _text(prompt).splitlines()
                 if line[:1].isdigit() and ". " in line]
        shown += re.findall(r'"([^"]+)"', _text(prompt).partition("do not repeat them:")[2])  # chat prompts
        lines = []
        for i in range(1, rng.randint(4, 8) + 1):
            roll = rng.random()
            if roll < 0.1 and shown:
                item = rng.choice(shown)  # a copy of a shown task: must be rejected as similar
            elif roll < 0.15:
                item = "Draw a picture of a " + rng.choice(WORDS)  # blacklisted / too short
            else:
                a, b, c, d = rng.sample(WORDS, 4)
                item = rng.choice(FRAMES).format(v=rng.choice(VERBS), a=a, b=b, c=c, d=d)
            lines.append(f"{i}. {item}")
        if rng.random() < 0.2:
            lines.insert(0, "Here are some new tasks:")
        return "\n".join(lines)

    def instances(self, rng: random.Random, prompt) -> str:
        classification = "classification task" in _text(prompt)
        if rng.random() < 0.05:
            return "I cannot help with that."  # unparseable: the task is rejected (no_instances)
        if '{"examples":' in _text(prompt) and rng.random() < 0.8:  # a chat prompt asking for JSON
            keys = ("label", "input") if classification else ("input", "output")
            return json.dumps({"examples": [{keys[0]: " ".join(rng.sample(WORDS, 2)), keys[1]: " ".join(rng.sample(WORDS, 3))}
                                            for _ in range(rng.randint(1, 4))]})
        out = []
        for i in range(1, rng.randint(1, 4) + 1):
            x, y = " ".join(rng.sample(WORDS, 3)), " ".join(rng.sample(WORDS, 4))
            if classification:
                out.append(f"Class label: {rng.choice(['Yes', 'No'])}\nInput: {x}")
            else:
                out.append(f"Example {i}\nInput: {x if rng.random() < 0.7 else '<noinput>'}\nOutput: {y}.")
        return "\n".join(out)

    def complete(self, prompts, **kw):
        return [c for _, c in self.stream(prompts, **kw)]

    def stream(self, prompts, *, max_tokens=512, temperature=0.7, top_p=0.5, stop=None, progress=None):
        """Answers one by one, as a real engine yields them (so a kill lands between two)."""
        for i, p in enumerate(prompts):
            if self.delay:
                time.sleep(self.delay)
            rng, kind = self.rng(p), kind_of(p)
            if kind == "classify":
                text = rng.choice(["Yes", "No", "No", "No"])
            elif kind == "instances":
                text = self.instances(rng, p)
            else:
                text = self.instructions(rng, p)
            n_in, n_out = len(_text(p).split()), len(text.split())
            self.usage.requests += 1
            self.usage.prompt_tokens += n_in
            self.usage.completion_tokens += n_out
            if self.ledger:  # the server's own count, written as the answer leaves it
                self.ledger.write(f"{n_in} {n_out}\n")
                self.ledger.flush()
            yield i, Completion(text, n_in, n_out, "stop")

    def close(self):
        pass


def config(rounds: int, seed: int):
    from selfinstruct.generation.bootstrap import GenerateConfig

    return GenerateConfig(rounds=rounds, teacher="fake", prompts_per_round=3, instances=3, seed=seed)


def run(out_dir, seed: int = 0, rounds: int = 8, delay: float = 0.004, ledger=None) -> dict:
    """The generate library loop with a FakeTeacher; resumes ``out_dir`` when it holds a run."""
    from selfinstruct.generation.bootstrap import run as run_loop
    from selfinstruct.generation.journal import RunState
    from selfinstruct.data.seeds import load_seeds

    cfg = config(rounds, seed)
    state = RunState(Path(out_dir), cfg.run_json(), load_seeds())
    return run_loop(FakeTeacher(seed, delay=delay, ledger=ledger), cfg, state, echo=lambda m: None)


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 0.004,
        sys.argv[5] if len(sys.argv) > 5 else None)
