"""`selfinstruct export` on the command line: stdout, gzip, one-line template errors, the tokenizer alone."""
from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

from selfinstruct.cli import main
from test_export import ROWS, write_rows
from tiny import make_tiny_model_dir


def export(*args):
    return CliRunner().invoke(main, ["export", *map(str, args)])


def test_out_dash_writes_jsonl_to_stdout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    r = export(src, "--format", "messages", "--out", "-")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == len(ROWS) and rows[0]["messages"][0]["role"] == "user"
    assert "5 messages rows -> stdout" in r.stderr and not (tmp_path / "-").exists()
    hf = export(src, "--format", "hf", "--out", "-")
    assert hf.exit_code == 2 and hf.output.count("\n") == 1 and "is for the JSONL formats" in hf.output


def test_gz_out_is_gzip(tmp_path):
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    r = export(src, "--format", "alpaca", "--out", tmp_path / "a.jsonl.gz")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()).splitlines()]
    assert rows == ROWS
    back = export(tmp_path / "a.jsonl.gz", "--format", "sharegpt", "--out", tmp_path / "s.jsonl")
    assert back.exit_code == 0, back.output


def test_a_model_with_no_chat_template_is_one_line_naming_it(tmp_path):
    model = make_tiny_model_dir(tmp_path / "nochat", chat_template=False)
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    r = export(src, "--format", "prompt-completion", "--template", "chat", "--model", model,
               "--out", tmp_path / "pc.jsonl")
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and r.output.count("\n") == 1, r.output
    assert f"the model {model} (--model picks another) has no chat template" in r.output
    assert not (tmp_path / "pc.jsonl").exists()


@pytest.mark.slow
def test_export_reads_a_packaged_models_tokenizer_without_converting_it(tmp_path, monkeypatch):
    import selfinstruct.models as models

    monkeypatch.setenv("SELFINSTRUCT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "convert_gguf", lambda *a: pytest.fail("converted the whole model"))
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    r = export(src, "--format", "prompt-completion", "--template", "chat", "--model", "smollm2",
               "--out", tmp_path / "pc.jsonl")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "pc.jsonl").read_text().splitlines()[0])["prompt"].startswith("<|im_start|>")
    assert not (tmp_path / "cache" / "models").exists()
