"""--columns: rows with other field names ({question, answer}) read the same way in every command."""
import json

import pytest
from click.testing import CliRunner

from selfinstruct.cli import main
from selfinstruct.data.columns import parse_columns, rename_columns
from selfinstruct.data.sources import load_rows

QA = [{"question": f"Name a fruit that is {c}.", "answer": f"A {c} {f}.", "id": i}
      for i, (c, f) in enumerate([("red", "apple"), ("yellow", "banana"), ("orange", "orange"),
                                  ("green", "kiwi"), ("purple", "plum"), ("black", "berry")])]
MAP = "instruction=question,output=answer"


@pytest.fixture
def qa(tmp_path):
    p = tmp_path / "qa.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in QA))
    return p


def test_parse_columns_takes_ours_theirs_and_axolotl_names():
    assert parse_columns(MAP) == {"question": "instruction", "answer": "output"}
    assert parse_columns("field_instruction=q, field_output=a") == {"q": "instruction", "a": "output"}
    assert parse_columns("prompt=p,completion=c") == {"p": "prompt", "c": "completion"}
    for bad in ("instruction", "colour=question", "instruction=", "instruction=a,instruction=b"):
        with pytest.raises(ValueError):
            parse_columns(bad)


def test_rename_keeps_a_row_that_already_has_our_name():
    cols = parse_columns(MAP)
    assert rename_columns({"question": "q", "answer": "a"}, cols) == {"instruction": "q", "output": "a"}
    assert rename_columns({"instruction": "i", "question": "q", "output": "o"}, cols) == {
        "instruction": "i", "question": "q", "output": "o"}


def test_without_columns_the_error_names_the_option(qa):
    from selfinstruct.data.records import InputError

    with pytest.raises(InputError, match=r"qa.jsonl:1: missing field 'instruction' \(name yours with --columns"):
        load_rows(qa)
    rows = load_rows(qa, columns=parse_columns(MAP))  # what train reads
    assert [r["instruction"] for r in rows] == [r["question"] for r in QA]


@pytest.mark.parametrize("command", ["generate", "filter", "export", "train", "eval"])
def test_every_command_that_reads_data_takes_columns(command):
    res = CliRunner().invoke(main, [command, "--help"])
    assert "--columns" in res.output


def test_filter_and_export_read_mapped_rows(qa, tmp_path):
    r = CliRunner().invoke(main, ["filter", str(qa), "--out", str(tmp_path / "f.jsonl"), "--columns", MAP,
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    kept = [json.loads(x) for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert kept and all(set(k) >= {"instruction", "input", "output"} for k in kept)
    r = CliRunner().invoke(main, ["export", str(qa), "--format", "alpaca", "--out", str(tmp_path / "a.jsonl"),
                                  "--columns", MAP])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])["output"] == QA[0]["answer"]


def test_a_bad_mapping_is_a_usage_error(qa, tmp_path):
    r = CliRunner().invoke(main, ["filter", str(qa), "--out", str(tmp_path / "f.jsonl"), "--columns", "colour=x"])
    assert r.exit_code == 2 and "--columns" in r.output and not (tmp_path / "f.jsonl").exists()


def test_generate_seeds_and_eval_data_are_mapped(qa, tmp_path):
    r = CliRunner().invoke(main, ["generate", "--seeds", str(qa), "--dry-run", "--out", str(tmp_path / "run"),
                                  "--columns", MAP, "--no-decontaminate"])
    assert "missing field" not in r.output
    assert "only 6 seed task(s)" in r.output  # read, then counted: the mapping applied
    r = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "no-model"), "--data", str(qa),
                                  "--out", str(tmp_path / "ev"), "--columns", MAP])
    assert r.exit_code == 2 and "missing field" not in r.output and "no-model" in r.output, r.output
