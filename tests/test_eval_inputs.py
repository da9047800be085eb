"""`selfinstruct eval` on bad input (one line, exit 2, nothing written), chat rows, and the judge's server options."""
import json

import pytest
from click.testing import CliRunner

from selfinstruct.cli import main
from selfinstruct.evaluation.evaluate import _load_model
from selfinstruct.models import ModelError

from test_evaluate import EVAL_ROWS, noisy_model, write_rows
from tiny import make_tiny_model_dir


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalmodels")
    return noisy_model(root / "A", 0), noisy_model(root / "B", 1)


def run_eval(*args):
    return CliRunner().invoke(main, ["eval", "--max-new-tokens", "4", *map(str, args)])


def assert_refused(result, *needles):
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for n in needles:
        assert n in result.output, result.output


def listing(folder):
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir())


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize("name, text, message", [
    ("empty.jsonl", "", ":1: file is empty"),
    ("blank.jsonl", "\n  \n", ":1: file is empty"),
    ("array.json", "[]", ": no valid rows"),
    ("no_output.jsonl", '{"instruction": "Say hi."}\n', ":1: missing field 'output'"),
    ("empty_refs.jsonl", '{"instruction": "a", "output": "x"}\n{"instruction": "Say hi.", "output": "  "}\n',
     ":2: empty reference output"),
    ("task.jsonl", '{"instruction": "t", "instances": [{"input": "", "output": ""}]}\n', ":1: empty reference output"),
    ("chat.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": ""}]}) + "\n",
     ":1: empty reference output"),
])
def test_data_without_references_is_refused_before_any_model_loads(tmp_path, name, text, message):
    data = tmp_path / name
    data.write_text(text)
    # the model does not exist: were it looked at first, the error would name it
    result = run_eval("--model", tmp_path / "missing", "--data", data, "--out", tmp_path / "out")
    assert_refused(result, f"{data}{message}")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- models


def broken_models(root):
    """Model folders that do not load, each with what the error must name."""
    no_weights = make_tiny_model_dir(root / "no_weights")
    (no_weights / "model.safetensors").unlink()
    truncated = make_tiny_model_dir(root / "truncated")
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    bad_config = make_tiny_model_dir(root / "bad_config")
    (bad_config / "config.json").write_text("{not json")
    lost_shard = make_tiny_model_dir(root / "lost_shard")
    (lost_shard / "model.safetensors").rename(lost_shard / "model-00001-of-00002.safetensors")
    (lost_shard / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    return [(no_weights, "no model.safetensors"), (truncated, "model.safetensors: "),
            (bad_config, "cannot load model"), (lost_shard, "no model-00002-of-00002.safetensors")]


def test_a_model_that_does_not_load_is_named_before_any_model_loads(tmp_path, models):
    data = write_rows(tmp_path / "d.jsonl", EVAL_ROWS)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = listing(out)
    for folder, message in broken_models(tmp_path / "broken"):
        # the broken model comes second: the first one must not have been run (nothing logged, nothing written)
        result = run_eval("--model", models[0], "--model", folder, "--data", data, "--out", out)
        assert_refused(result, f"error: {folder}: ", message)
        assert listing(out) == before
        fresh = tmp_path / f"fresh_{folder.name}"
        assert_refused(run_eval("--model", folder, "--data", data, "--out", fresh), str(folder))
        assert not fresh.exists()


def test_weights_that_break_while_loading_are_one_line(tmp_path):
    folder = make_tiny_model_dir(tmp_path / "m")
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[:100])
    with pytest.raises(ModelError) as e:
        _load_model(str(folder), "m", False)
    assert str(e.value).startswith("m: cannot load model (") and "\n" not in str(e.value)


# --------------------------------------------------------------------------- chat rows

CHAT_ROWS = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
                  {"role": "assistant", "content": "Blue."}]},
    {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}]},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
]
MULTI_TURN = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                           {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}]}


@pytest.mark.parametrize("template", ["alpaca", "chat"])
def test_eval_reads_chat_rows(tmp_path, models, template):
    data = write_rows(tmp_path / "d.jsonl", CHAT_ROWS)
    out = tmp_path / "out"
    result = run_eval("--model", models[0], "--data", data, "--out", out, "--template", template)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["instruction"], r["input"], r["reference"]) for r in rows] == [
        ("Name a colour.", "", "Blue."), ("Say hello.", "", "Hello!"), ("Add the numbers.", "2 and 3", "5")]
    assert [r["line"] for r in rows] == [1, 2, 3]


