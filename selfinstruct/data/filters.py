"""Filters for generated instructions: the Self-Instruct/Alpaca heuristics and the ROUGE-L gate.

A record is kept iff it passes the heuristics (unless turned off), is not an exact
duplicate of a kept record's instruction+input, and its instruction's ROUGE-L F-measure
against every earlier kept instruction and every reference (seeds, ``--against``) is
<= threshold -- the rule of the Self-Instruct and Alpaca scripts, walked in input order.

The ROUGE gate is per instruction: a row whose instruction (whitespace-normalised) equals
an already KEPT instruction passes it (several instances of one flattened task), and only
an exact instruction+input repeat is rejected. A row whose instruction equals a reference
is "similar" (score 1.0).

Kept rows carry ``similarity`` (max ROUGE-L against earlier kept instructions and the
references) and ``most_similar`` (that instruction). Both are exact whenever the max is
above ``floor``; below it they are ``None`` ("at most floor"). ``floor=0`` makes all of
them exact (``similarity`` 0.0 and ``most_similar`` None when no word is shared); the CLI
uses floor 0 for inputs up to 10,000 rows and the threshold above that.
"""
from __future__ import annotations

import re
import string
import sys
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import regex
from tqdm import tqdm

from .rules import (no_code, not_a_task, output_echoes_instruction, points_at_input, program_task, scaffolding,
                    unrelated_output)
from .similarity import RougeIndex

DEFAULT_BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
                     "map", "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart",
                     "diagram")
MIN_WORDS, MAX_WORDS = 3, 150      # rejected: <= MIN_WORDS or > MAX_WORDS words
AUTO_EXACT_ROWS = 10_000           # the CLI's floor is 0 (all similarities exact) up to this size
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
_UNICODE_WORD = regex.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


# A closed set of answers named or implied: the cues of a classification task. Measured on
# labelled seed sets (bench/classify_bench.py): balanced accuracy 0.80 on the paper's 175 seeds,
# which the rule was not written against; the embedded model's few-shot Yes/No scored 0.46.
_CLASSIFICATION = re.compile(
    r"\b(classify|classification|categori[sz]e|category|categories|label|sentiment|true or false|yes or no|"
    r"one of (these|the following)|(tell|decide|determine|say|identify|judge|check) (if|whether)|whether|"
    r"which (one|of|category|type|kind))\b|^which\b|"
    r"\w+, [\w-]+,? or [\w-]+|^(is|are|does|do|was|can|did)\b[^?]* or [^?]*\?", re.IGNORECASE)


def looks_like_classification(instruction: str) -> bool:
    """Does the task ask for one of a few fixed labels? (cue words, or a closed list of options)"""
    return bool(_CLASSIFICATION.search(" ".join(instruction.split())))


def word_count(text: str, *, unicode: bool = False) -> int:
    """Whitespace-separated words; in unicode mode each Chinese/Japanese character counts as one."""
    return len(_UNICODE_WORD.findall(text)) if unicode else len(text.split())


def blacklist_words(text: str | None) -> tuple[str, ...] | None:
    """A ``--blacklist WORD,...`` value as words (None when not given: the default list applies)."""
    return None if text is None else tuple(w.strip() for w in text.split(",") if w.strip())


@lru_cache(maxsize=16)
def _blacklist_re(words: tuple[str, ...]):
    if not words:
        return None
    alts = "|".join(re.escape(w.strip()).replace(r"\ ", r"\s+") for w in words if w.strip())
    return re.compile(rf"\b({alts})\b", re.IGNORECASE) if alts else None


def _starts_with_punctuation(text: str, unicode: bool) -> bool:
    c = text[0]
    return c in string.punctuation or (unicode and unicodedata.category(c)[0] in "PS")


def instruction_reason(instruction: str, *, unicode: bool = False,
                       blacklist: Iterable[str] = DEFAULT_BLACKLIST) -> str | None:
    """Why an instruction is unusable, or None. Checks, in the Self-Instruct order: word count
    (<= 3 or > 150), blacklisted words (whole words, any case), "Write a program" prefix (also
    "Write a Java program"), leading punctuation, and (English only, off when ``unicode``) a
    non-ASCII first character; then the reader rules of :mod:`.rules`: the prompt's scaffolding,
    and (English only) a statement that asks nothing (``not_a_task``)."""
    inst = instruction.strip()
    if not inst:
        return "too_short"
    n = word_count(inst, unicode=unicode)
    if n <= MIN_WORDS:
        return "too_short"
    if n > MAX_WORDS:
        return "too_long"
    pattern = _blacklist_re(tuple(blacklist))
    hit = pattern.search(inst) if pattern else None
    if hit:
        return "blacklist:" + "_".join(hit.group(1).lower().split())
    if program_task(inst):
        return "write_a_program"
    if _starts_with_punctuation(inst, unicode):
        return "starts_with_punctuation"
    if not unicode and not inst[0].isascii():
        return "non_english_start"
    if scaffolding(inst):
        return "scaffolding"
    if not unicode and not_a_task(inst):
        return "not_a_task"
    return None


