"""The README.md dataset card of an `export --format hf` folder.

A YAML header the Hub and ``datasets`` read (configs, features, split sizes), then
what a reader needs to judge the data: counts, the teacher, the seeds, the filters
applied, and the generate stats per round when the source is a `generate` folder.
The YAML comes from ``huggingface_hub.DatasetCardData``, the features from ``datasets``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .writers import read_jsonl_lenient

TASK_FILTERS = (
    "Instructions: the Self-Instruct/Alpaca heuristics (more than 3 and at most 150 words; none of the "
    "blacklisted words such as image, graph, file, map, draw, plot, video, audio; no leading punctuation; "
    "not 'Write a program'; an ASCII first character), then ROUGE-L F1 at most {threshold} against every "
    "seed and every kept instruction (exact, identical to rouge-score).",
    "Instances: empty outputs, outputs equal to the input, duplicates and inputs with conflicting outputs "
    "dropped; at most {instances} per task; a task left with none is rejected.",
)


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


def yaml_header(rows: list[dict]) -> str:
    import datasets
    from huggingface_hub import DatasetCardData

    features = datasets.Dataset.from_list(rows[:1000]).info._to_yaml_dict()["features"]
    data = DatasetCardData(
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
        dataset_info={"features": features, "splits": [{"name": "train", "num_examples": len(rows)}]},
        task_categories=["text-generation"], tags=["synthetic", "self-instruct", "selfinstruct"],
        size_categories=[size_category(len(rows))])
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


def run_section(folder: Path) -> list[str]:
    """What a `generate` folder says about how the rows were made."""
    run, stats = _json(folder / "run.json"), _json(folder / "stats.json")
    tasks = read_jsonl_lenient(folder / "tasks.jsonl")
    seeds = run.get("seeds") or "the 175 seed tasks packaged with selfinstruct"
    lines = ["## How it was made", "",
             f"Generated with `selfinstruct generate` ({run.get('style', 'selfinstruct')} style), the "
             "Self-Instruct method (Wang et al. 2022).", "",
             f"- teacher: `{run.get('teacher_name') or run.get('teacher') or stats.get('teacher')}`",
             f"- seeds: {seeds} ({stats.get('seeds', '?')} tasks, sha256 `{run.get('seeds_sha256', '?')[:16]}`)",
             f"- tasks: {len(tasks)}, of which classification: {sum(bool(t.get('is_classification')) for t in tasks)}",
             f"- sampling: temperature {run.get('temperature')}, top-p {run.get('top_p')}, seed {run.get('seed')}",
             f"- created: {run.get('created', '?')}", "", "### Filters applied", ""]
    values = {"threshold": run.get("threshold", 0.7), "instances": run.get("instances", 5)}
    lines += [f"- {f.format(**values)}" for f in TASK_FILTERS]
    lines += ["", "### Generate stats", ""] + _round_table(stats)
    return lines


def dataset_card(source, rows: list[dict]) -> str:
    """The whole README.md for ``rows`` exported from ``source``."""
    source = Path(source)
    is_run = source.is_dir() and (source / "run.json").exists()
    lines = [f"# {source.name if is_run else source.stem}", "",
             "Instruction-tuning data exported by `selfinstruct export --format hf`.", "",
             "## Contents", "", f"Columns: {_columns(rows)}. One split, `train`.", ""] + _count_lines(rows)
    lines += [""] + (run_section(source) if is_run else
                     [f"Exported from `{source.name}`; no generate run records (teacher, filters) came with it."])
    lines += ["", "## Use", "", "```python", "from datasets import load_dataset", "",
              'ds = load_dataset("path/to/this/folder", split="train")  # or push_to_hub, then the repo id',
              "```", "", "`selfinstruct train --data path/to/this/folder` trains on it as it is."]
    return yaml_header(rows) + "\n".join(lines) + "\n"
