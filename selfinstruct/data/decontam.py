"""Decontamination: find training rows that leak an evaluation task.

A row (instruction + input) is *contaminated* when, against some eval row:

- ``exact``: both texts are equal after normalising case, whitespace and punctuation
  (:func:`normalize`: casefold, every run of non-letters/digits becomes one space);
- ``ngram:N``: they share a run of ``N`` normalised words (the GPT-3 paper used 13; short
  instructions want fewer, see docs/benchmarks.md#decontamination);
- ``rouge``: the instructions' ROUGE-L (the filter's exact scorer) is above a high
  threshold while the normalised inputs are equal.

:class:`DecontamIndex` hashes every eval word n-gram once, so a check costs one dict look-up
per n-gram of the row, never a pass over the eval rows. The ROUGE rule looks only at the eval
rows with the same input (a :class:`~selfinstruct.data.similarity.RougeIndex` when there are many,
as for rows with no input). Every hit names the eval row (its file and line) and the rule.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import regex

from .sources import data_file
from .evalset import resolve_eval_data
from .records import InputError, flatten_task, read_any, row_kind
from .similarity import RougeIndex, rouge_l, tokenize

NGRAM = 8              # chosen by bench/decontam_bench.py (docs/benchmarks.md#decontamination)
ROUGE_THRESHOLD = 0.7  # instructions above this, with equal inputs, are one task
_BRUTE = 32            # up to this many eval instructions share an input: score them one by one
_NON_WORD = regex.compile(r"[^\p{L}\p{N}]+")
_APOSTROPHE = regex.compile(r"(?<=\p{L})['\u2019](?=\p{L})")
_ASCII_APOSTROPHE = re.compile(r"(?<=[a-z])'(?=[a-z])")
_ASCII_NON_WORD = {c: " " for c in range(128) if not chr(c).isalnum()}  # the same rule, 5x faster on ASCII


def normalize(text: str) -> str:
    """Casefolded words of ``text`` joined by single spaces; punctuation and symbols drop out
    (an apostrophe inside a word joins it: "don't" and "dont" are one word)."""
    if text.isascii():
        text = text.lower()
        if "'" in text:
            text = _ASCII_APOSTROPHE.sub("", text)
        return " ".join(text.translate(_ASCII_NON_WORD).split())
    return _NON_WORD.sub(" ", _APOSTROPHE.sub("", text.casefold())).strip()


def exact_key(words: list[str]) -> str:
    """Letters and digits only: "24-hour, 09:30" and "24hour 0930" are the same text."""
    return "".join(words)


def ngram_keys(words: list[str], n: int) -> set[int]:
    """Hashes of every run of ``n`` words (none when there are fewer)."""
    return set(map(hash, zip(*(words[k:] for k in range(n)))))


@dataclass(frozen=True)
class Hit:
    rule: str          # "exact", "ngram:N" or "rouge"
    eval_row: dict     # {instruction, input, file, line}
    score: float | None = None  # ROUGE-L for "rouge"

    def as_fields(self) -> dict:
        """What a rejected row gains: ``rule`` and ``eval_row`` (plus ``eval_rouge`` for rouge)."""
        out = {"rule": self.rule, "eval_row": self.eval_row}
        if self.score is not None:
            out["eval_rouge"] = round(self.score, 4)
        return out


def eval_rows(path, columns: dict | None = None) -> list[dict]:
    """``{instruction, input, file, line}`` per row of any file eval or train reads.

    Self-Instruct tasks give one row per instance, Alpaca rows themselves, chat rows their
    user turns as the instruction. ``packaged`` names the packaged eval set; a folder, its
    data.jsonl. Errors are one-line :class:`InputError` (``file:line``); no rows is one too.
    """
    path = data_file(resolve_eval_data(path))
    out = []
    for line, row in read_any(path, columns=columns):
        kind = row_kind(row)
        if kind == "chat":
            user = "\n".join(m["content"] for m in row["messages"] if m["role"] == "user")
            items = [{"instruction": user, "input": ""}]
        else:
            items = flatten_task(row) if kind == "task" else [row]
        out += [{"instruction": r["instruction"], "input": r.get("input") or "", "file": str(path), "line": line}
                for r in items]
    if not any(normalize(r["instruction"] + " " + r["input"]) for r in out):
        raise InputError(path, None, "no eval row has any words to match")
    return out


class DecontamIndex:
    """Eval rows to check candidates against: exact, n-gram and ROUGE rules."""

    def __init__(self, rows: list[dict], *, n: int = NGRAM, rouge_threshold: float = ROUGE_THRESHOLD):
        if n < 1 or not 0 < rouge_threshold <= 1:
            raise ValueError("n must be >= 1 and rouge_threshold in (0, 1]")
        self.n, self.rouge_threshold = n, rouge_threshold
        self.rows = rows
        self._exact: dict[str, int] = {}
        self._grams: dict[int, int] = {}
        self._by_input: dict[str, list[int]] = {}    # normalised input -> eval rows (distinct instructions)
        self._tokens: dict[int, list[str]] = {}
        self._pairs: set[tuple[str, str]] = set()   # (input, instruction) already in a group
        self._rouge: dict[str, RougeIndex] = {}       # for inputs shared by many eval rows
        self._inst_exact: dict[str, int] = {}          # instruction alone (input unknown)
        self._any_input: tuple[RougeIndex, list[int]] | None = None
        for i, r in enumerate(rows):
            self._add(i, r)
        for inp, group in self._by_input.items():
            if len(group) > _BRUTE:   # e.g. every eval row with no input
                index = RougeIndex(threshold=rouge_threshold)
                index.fit_order([rows[j]["instruction"] for j in group])
                for j in group:
                    index.add(rows[j]["instruction"])
                self._rouge[inp] = index

    def __len__(self) -> int:
        return len(self.rows)

    def _add(self, i: int, row: dict) -> None:
        inst, inp = normalize(row["instruction"]), normalize(row["input"])
        words = (inst + " " + inp).split()
        if not words:
            return
        self._exact.setdefault(exact_key(words), i)
        self._inst_exact.setdefault(exact_key(inst.split()), i)
        for key in ngram_keys(words, self.n):
            self._grams.setdefault(key, i)
        if (inp, inst) not in self._pairs:
            self._pairs.add((inp, inst))
            self._by_input.setdefault(inp, []).append(i)
            self._tokens[i] = tokenize(row["instruction"])

    def _rouge_hit(self, instruction: str, inp: str) -> Hit | None:
        group = self._by_input.get(inp)
        if not group:
            return None
        if len(group) <= _BRUTE:
            tokens = tokenize(instruction)
            score, j = max((rouge_l(tokens, self._tokens[j]), -j) for j in group)
            j = -j
        else:
            score, k = self._rouge[inp].nearest(instruction)
            if k is None:
                return None
            j = group[k]
        return Hit("rouge", self.rows[j], score) if score > self.rouge_threshold else None

    def _rouge_any(self, instruction: str) -> Hit | None:
        """ROUGE against every eval instruction, whatever its input."""
        if self._any_input is None:
            ids = sorted({j for group in self._by_input.values() for j in group})
            ids = list({normalize(self.rows[j]["instruction"]): j for j in reversed(ids)}.values())[::-1]
            index = RougeIndex(threshold=self.rouge_threshold)
            index.fit_order([self.rows[j]["instruction"] for j in ids])
            for j in ids:
                index.add(self.rows[j]["instruction"])
            self._any_input = (index, ids)
        index, ids = self._any_input
        score, k = index.nearest(instruction)
        return None if k is None else Hit("rouge", self.rows[ids[k]], score)

    def check(self, instruction: str, input: str | None = "") -> Hit | None:
        """The first rule that matches (exact, then n-gram, then ROUGE), or None for a clean row.

        ``input=None`` means the input is not known yet (a generate candidate at screening): the
        instruction alone is matched exactly against eval instructions, and ROUGE compares it
        with every eval instruction whatever its input."""
        inp = normalize(input or "")
        words = (normalize(instruction) + " " + inp).split()
        if not words:
            return None
        i = (self._inst_exact if input is None else self._exact).get(exact_key(words))
        if i is not None:
            return Hit("exact", self.rows[i])
        common = self._grams.keys() & ngram_keys(words, self.n)
        if common:
            return Hit(f"ngram:{self.n}", self.rows[min(map(self._grams.__getitem__, common))])
        return self._rouge_any(instruction) if input is None else self._rouge_hit(instruction, inp)


def load_index(paths, columns: dict | None = None, **kw) -> DecontamIndex:
    """One index over every eval file in ``paths`` (all read first: a bad file fails before any work)."""
    rows = []
    for p in paths:
        rows += eval_rows(p, columns)
    return DecontamIndex(rows, **kw)


def describe(paths) -> list[str]:
    """How run.json names the eval files (``packaged`` stays ``packaged``)."""
    return [str(p) if str(p) == "packaged" else str(Path(p).resolve()) for p in paths]