def example_key(instruction: str) -> str:
    """The form in which a candidate counts as a copy of an instruction shown in its prompt
    (``copied_example``): case folded, whitespace runs made one space, surrounding quotes and
    trailing punctuation dropped ("Add 2 and 3." and "add 2 and 3" are the same)."""
    return normalize(instruction).strip("\"'“”‘’ ").rstrip(" .:;!?").strip()


def copied_examples(candidates: Iterable[str], shown: Iterable[str]) -> list[bool]:
    """For each candidate, whether it equals (by :func:`example_key`) an instruction shown in its prompt."""
    keys = {example_key(s) for s in shown}
    return [example_key(c) in keys for c in candidates]


def instance_reason(input: str, output: str, instruction: str = "") -> str | None:
    """Why an (input, output) instance is unusable, or None: empty output, output == input, output ==
    instruction (case and whitespace aside; a chat model echoing the task), an empty input under an
    instruction that points at one (``missing_input``), a code task answered without code
    (``no_code``), an answer about itself under a task that invites no voice (``unrelated_output``),
    or an answer made only of a short instruction's words (``output_echoes_instruction``; :mod:`.rules`)."""
    out = (output or "").strip()
    if not out:
        return "empty_output"
    if out == (input or "").strip():
        return "output_equals_input"
    if instruction and normalize(out) == normalize(instruction):
        return "output_equals_instruction"
    if not (input or "").strip() and points_at_input(instruction):
        return "missing_input"
    if instruction and no_code(instruction, out):
        return "no_code"
    if instruction and unrelated_output(instruction, input or "", out):
        return "unrelated_output"
    if instruction and output_echoes_instruction(instruction, input or "", out):
        return "output_echoes_instruction"
    return None


# the instance reasons that name the rejection of a task that lost all its instances to them
INSTANCE_RULES = ("missing_input", "no_code", "unrelated_output", "output_echoes_instruction")


def task_reason(dropped: Counter) -> str:
    """Why a task lost all its instances: the first of ``INSTANCE_RULES`` among the reasons its
    instances were dropped for, else ``"no_instances"``."""
    return next((r for r in INSTANCE_RULES if dropped.get(r)), "no_instances")


SHORT_OUTPUT_WORDS = 3  # outputs of up to this many words ("Positive", "No") may repeat across tasks


def repeated_outputs(tasks: list[dict]) -> list[str | None]:
    """``"repeated_output"`` for each task whose output (any instance's, whitespace and case normalised)
    an earlier task of ``tasks`` already gave, else None; the first keeps it. Meant for the tasks of one
    teacher response, where two different tasks cannot share a long answer. Outputs of at most
    ``SHORT_OUTPUT_WORDS`` words (class labels) are exempt."""
    seen: set[str] = set()
    reasons = []
    for task in tasks:
        outs = {normalize(i.get("output") or "") for i in task.get("instances") or []}
        outs = {o for o in outs if len(o.split()) > SHORT_OUTPUT_WORDS}
        reasons.append("repeated_output" if outs & seen else None)
        if not reasons[-1]:
            seen |= outs
    return reasons


def clean_instances(instances: list[dict], limit: int = 5, instruction: str = "") -> tuple[list[dict], Counter]:
    """Drop unusable instances (:func:`instance_reason`), duplicates, and inputs with conflicting outputs.

    Two or more different outputs for one non-empty input are all dropped; a task
    with no input keeps its first output only. At most ``limit`` are returned.
    """
    dropped: Counter = Counter()
    ok = []
    for inst in instances:
        reason = instance_reason(inst["input"], inst["output"], instruction)
        if reason:
            dropped[reason] += 1
        else:
            ok.append(inst)
    outputs: dict[str, set] = {}
    for inst in ok:
        outputs.setdefault(normalize(inst["input"]), set()).add(normalize(inst["output"]))
    out, seen = [], set()
    for inst in ok:
        key = (normalize(inst["input"]), normalize(inst["output"]))
        if key in seen:
            dropped["duplicate_instance"] += 1
        elif len(outputs[key[0]]) > 1 and (key[0] or any(k[0] == "" for k in seen)):
            dropped["conflicting_outputs"] += 1
        else:
            seen.add(key)
            out.append({"input": inst["input"].strip(), "output": inst["output"].strip()})
    if len(out) > limit:
        dropped["over_limit"] += len(out) - limit
    return out[:limit], dropped


@dataclass
class Decision:
    keep: bool
    reason: str | None
    similarity: float | None
    most_similar: str | None


