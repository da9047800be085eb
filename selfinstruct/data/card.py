"""The README.md dataset card of an `export --format hf` folder.

A YAML header that ``huggingface_hub``'s ``DatasetCard`` parses and ``datasets`` reads with no
warning (configs, features, split sizes, as ``push_to_hub`` writes them; license, language, task
categories, size category, tags), then what a reader needs to judge the data: counts and, for a
`generate` folder, the teacher, the seeds, and the filters and sampling that run used, all read
from its ``run.json``, and the generate stats per round.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .decontam import NGRAM, ROUGE_THRESHOLD
from .filters import DEFAULT_BLACKLIST, MAX_WORDS, MIN_WORDS
from .records import InputError
from .writers import read_jsonl_lenient

TAGS = ["synthetic", "self-instruct", "selfinstruct"]
LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")           # Hub license ids: apache-2.0, cc-by-4.0, other, ...
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # ISO 639-1/-3, optionally with a region


def check_card_options(license: str | None, language) -> None:
    """One-line errors for a --license or --language the Hub would not take."""
    if license is not None and not LICENSE.match(license):
        raise InputError("--license", None, f"{license!r} is not a Hub license id (such as apache-2.0, cc-by-4.0, "
                                            "mit, other)")
    for code in language:
        if not LANGUAGE.match(code):
            raise InputError("--language", None, f"{code!r} is not an ISO 639 language code (such as en, de, zh)")


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def yaml_header(ds, download_size: int, *, license: str, language, pretty_name: str) -> str:
    """The card's YAML: the Hub's fields, and ``dataset_info`` as ``Dataset.push_to_hub`` writes it."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    split = SplitInfo(name="train", num_bytes=ds.data.nbytes, num_examples=len(ds))
    info = DatasetInfo(features=ds.features, splits=SplitDict(), download_size=download_size,
                       dataset_size=split.num_bytes)
    info.splits.add(split)
    data = DatasetCardData(
        license=license, language=list(language), pretty_name=pretty_name, task_categories=["text-generation"],
        tags=TAGS, size_categories=[size_category(len(ds))],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}])
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return f"---\n{data.to_yaml()}\n---\n"


def _columns(rows: list[dict]) -> str:
    keys = list(rows[0]) if rows else []
    return ", ".join(f"`{k}`" for k in keys)


def _count_lines(rows: list[dict]) -> list[str]:
    lines = [f"- rows: {len(rows)}"]
    if rows and "instruction" in rows[0]:
        lines.append(f"- distinct instructions: {len({r['instruction'] for r in rows})}")
        lines.append(f"- rows with an input: {sum(1 for r in rows if r.get('input', '').strip())}")
    return lines