def test_multi_turn_chat_rows_are_refused_or_skipped(tmp_path, models):
    data = write_rows(tmp_path / "d.jsonl", CHAT_ROWS[:1] + [MULTI_TURN])
    assert_refused(run_eval("--model", models[0], "--data", data, "--out", tmp_path / "o1"),
                   f"{data}:2: a chat row here must be one user turn and the assistant's answer")
    assert not (tmp_path / "o1").exists()
    result = run_eval("--model", models[0], "--data", data, "--out", tmp_path / "o2", "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert f"skipped: {data}:2: a chat row here" in result.output
    assert json.loads((tmp_path / "o2" / "metrics.json").read_text())["rows"] == 1


# --------------------------------------------------------------------------- judge options


def test_judge_server_options_are_checked(tmp_path, models):
    data = write_rows(tmp_path / "d.jsonl", EVAL_ROWS)
    out = tmp_path / "out"
    assert_refused(run_eval("--model", models[0], "--model", models[1], "--data", data, "--out", out,
                            "--judge-base-url", "http://127.0.0.1:9/v1"), "give --judge too")
    assert_refused(run_eval("--model", models[0], "--model", models[1], "--data", data, "--out", out,
                            "--judge", str(models[0]), "--judge-api-key", "k"), "are for openai:MODEL judges")
    assert_refused(run_eval("--model", models[0], "--data", data, "--out", out, "--judge", "openai:x"),
                   "give a second --model")
    assert_refused(run_eval("--model", models[0], "--model", models[1], "--data", data, "--out", out,
                            "--judge", "no-such-judge"), "--judge no-such-judge: unknown teacher")
    assert not out.exists()


def test_a_judge_with_no_key_names_evals_own_flags(tmp_path, models, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    data = write_rows(tmp_path / "d.jsonl", EVAL_ROWS)
    result = run_eval("--model", models[0], "--model", models[1], "--data", data, "--out", tmp_path / "out",
                      "--judge", "openai:gpt-4o-mini")
    assert_refused(result, "pass --judge-api-key", "point --judge-base-url")


GOOD = "sk-katan-judge-key"


@pytest.fixture(scope="module")
def katan():
    from servers import start_katan

    with start_katan("--validate-keys", "--api-keys", f"openai={GOOD}") as url:
        yield url


@pytest.mark.server
def test_judge_talks_to_the_given_server_with_the_given_key(tmp_path, models, katan, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    data = write_rows(tmp_path / "d.jsonl", EVAL_ROWS)
    args = ["--model", models[0], "--model", models[1], "--data", data, "--judge", "openai:echo-model",
            "--judge-base-url", katan]
    wrong = run_eval(*args, "--out", tmp_path / "wrong", "--judge-api-key", "sk-wrong-key-123456")
    assert_refused(wrong, "--judge openai:echo-model: ")
    assert "sk-wrong-key-123456" not in wrong.output and not (tmp_path / "wrong").exists()

    out = tmp_path / "out"
    result = run_eval(*args, "--out", out, "--judge-api-key", GOOD)
    assert result.exit_code == 0, result.output
    judged = [json.loads(x) for x in (out / "judge.jsonl").read_text().splitlines()]
    assert len(judged) == 4 and all(j["error"] is None for j in judged)
    # the echo server answers with our prompt, so the record proves the judge prompt went there
    assert judged[0]["a_first"].startswith("[echo]") and "What is 2+2?" in judged[0]["a_first"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["judge"]["judge"] == "openai:echo-model" and metrics["judge"]["n"] + metrics["judge"]["unparsed"] == 4
    assert all(GOOD not in p.read_text() for p in out.iterdir())

    monkeypatch.setenv("OPENAI_API_KEY", GOOD)            # the environment variable still works
    again = run_eval(*args, "--out", tmp_path / "env")
    assert again.exit_code == 0, again.output
    assert len((tmp_path / "env" / "judge.jsonl").read_text().splitlines()) == 4