def normalize(text: str) -> str:
    """Lowercase, whitespace runs made one space: the form in which two texts count as the same
    (the ROUGE-L tokenizers lowercase too)."""
    return " ".join(text.lower().split())


class RecordFilter:
    """Decides, record by record, what to keep (see the module docstring for the rules)."""

    def __init__(self, threshold: float = 0.7, tokenizer: str = "rouge", heuristics: bool = True,
                 blacklist: Iterable[str] = DEFAULT_BLACKLIST, floor: float | None = None):
        self.index = RougeIndex(threshold, tokenizer, floor)
        self.threshold, self.heuristics = threshold, heuristics
        self.unicode = tokenizer == "unicode"
        self.blacklist = tuple(blacklist)
        self.counts: Counter = Counter()
        self._kept: dict[str, tuple[float | None, str | None]] = {}   # instruction -> its similarity
        self._pairs: set[tuple[str, str]] = set()                     # kept (instruction, input)

    def add_reference(self, instruction: str) -> None:
        """Index an instruction to compare against (a seed, an --against row); never output."""
        self.index.add(instruction)

    def heuristic_reason(self, record: dict) -> str | None:
        """The first heuristic ``record`` fails (None if it passes or heuristics are off)."""
        if not self.heuristics:
            return None
        return (instruction_reason(record["instruction"], unicode=self.unicode, blacklist=self.blacklist)
                or instance_reason(record.get("input") or "", record.get("output") or "", record["instruction"]))

    def check(self, record: dict, *, screened: bool = False) -> Decision:
        """The decision for ``record`` against what is kept so far; adds nothing.
        ``screened``: the caller already ran :meth:`heuristic_reason` and it passed."""
        reason = None if screened else self.heuristic_reason(record)
        if reason:
            return Decision(False, reason, None, None)
        inst, inp = record["instruction"], record.get("input") or ""
        key = normalize(inst)
        if (key, normalize(inp)) in self._pairs:
            return Decision(False, "exact_duplicate", None, None)
        if key in self._kept:
            return Decision(True, None, *self._kept[key])
        score, most = self._nearest(inst)
        if most is not None and score > self.threshold:
            return Decision(False, "similar", score, most)
        return Decision(True, None, score, most)

    def _nearest(self, instruction: str) -> tuple[float | None, str | None]:
        """Max ROUGE-L against the index and that text; ``(0.0 or None, None)`` when it is <= the floor
        (exactly 0 when the floor is 0, else unknown)."""
        score, i = self.index.nearest(instruction)
        if i is None:
            return (0.0 if self.index.floor == 0 else None), None
        return score, self.index.texts[i]

    def add(self, record: dict, decision: Decision | None = None) -> None:
        """Keep ``record`` (its instruction joins the index once). ``decision``: what :meth:`check`
        said for it, whose similarity is kept; without it the similarity is computed here."""
        key = normalize(record["instruction"])
        self._pairs.add((key, normalize(record.get("input") or "")))
        if key not in self._kept:
            sim = (decision.similarity, decision.most_similar) if decision else self._nearest(record["instruction"])
            self._kept[key] = sim
            self.index.add(record["instruction"])

    def offer(self, record: dict, *, screened: bool = False) -> Decision:
        """Check ``record`` and keep it if it passes; counts the outcome."""
        d = self.check(record, screened=screened)
        self.counts[d.reason or "kept"] += 1
        if d.keep:
            self.add(record, d)
        return d


def filter_records(records: list[dict], *, threshold: float = 0.7, tokenizer: str = "rouge",
                   heuristics: bool = True, blacklist: Iterable[str] = DEFAULT_BLACKLIST,
                   against: Iterable[str] = (), floor: float | None = None,
                   progress: bool = True, decontam=None) -> tuple[list[dict], list[dict], dict]:
    """Filter ``records`` in order. Returns ``(kept, rejected, stats)``.

    Kept rows gain ``similarity`` and ``most_similar``; rejected rows gain ``reason`` (and,
    for "similar", the same two fields). ``stats`` has the counts, seconds and pairs
    compared/pruned. ``against`` instructions are indexed first and never output.
    ``decontam`` (a :class:`~selfinstruct.data.decontam.DecontamIndex`) rejects rows that leak an
    eval row first, as "contaminated" with the ``rule`` and the ``eval_row`` matched.
    """
    start = time.perf_counter()
    against = list(against)
    f = RecordFilter(threshold, tokenizer, heuristics, blacklist, floor)
    hits = [decontam.check(r["instruction"], r.get("input") or "") if decontam else None for r in records]
    why = ["contaminated" if h else f.heuristic_reason(r) for r, h in zip(records, hits)]  # cheap rules first
    # one rarity order from every instruction that reaches the similarity gate (exact either way)
    f.index.fit_order([r["instruction"] for r, w in zip(records, why) if w is None] + against)
    for a in against:
        f.add_reference(a)
    kept, rejected = [], []
    bar = tqdm(range(len(records)), desc="filter", unit="row", file=sys.stderr, mininterval=1.0,
               disable=not progress or len(records) < 2000)
    for i in bar:
        r = records[i]
        if why[i]:
            f.counts[why[i]] += 1
            d = Decision(False, why[i], None, None)
        else:
            d = f.offer(r, screened=True)
        if d.keep:
            kept.append({**r, "similarity": d.similarity, "most_similar": d.most_similar})
        elif d.reason == "similar":
            rejected.append({**r, "reason": d.reason, "similarity": d.similarity,
                             "most_similar": d.most_similar})
        else:
            rejected.append({**r, "reason": d.reason, **(hits[i].as_fields() if hits[i] else {})})
    stats = {"rows": len(records), "kept": len(kept), "rejected": len(rejected),
             "reasons": dict(sorted(((k, v) for k, v in f.counts.items() if k != "kept"),
                                    key=lambda kv: -kv[1])),
             "references": len(against), "floor": f.index.floor, "eval_rows": len(decontam) if decontam else 0,
             "pairs_compared": f.index.pairs_compared, "pairs_pruned": f.index.pairs_pruned,
             "seconds": time.perf_counter() - start}
    return kept, rejected, stats


