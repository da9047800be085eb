"""Resuming a `generate` folder with the settings it was made with.

On an existing run, every option the command does not pass comes from its ``run.json``. A passed
option that differs is refused with one line naming both values when it defines the data (``FIXED``);
the others (more rounds, sampling, token limits, the server, eval sets) may change between
invocations, and ``run.json`` records each invocation's settings under ``invocations``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..data.writers import OutputError
from . import journal

# run.json key -> (the click parameter(s) that set it, the option's flag)
OPTIONS = {"rounds": ("rounds", "--rounds"), "num_instructions": ("num_instructions", "--num-instructions"),
           "teacher": ("teacher", "--teacher"), "style": ("style", "--style"),
           "prompts_per_round": ("prompts_per_round", "--prompts-per-round"), "instances": ("instances", "--instances"),
           "threshold": ("threshold", "--threshold"), "seed": ("seed", "--seed"),
           "max_tokens": ("max_tokens", "--max-tokens"), "temperature": ("temperature", "--temperature"),
           "top_p": ("top_p", "--top-p"), "repeat_penalty": ("repeat_penalty", "--repeat-penalty"),
           "instance_temperature": ("instance_temperature", "--instance-temperature"),
           "instance_top_p": ("instance_top_p", "--instance-top-p"),
           "instance_repeat_penalty": ("instance_repeat_penalty", "--instance-repeat-penalty"),
           "instance_samples": ("instance_samples", "--instance-samples"),
           "instance_demos": ("instance_demos", "--instance-demos"), "classify": ("classify_with", "--classify"),
           "endpoint": ("endpoint", "--endpoint"), "base_url": ("base_url", "--base-url"),
           "seeds": ("seeds_path", "--seeds"),
           "decontaminate": ("eval_paths+no_decontaminate", "--decontaminate/--no-decontaminate"),
           "tokenizer": ("rouge_tokenizer", "--tokenizer"), "blacklist": ("blacklist", "--blacklist")}
FLAGS = {key: flag for key, (_, flag) in OPTIONS.items()}
PARAMS = {key: param for key, (param, _) in OPTIONS.items()}
# options that define the data: a resumed run that changed them would mix two runs in one folder (RunState
# checks the seed tasks' contents)
FIXED = tuple(key for key in journal.FIXED if key in FLAGS)


def _plain(value):
    """A value as run.json holds it (tuples as lists)."""
    return json.loads(json.dumps(value))


def previous_settings(out) -> dict:
    """The settings in ``out``'s run.json when the folder holds a run that has generated something
    (it will resume), else ``{}`` (a new run, or one that generated nothing yet: the command's own
    options apply)."""
    out = Path(out)
    try:
        run = json.loads((out / "run.json").read_text(encoding="utf-8"))
        stats = json.loads((out / "stats.json").read_text(encoding="utf-8")) if (out / "stats.json").exists() else {}
    except (OSError, ValueError):
        return {}  # RunState says what is wrong with the folder
    started = any((out / name).exists() and (out / name).stat().st_size for name in ("tasks.jsonl", "rejected.jsonl"))
    started = started or (isinstance(stats, dict) and bool(stats.get("rounds") or stats.get("in_progress")))
    return run if isinstance(run, dict) and started else {}


def resume_options(out, old: dict, given: dict, passed: set) -> tuple[dict, list[str], OutputError | None]:
    """The options to run with: ``given`` (run.json keys -> this command's values), with every key not in
    ``passed`` taken from ``old`` (run.json). Returns them, a line per passed option that changes a
    setting that may change, and the error (one line, both values) for one that may not, for the caller
    to raise once its input files are checked."""
    merged, notes = dict(given), []
    for key, flag in FLAGS.items():
        if key not in old:
            continue
        if key not in passed:
            merged[key] = old[key]
        elif _plain(given[key]) != _plain(old[key]) and key != "rounds":  # more rounds: how a run goes on
            if key in FIXED:
                return merged, notes, OutputError(f"{out}: cannot resume with {flag} {_shown(given[key])}: the run "
                                                  f"was generated with {flag} {_shown(old[key])}; drop the option or "
                                                  "choose another --out")
            notes.append(f"resuming with {flag} {_shown(given[key])} (the run so far used {_shown(old[key])}); "
                         "run.json records it under invocations")
    return merged, notes, None


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "''"
    return "(default)" if value is None else str(value)