def _cost(value) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _round_table(stats: dict) -> list[str]:
    rounds = stats.get("rounds") or []
    if not rounds:
        return ["No finished round."]
    out = ["| round | candidates | kept | instances | prompt tokens | completion tokens | cost | rejected |",
           "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rounds + ([{**stats["total"], "round": "all"}] if stats.get("total") else []):
        why = ", ".join(f"{k} {v}" for k, v in sorted((r.get("rejected") or {}).items(), key=lambda kv: -kv[1]))
        out.append(f"| {r.get('round')} | {r.get('candidates', 0)} | {r.get('kept', 0)} | {r.get('instances', 0)} "
                   f"| {r.get('prompt_tokens', 0)} | {r.get('completion_tokens', 0)} | {_cost(r.get('cost_usd'))} "
                   f"| {why} |")
    return out


def _eval_set(path: str) -> str:
    return "the packaged eval set (162 held-out tasks)" if path == "packaged" else f"`{Path(path).name}`"


def filter_lines(run: dict) -> list[str]:
    """The rules this run applied, as its run.json records them (tokenizer, blacklist, eval sets)."""
    unicode = run.get("tokenizer") == "unicode"
    words = DEFAULT_BLACKLIST if run.get("blacklist") is None else run["blacklist"]
    rules = [f"more than {MIN_WORDS} and at most {MAX_WORDS} words",
             "none of the blacklisted words " + ", ".join(words) if words else "no blacklist",
             "not 'Write a program'", "no leading punctuation"] + ([] if unicode else ["an ASCII first character"])
    words_of = ("Unicode words (any script, CJK per character; the English-only rules off)" if unicode else
                "rouge-score's tokenizer (scores identical to rouge-score)")
    evals = run.get("decontaminate")
    evals = ["packaged"] if evals is None else evals  # a run.json from before decontamination was recorded
    lines = [f"- Instructions: {'; '.join(rules)}; then ROUGE-L F1 at most {run.get('threshold', 0.7)} against "
             f"every seed and every kept instruction, on {words_of}. A candidate equal to an instruction shown "
             "in its own prompt is dropped (`copied_example`).",
             "- Decontamination: " + ("none (`--no-decontaminate`)." if not evals else
                                      f"a candidate is rejected (`contaminated`) when its instruction equals a row "
                                      f"of {', '.join(_eval_set(e) for e in evals)} after normalising, shares "
                                      f"{NGRAM} consecutive words with one, or has ROUGE-L above {ROUGE_THRESHOLD} "
                                      "to one."),
             "- Instances: empty outputs, outputs equal to the input or to the instruction, an empty input under "
             "an instruction that points at one (`missing_input`), duplicates and inputs with conflicting outputs "
             f"dropped; at most {run.get('instances', 5)} per task; a task left with none is rejected."]
    if run.get("style") == "alpaca":
        lines.append("- A task whose output (over three words) repeats an earlier task's from the same request is "
                     "rejected (`repeated_output`).")
    return lines


def sampling_lines(run: dict) -> list[str]:
    """The teacher's sampling for each stage, as run.json records it."""
    local = not str(run.get("teacher", "")).startswith("openai:")

    def stage(prefix: str) -> str:
        text = f"temperature {run.get(prefix + 'temperature')}, top-p {run.get(prefix + 'top_p')}"
        penalty = run.get(prefix + "repeat_penalty")
        return text + (f", repeat penalty {penalty}" if local and penalty not in (None, 1, 1.0) else "")

    classify = {"teacher": "the teacher's few-shot Yes/No", "rules": "a cue-word rule"}.get(run.get("classify"))
    lines = [f"- sampling of new instructions: {stage('')}, at most {run.get('max_tokens')} tokens"]
    if run.get("style") != "alpaca":
        lines.append(f"- sampling of instances: {stage('instance_')}")
        if classify:
            lines.append(f"- classification tasks sorted by {classify}")
    return lines + [f"- random seed: {run.get('seed')}"]


def teacher_of(folder: Path) -> str:
    run, stats = _json(folder / "run.json"), _json(folder / "stats.json")
    return str(run.get("teacher_name") or run.get("teacher") or stats.get("teacher") or "an unknown teacher")


def run_section(folder: Path) -> list[str]:
    """What a `generate` folder says about how the rows were made."""
    run, stats = _json(folder / "run.json"), _json(folder / "stats.json")
    tasks = read_jsonl_lenient(folder / "tasks.jsonl")
    seeds = run.get("seeds") or "the 175 seed tasks packaged with selfinstruct"
    lines = ["## How it was made", "",
             f"Generated with `selfinstruct generate` ({run.get('style', 'selfinstruct')} style), the "
             "Self-Instruct method (Wang et al. 2022).", "",
             f"- teacher: `{teacher_of(folder)}`",
             f"- seeds: {seeds} ({stats.get('seeds', '?')} tasks, sha256 `{run.get('seeds_sha256', '?')[:16]}`)",
             f"- tasks: {len(tasks)}, of which classification: {sum(bool(t.get('is_classification')) for t in tasks)}",
             *sampling_lines(run),
             f"- created: {run.get('created', '?')}", "", "### Filters applied", "", *filter_lines(run)]
    return lines + ["", "### Generate stats", ""] + _round_table(stats)


def title(source: Path) -> str:
    """A generate folder: its teacher and run; a file: its name."""
    if source.is_dir() and (source / "run.json").exists():
        return f"Self-Instruct data from {teacher_of(source)} (run {source.resolve().name})"
    return f"{source.stem if source.is_file() else source.name}: instruction-tuning data"


def dataset_card(source, rows: list[dict], ds, download_size: int, *, license: str | None = None,
                 language=("en",)) -> str:
    """The whole README.md for ``rows`` exported from ``source``: ``ds``, the ``datasets.Dataset`` of them,
    and ``download_size``, the bytes of its parquet file, give the YAML's sizes."""
    source = Path(source)
    is_run = source.is_dir() and (source / "run.json").exists()
    name = title(source)
    lines = [f"# {name}", "",
             "Instruction-tuning data exported by `selfinstruct export --format hf`.", "",
             "## Contents", "", f"Columns: {_columns(rows)}. One split, `train`.", ""] + _count_lines(rows)
    lines += [""] + (run_section(source) if is_run else
                     [f"Exported from `{source.name}`; no generate run records (teacher, filters) came with it."])
    lines += ["", "## Use", "", "```python", "from datasets import load_dataset", "",
              'ds = load_dataset("path/to/this/folder", split="train")  # or push_to_hub, then the repo id',
              "```", "", "`selfinstruct train --data path/to/this/folder` trains on it as it is."]
    if license in (None, "unknown"):
        lines += ["", "The license is not set (`export --license`): a teacher's terms of use may apply to its "
                      "outputs."]
    return (yaml_header(ds, download_size, license=license or "unknown", language=language, pretty_name=name)
            + "\n".join(lines) + "\n")
