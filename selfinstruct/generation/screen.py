"""Screening of candidate instructions: the heuristics, the exact-duplicate key and the ROUGE-L gate.

The gate holds the seeds and every kept instruction; one round's candidates are also
compared with each other. An instruction joins the gate only once kept (``admit``), so a
resumed run gates exactly as an uninterrupted one. A candidate is anything with
``instruction``, ``instances``, ``similarity``, ``most_similar`` and ``contamination``
attributes (``generate.Candidate``).
"""
from __future__ import annotations

from ..data.filters import instruction_reason
from ..data.similarity import RougeIndex


def gate_key(instruction: str) -> str:
    """An instruction's exact-duplicate key at screening (whitespace runs collapsed)."""
    return " ".join(instruction.split())


class Screen:
    """Heuristics + the ROUGE-L gate over the seeds and every kept instruction.

    Candidates of one round are also compared with each other (``peers``), since none of
    them is kept before its instances exist; an instruction joins the gate only once kept
    (``admit``), so a resumed run gates exactly as an uninterrupted one.
    """

    def __init__(self, threshold: float, seeds: list[dict], kept: list[str] = (), decontam=None,
                 tokenizer: str = "rouge", blacklist=None):
        self.decontam = decontam  # a decontam.DecontamIndex, or None
        # floor 0: every kept task gets its exact max ROUGE-L to the earlier pool
        self.threshold = threshold
        self.tokenizer = tokenizer
        self.rules = {"unicode": tokenizer == "unicode",
                      **({} if blacklist is None else {"blacklist": tuple(blacklist)})}
        self.index = RougeIndex(threshold, tokenizer, floor=0.0)
        self.kept: set[str] = set()
        for t in seeds:
            self.index.add(t["instruction"])
        for text in kept:
            self.admit(text)

    def admit(self, instruction: str) -> None:
        """A kept instruction joins the gate."""
        self.index.add(instruction)
        self.kept.add(gate_key(instruction))

    def check(self, cand, peers: RougeIndex | None = None, peer_keys: set = frozenset()) -> str | None:
        """None to keep it; else the reason. Sets ``similarity``/``most_similar``."""
        hit = self.decontam and self.decontam.check(  # its input is unknown until instances are made
            cand.instruction, cand.instances[0]["input"] if cand.instances else None)
        if hit:
            cand.contamination = hit.as_fields()
            return "contaminated"
        reason = instruction_reason(cand.instruction, **self.rules)
        if reason:
            return reason
        key = gate_key(cand.instruction)
        if key in self.kept or key in peer_keys:
            return "exact_duplicate"
        best = (0.0, None)
        for index in (self.index, peers):
            score, i = index.nearest(cand.instruction) if index is not None else (0.0, None)
            if i is not None and (best[1] is None or score > best[0]):
                best = (score, index.texts[i])
        cand.similarity, cand.most_similar = round(best[0], 4), best[1]
        return "similar" if best[1] is not None and best[0] > self.threshold else None


def screen(cands: list, gate: Screen) -> tuple[list, list[tuple[object, str]]]:
    """Split one round's candidates; each is compared with the gate and the round's earlier passes."""
    kept, rejected, peers, keys = [], [], RougeIndex(gate.threshold, gate.tokenizer, floor=0.0), set()
    for c in cands:
        reason = gate.check(c, peers, keys)
        if reason:
            rejected.append((c, reason))
        else:
            kept.append(c)
            peers.add(c.instruction)
            keys.add(gate_key(c.instruction))
    return kept, rejected


def build_screen(cfg, state, decontam=None) -> Screen:
    """The ROUGE-L gate over the seeds and the kept tasks (what an uninterrupted run holds too)."""
    return Screen(cfg.threshold, state.seeds, [t["instruction"] for t in state.tasks], decontam,
                  cfg.tokenizer, cfg.blacklist)
