"""Hostile input for `filter`, `train`, `eval` and `generate --seeds`.

Every bad input gives exactly one stderr line ``error: FILE:LINE: problem`` (or
``error: FILE: problem`` when no line applies), exit code 2, no traceback; the
check runs before any model or teacher loads (loading raises AssertionError
here); nothing in the output location is created, overwritten or truncated.
``--skip-invalid`` skips the bad rows instead, names each one, and goes on.

A row longer than ``records.MAX_ROW_CHARS`` (1,000,000 characters) is refused
with its line number, even when it is valid JSON: no instruction-tuning row is
that long, and tokenising or ROUGE-scoring it would take minutes and gigabytes.
"""
import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from campaign import record
from selfinstruct.cli import main
from tiny import make_tiny_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("filter", "train", "eval", "generate")
BIG_MB = 50

def example(i: int) -> dict:
    return {"instruction": f"Describe the color number {i} of the rainbow in detail.", "input": "",
            "output": f"Color {i} is bright."}


def task(i: int) -> dict:
    return {"instruction": f"Explain the meaning of the proverb number {i} in simple words.",
            "instances": [{"input": f"Proverb {i}", "output": f"It means {i}."}], "is_classification": False}


def valid_lines(command: str, n: int = 9) -> list[bytes]:
    make = task if command == "generate" else example
    return [json.dumps(make(i)).encode() for i in range(n)]


def bad_line(kind: str) -> tuple[bytes, str]:
    """(line 3 of the file, a fragment the error must hold)."""
    return {
        "malformed_json": (b'{"instruction": "Say hi", "output": ', "invalid JSON"),
        "wrong_type": (b'{"instruction": 5, "input": "", "output": "five"}', "must be a string"),
        "missing_field": (b'{"instruction": "List three animals that can fly."}', "missing field 'output'"),
        "not_an_object": (b'["instruction", "output"]', "expected a JSON object"),
        "not_utf8": (b'{"instruction": "Translate caf\xe9 au lait", "output": "x"}', "not valid UTF-8"),
        "lone_surrogate": (b'{"instruction": "Describe the odd symbol \\ud800 here.", "output": "x"}', "surrogate"),
    }[kind]


ROW_CASES = ("malformed_json", "wrong_type", "missing_field", "not_an_object", "not_utf8", "lone_surrogate")
FILE_CASES = ("empty_file", "directory", "missing_file", "huge_valid_row", "huge_invalid_row")


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch):
    """Any model or teacher load fails the test: input checks must come first."""
    import transformers

    import selfinstruct.evaluation.evaluate
    import selfinstruct.models
    import selfinstruct.teachers
    import selfinstruct.training.train

    def boom(*a, **k):
        raise AssertionError("a model or teacher was loaded before the input checks")

    for mod, name in ((selfinstruct.models, "load_model_and_tokenizer"), (selfinstruct.models, "resolve_model"),
                      (selfinstruct.training.train, "resolve_model"), (selfinstruct.evaluation.evaluate, "resolve_model"),
                      (selfinstruct.teachers, "make_teacher")):
        monkeypatch.setattr(mod, name, boom)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", boom)


def argv(command: str, data, out, model="no-such-model-folder/"):
    if command == "filter":
        return ["filter", str(data), "--out", str(out / "kept.jsonl"), "--rejected", str(out / "rejected.jsonl")]
    if command == "train":
        return ["train", "--data", str(data), "--out", str(out), "--model", str(model)]
    if command == "eval":
        return ["eval", "--data", str(data), "--out", str(out), "--model", str(model)]
    return ["generate", "--seeds", str(data), "--out", str(out), "--rounds", "1",
            "--teacher", "openai:m", "--base-url", "http://127.0.0.1:9/v1"]


def snapshot(folder):
    return {p: open(os.path.join(folder, p), "rb").read() for p in sorted(os.listdir(folder))}


