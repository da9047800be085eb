"""Resuming `generate` keeps the run's options: the ones not passed come from run.json; a passed one that
differs is refused (data-defining) or recorded under invocations (#25.10)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from selfinstruct import cli, teachers
from fake_teacher import FakeTeacher


@pytest.fixture
def made(monkeypatch):
    calls = []
    monkeypatch.setattr(teachers, "make_teacher", lambda *a, **k: calls.append((a, k)) or FakeTeacher())
    return calls


def generate(out, *args):
    return CliRunner().invoke(cli.main, ["generate", "--out", str(out), "--prompts-per-round", "2", *map(str, args)])


def run_json(out) -> dict:
    return json.loads((out / "run.json").read_text())


def test_a_bare_resume_keeps_every_option_of_the_run(tmp_path, made):
    out = tmp_path / "run"
    first = generate(out, "--rounds", "1", "--max-tokens", "256", "--temperature", "0.3", "--top-p", "0.8",
                     "--instance-temperature", "0.2", "--threshold", "0.6", "--blacklist", "foo")
    assert first.exit_code == 0, first.output
    bare = CliRunner().invoke(cli.main, ["generate", "--out", str(out), "--rounds", "2"])
    assert bare.exit_code == 0, bare.output
    last = run_json(out)["invocations"][-1]
    assert last["max_tokens"] == 256 and last["temperature"] == 0.3 and last["top_p"] == 0.8
    assert last["instance_temperature"] == 0.2 and last["threshold"] == 0.6 and last["blacklist"] == ["foo"]
    assert last["prompts_per_round"] == 2 and last["from_round"] == 2
    assert made[-1][0][0] == "embedded" and made[-1][1]["seed"] == 0


@pytest.mark.slow  # the dry run counts tokens with the embedded model's tokenizer, read from its GGUF file
def test_the_dry_run_of_a_resumed_folder_plans_with_the_runs_own_limit(tmp_path, made):
    out = tmp_path / "run"
    first = generate(out, "--rounds", "1", "--max-tokens", "256")
    assert first.exit_code == 0, first.output
    dry = CliRunner().invoke(cli.main, ["generate", "--out", str(out), "--rounds", "3", "--dry-run"])
    assert dry.exit_code == 0 and "--max-tokens 256" in dry.output, dry.output


def test_a_bare_resume_runs_to_the_runs_own_rounds(tmp_path, made, monkeypatch):
    out = tmp_path / "run"
    from selfinstruct.generation import bootstrap

    real = bootstrap.run_round
    calls = []

    def crash_in_round_2(teacher, cfg, state, gate, round_no):
        calls.append(round_no)
        if round_no == 2 and len(calls) == 2:
            raise KeyboardInterrupt
        return real(teacher, cfg, state, gate, round_no)

    monkeypatch.setattr(bootstrap, "run_round", crash_in_round_2)
    assert generate(out, "--rounds", "7").exit_code == 130
    bare = CliRunner().invoke(cli.main, ["generate", "--out", str(out)])
    assert bare.exit_code == 0, bare.output
    assert len(json.loads((out / "stats.json").read_text())["rounds"]) == 7


@pytest.mark.parametrize("args, message", [
    (["--threshold", "0.5"], "cannot resume with --threshold 0.5: the run was generated with --threshold 0.7"),
    (["--style", "alpaca"], "cannot resume with --style alpaca: the run was generated with --style selfinstruct"),
    (["--blacklist", "bar"], "cannot resume with --blacklist bar: the run was generated with --blacklist foo"),
    (["--teacher", "smollm2"], "cannot resume with --teacher smollm2: the run was generated with --teacher embedded"),
])
def test_a_passed_option_that_defines_the_data_is_refused_naming_both_values(tmp_path, made, args, message):
    out = tmp_path / "run"
    assert generate(out, "--rounds", "1", "--blacklist", "foo").exit_code == 0
    before = (out / "run.json").read_text()
    res = generate(out, "--rounds", "2", *args)
    assert res.exit_code == 2 and res.output == f"error: {out}: {message}; drop the option or choose another --out\n"
    assert (out / "run.json").read_text() == before and len(made) == 1


def test_a_passed_sampling_change_is_accepted_said_and_recorded(tmp_path, made):
    out = tmp_path / "run"
    assert generate(out, "--rounds", "1", "--max-tokens", "256").exit_code == 0
    res = generate(out, "--rounds", "2", "--max-tokens", "300", "--temperature", "0.9")
    assert res.exit_code == 0, res.output
    assert "resuming with --max-tokens 300 (the run so far used 256)" in res.output
    assert "resuming with --temperature 0.9 (the run so far used 1.0)" in res.output
    first, second = run_json(out)["invocations"]
    assert (first["max_tokens"], second["max_tokens"]) == (256, 300)
    assert (first["temperature"], second["temperature"]) == (1.0, 0.9)
