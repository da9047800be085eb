"""The `export --format hf` dataset card: YAML that `datasets` and huggingface_hub read with no warning,
the Hub's fields, and a body written from the run's own run.json (#25.4, #27.8)."""
from __future__ import annotations

import logging
from pathlib import Path

import yaml
from click.testing import CliRunner

from selfinstruct.cli import main
from selfinstruct.data.export import export
from test_export import ROWS, write_rows


def generate(out: Path, **options) -> Path:
    from fake_teacher import FakeTeacher
    from selfinstruct.data.seeds import load_seeds
    from selfinstruct.generation.bootstrap import GenerateConfig, run
    from selfinstruct.generation.journal import RunState

    cfg = GenerateConfig(rounds=2, teacher="fake", prompts_per_round=3, instances=3, seed=1, **options)
    run(FakeTeacher(1, delay=0), cfg, RunState(out, cfg.run_json(), load_seeds()), echo=lambda m: None)
    return out


def header(folder: Path) -> dict:
    return yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])


class Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_datasets_loads_the_card_with_no_warning_and_the_hub_reads_its_fields(tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    src = write_rows(tmp_path / "src.jsonl", ROWS)
    r = CliRunner().invoke(main, ["export", str(src), "--format", "hf", "--out", str(tmp_path / "hf"),
                                  "--license", "apache-2.0", "--language", "en", "--language", "zh"])
    assert r.exit_code == 0, r.output
    caught = Warnings()
    logger = logging.getLogger("datasets")
    logger.addHandler(caught)
    try:
        ds = datasets.load_dataset(str(tmp_path / "hf"), split="train", cache_dir=str(tmp_path / "cache"))
    finally:
        logger.removeHandler(caught)
    assert caught.lines == [] and len(ds) == len(ROWS)
    card = DatasetCard.load(tmp_path / "hf" / "README.md")
    assert card.data.license == "apache-2.0" and card.data.language == ["en", "zh"]
    assert card.data.task_categories == ["text-generation"] and card.data.size_categories == ["n<1K"]
    assert "self-instruct" in card.data.tags
    split = header(tmp_path / "hf")["dataset_info"]["splits"][0]
    assert split["name"] == "train" and split["num_examples"] == len(ROWS) and split["num_bytes"] > 0


def test_license_and_language_default_and_are_checked(tmp_path):
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    export(src, "hf", tmp_path / "hf")
    head = header(tmp_path / "hf")
    assert head["license"] == "unknown" and head["language"] == ["en"]
    assert "export --license" in (tmp_path / "hf" / "README.md").read_text()
    for flag, value in (("--license", "Apache 2.0"), ("--language", "english")):
        r = CliRunner().invoke(main, ["export", str(src), "--format", "hf", "--out", str(tmp_path / "x"), flag, value])
        assert r.exit_code == 2 and r.output.startswith(f"error: {flag}: ") and r.output.count("\n") == 1, r.output
        assert not (tmp_path / "x").exists()


def test_the_title_names_the_teacher_and_the_run(tmp_path):
    run = generate(tmp_path / "run-42")
    export(run, "hf", tmp_path / "hf")
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "\n# Self-Instruct data from fake (run run-42)\n" in card
    assert header(tmp_path / "hf")["pretty_name"] == "Self-Instruct data from fake (run run-42)"


def test_the_card_states_the_filters_the_run_used(tmp_path):
    evals = write_rows(tmp_path / "my_eval.jsonl", ROWS[:2])
    run = generate(tmp_path / "run", blacklist=("foo",), tokenizer="unicode",
                   decontaminate=("packaged", str(evals)), instance_temperature=0.3)
    export(run, "hf", tmp_path / "hf")
    card = " ".join((tmp_path / "hf" / "README.md").read_text().split())
    assert "blacklisted words foo;" in card and "image" not in card
    assert "ASCII first character" not in card and "identical to rouge-score" not in card
    assert "Unicode words" in card
    assert "the packaged eval set (162 held-out tasks), `my_eval.jsonl`" in card
    assert "sampling of instances: temperature 0.3, top-p 0.5" in card


def test_the_card_of_a_default_run_and_of_an_undecontaminated_one(tmp_path):
    run = generate(tmp_path / "run", decontaminate=())
    export(run, "hf", tmp_path / "hf")
    card = " ".join((tmp_path / "hf" / "README.md").read_text().split())
    assert "blacklisted words image, images, graph" in card and "an ASCII first character" in card
    assert "identical to rouge-score" in card and "Decontamination: none" in card