def sentinel_out(tmp_path):
    """An output folder already holding a user's file (train refuses it; the data error must win)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_bytes(b"precious\n")
    return out


def assert_one_line_error(res, path, line, fragment):
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    where = f"{path}:{line}: " if line else f"{path}"
    assert lines[0].startswith(f"error: {where}"), (lines[0], where)
    assert fragment.lower() in lines[0].lower(), (lines[0], fragment)


def write_big(path, valid: bool, mb: int = BIG_MB) -> None:
    words = "word " * (mb * 1024 * 1024 // 5)
    with open(path, "w") as f:
        if valid:
            f.write(json.dumps({"instruction": words, "input": "", "output": "ok",
                                "instances": [{"input": "", "output": "ok"}]}) + "\n")
        else:
            f.write('{"instruction": "' + words + "\n")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ROW_CASES)
def test_bad_row(tmp_path, command, case):
    line, fragment = bad_line(case)
    rows = valid_lines(command)
    data = tmp_path / "data.jsonl"
    data.write_bytes(b"\n".join(rows[:2] + [line] + rows[2:]) + b"\n")
    out = sentinel_out(tmp_path)
    before = snapshot(out)
    res = CliRunner().invoke(main, argv(command, data, out))
    assert_one_line_error(res, data, 3, fragment)
    assert snapshot(out) == before
    record("hostile", command=command, case=case)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", FILE_CASES)
def test_bad_file(tmp_path, command, case):
    data = tmp_path / "data.jsonl"
    line, fragment = None, ""
    if case == "empty_file":
        data.write_bytes(b"")
        line, fragment = 1, "empty"
    elif case == "directory":
        data.mkdir()
        (data / "x.jsonl").write_text(json.dumps(example(1)) + "\n")
    elif case == "missing_file":
        fragment = "no such file"
    else:
        write_big(data, valid=case == "huge_valid_row", mb=3)  # over the limit; 50 MB: test_huge_line_memory
        line, fragment = 1, "characters long"
    out = sentinel_out(tmp_path)
    before = snapshot(out)
    res = CliRunner().invoke(main, argv(command, data, out))
    assert_one_line_error(res, data, line, fragment)
    assert snapshot(out) == before
    record("hostile", command=command, case=case)


@pytest.mark.parametrize("command", COMMANDS)
def test_output_that_cannot_be_written(tmp_path, command):
    """Root ignores permission bits, so the output lies under a regular file."""
    data = tmp_path / "data.jsonl"
    data.write_bytes(b"\n".join(valid_lines(command)) + b"\n")
    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"not a folder\n")
    out = blocker / "out"
    res = CliRunner().invoke(main, argv(command, data, out, model=tmp_path / "no-model"))
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(blocker) in lines[0], res.stderr
    assert blocker.read_bytes() == b"not a folder\n"
    record("hostile", command=command, case="unwritable_output")


@pytest.mark.parametrize("command", ("train", "eval"))
def test_existing_outputs_are_never_overwritten(tmp_path, command):
    """A finished run's files stay byte-for-byte when the same --out is given again."""
    data = tmp_path / "data.jsonl"
    data.write_bytes(b"\n".join(valid_lines(command)) + b"\n")
    out = tmp_path / "out"
    out.mkdir()
    names = ["metrics.jsonl", "model.safetensors"] if command == "train" else ["results.jsonl", "metrics.json"]
    for n in names:
        (out / n).write_bytes(b"old run\n")
    before = snapshot(out)
    res = CliRunner().invoke(main, argv(command, data, out, model=tmp_path / "no-model"))
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert snapshot(out) == before
    record("hostile", command=command, case="existing_output")