def filter_file(input_path, *, seeds=None, against_paths=(), eval_paths=(), blacklist=None, floor=None,
                threshold: float = 0.7, skip_invalid: bool = False, skipped: list | None = None,
                columns: dict | None = None, **options):
    """:func:`filter_records` over files (or a `generate` or `export --format hf` folder), as ``selfinstruct
    filter`` runs it: the ``seeds`` file's rows (``packaged``: the packaged seeds) go first, ``against_paths``
    give reference instructions (``packaged``: the packaged seeds),
    ``eval_paths`` decontaminate (loaded first: a bad eval file fails before any row is read), and
    ``floor`` None is 0 up to ``AUTO_EXACT_ROWS`` rows, else the threshold."""
    from .decontam import load_index
    from .records import read_examples
    from .seeds import seed_rows
    from .sources import data_file

    decontam = load_index(eval_paths, columns) if eval_paths else None
    read = dict(skip_invalid=skip_invalid, skipped=skipped, columns=columns)
    records = (seed_rows(seeds, **read) if seeds else []) + read_examples(data_file(input_path), **read)
    against = [r["instruction"] for p in against_paths  # "packaged": the packaged seed tasks
               for r in (seed_rows(p, **read) if p == "packaged" else read_examples(data_file(p), **read))]
    if floor is None:
        floor = 0.0 if len(records) <= AUTO_EXACT_ROWS else threshold
    return filter_records(records, threshold=threshold, blacklist=DEFAULT_BLACKLIST if blacklist is None else blacklist,
                          against=list(dict.fromkeys(against)), floor=floor, decontam=decontam, **options)


def summary_lines(stats: dict, out_path=None, rejected_path=None) -> list[str]:
    """The one-screen summary the CLI prints on stderr."""
    total = stats["pairs_compared"] + stats["pairs_pruned"]
    pct = 100 * stats["pairs_pruned"] / total if total else 0.0
    lines = [f"filter: {stats['rows']:,} rows -> {stats['kept']:,} kept, {stats['rejected']:,} rejected "
             f"in {stats['seconds']:.1f} s"]
    reasons = {k: v for k, v in stats["reasons"].items() if not k.startswith("blacklist:")}
    words = {k.split(":", 1)[1]: v for k, v in stats["reasons"].items() if k.startswith("blacklist:")}
    if words:
        reasons["blacklist"] = sum(words.values())
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        line = f"  {reason:<28}{n:>10,}"
        if reason == "blacklist":
            top = sorted(words.items(), key=lambda kv: -kv[1])
            line += "  (" + ", ".join(f"{w} {c:,}" for w, c in top[:6]) + (", ..." if len(top) > 6 else "") + ")"
        lines.append(line)
    if stats.get("skipped_invalid"):
        lines.append(f"  {'skipped (invalid rows)':<28}{stats['skipped_invalid']:>10,}")
    lines.append(f"ROUGE-L pairs: {stats['pairs_compared']:,} compared, {stats['pairs_pruned']:,} pruned "
                 f"({pct:.2f}%); {stats['references']:,} reference instructions; "
                 f"similarity exact above {stats['floor']:g}")
    if stats.get("eval_rows"):
        lines.append(f"decontaminated against {stats['eval_rows']:,} eval rows")
    if out_path:
        wrote = f"wrote {out_path} ({stats['kept']:,} rows)"
        if rejected_path:
            wrote += f", {rejected_path} ({stats['rejected']:,} rows)"
        lines.append(wrote)
    return lines