def test_generate_resume_with_bad_seeds_leaves_the_run_alone(tmp_path):
    from fake_teacher import run

    out = tmp_path / "run"
    run(out, seed=0, rounds=1, delay=0)
    before = snapshot(out)
    data = tmp_path / "seeds.jsonl"
    line, fragment = bad_line("malformed_json")
    data.write_bytes(b"\n".join(valid_lines("generate")[:2] + [line]) + b"\n")
    res = CliRunner().invoke(main, argv("generate", data, out))
    assert_one_line_error(res, data, 3, fragment)
    assert snapshot(out) == before


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize("command", COMMANDS)
def test_huge_line_memory(tmp_path, command):
    """A 50 MB line is refused without holding many copies of it (peak RSS of a subprocess)."""
    data = tmp_path / "big.jsonl"
    write_big(data, valid=True)
    out = tmp_path / "out"
    # VmHWM (peak RSS of this process image; ru_maxrss would include the forked pytest parent)
    code = ("import re, sys\nfrom selfinstruct.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "    print(e.code, hwm)\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", code, *argv(command, data, out, model=tmp_path / "none")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    exit_code, rss_kb = map(int, p.stdout.split())
    assert exit_code == 2, p.stderr
    assert f"{data}:1: " in p.stderr and "Traceback" not in p.stderr
    assert rss_kb < 4 * BIG_MB * 1024 + 200 * 1024, f"peak RSS {rss_kb / 1024:.0f} MB"  # about 3 copies at most
    assert not out.exists()
    record("huge_line_rss", command=command, peak_rss_mb=round(rss_kb / 1024))


# --------------------------------------------------------------------------- --skip-invalid


def mixed_file(tmp_path, command) -> tuple:
    """Valid rows with every kind of bad row between them; returns (path, bad line numbers, valid count)."""
    rows = valid_lines(command)
    lines, bad = [], []
    for i, row in enumerate(rows):
        lines.append(row)
        if i < len(ROW_CASES):
            lines.append(bad_line(ROW_CASES[i])[0])
            bad.append(len(lines))
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    return data, bad, len(rows)


def assert_skips_named(stderr, data, bad):
    """Each bad line shown is named file:line (a command may show only the first few)."""
    shown = [ln for ln in stderr.splitlines() if "skipped" in ln and f"{data}:" in ln]
    assert len(shown) >= min(len(bad), 5), stderr
    for ln in shown:
        assert any(f"{data}:{n}: " in ln for n in bad), ln


def test_skip_invalid_filter(tmp_path):
    data, bad, n_valid = mixed_file(tmp_path, "filter")
    out = tmp_path / "kept.jsonl"
    res = CliRunner().invoke(main, ["filter", str(data), "--out", str(out), "--rejected",
                                    str(tmp_path / "rej.jsonl"), "--skip-invalid", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert_skips_named(res.stderr, data, bad)
    assert re.search(rf"skipped \(invalid rows\)\s+{len(bad)}\n", res.stderr), res.stderr
    kept = out.read_text().splitlines()
    rej = (tmp_path / "rej.jsonl").read_text().splitlines()
    assert len(kept) + len(rej) == n_valid
    record("hostile", command="filter", case="skip_invalid")


def test_skip_invalid_generate(tmp_path, monkeypatch):
    import selfinstruct.teachers

    from fake_teacher import FakeTeacher

    monkeypatch.setattr(selfinstruct.teachers, "make_teacher", lambda *a, **k: FakeTeacher(0))
    data, bad, n_valid = mixed_file(tmp_path, "generate")
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["generate", "--seeds", str(data), "--out", str(out), "--rounds", "1",
                                    "--teacher", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
                                    "--skip-invalid", "--prompts-per-round", "1"])
    assert res.exit_code == 0, res.output
    assert_skips_named(res.stderr, data, bad)
    assert json.loads((out / "stats.json").read_text())["seeds"] == n_valid
    record("hostile", command="generate", case="skip_invalid")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def test_skip_invalid_train(tmp_path, tiny_model, monkeypatch):
    monkeypatch.undo()  # this one really trains
    data, bad, n_valid = mixed_file(tmp_path, "train")
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(tiny_model), "--out", str(out),
                                    "--max-steps", "1", "--batch-size", "2", "--val-fraction", "0",
                                    "--skip-invalid"])
    assert res.exit_code == 0, res.output
    assert_skips_named(res.stderr, data, bad)
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert (row["rows"], row["skipped_invalid"]) == (n_valid, len(bad))
    record("hostile", command="train", case="skip_invalid")


def test_skip_invalid_eval(tmp_path, tiny_model, monkeypatch):
    monkeypatch.undo()
    data, bad, n_valid = mixed_file(tmp_path, "eval")
    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["eval", "--data", str(data), "--model", str(tiny_model), "--out", str(out),
                                    "--max-new-tokens", "2", "--skip-invalid"])
    assert res.exit_code == 0, res.output
    assert_skips_named(res.stderr, data, bad)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == n_valid and metrics["skipped_invalid"] == len(bad)
    record("hostile", command="eval", case="skip_invalid")



@pytest.mark.parametrize("option", ["--repeat-penalty", "--instance-repeat-penalty"])
def test_repeat_penalty_with_an_openai_teacher_is_refused(tmp_path, option):
    """An OpenAI-compatible API takes no repeat penalty: one line, exit 2, before the teacher is built,
    rather than a run.json that records a penalty no request carried."""
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["generate", "--teacher", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
                                    option, "1.2", "--out", str(out)])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert f"error: {option}: applies to local teachers only" in res.output
    assert not out.exists()
    res = CliRunner().invoke(main, ["generate", "--teacher", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
                                    option, "1", "--dry-run", "--out", str(out)])
    assert res.exit_code == 0, res.output  # 1 is off: nothing to refuse
