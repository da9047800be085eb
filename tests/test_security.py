"""Security: the API key never leaks; no remote code unless asked; no pickle weights; paths never from model text."""
import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfinstruct.cli import main
from servers import start_katan
from tiny import make_tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-proj-LEAKCHECK-7d41c9e2b6a8f035"
KEY_PARTS = (KEY, "7d41c9e2b6a8f035", "LEAKCHECK")


def all_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


def assert_no_key(*texts):
    for text in texts:
        for part in KEY_PARTS:
            assert part not in text, f"API key fragment {part!r} leaked"


def run_generate(url, out, *extra, env=None):
    return CliRunner(env=env).invoke(main, [
        "generate", "--teacher", "openai:echo-model", "--base-url", url, "--out", str(out), "--rounds", "1",
        "--prompts-per-round", "2", "--max-retries", "1", "--request-timeout", "5", *extra])


@pytest.mark.server
@pytest.mark.parametrize("via", ["flag", "env"])
def test_api_key_never_written_or_printed(tmp_path, caplog, via):
    caplog.set_level(logging.DEBUG)
    extra, env = (["--api-key", KEY], None) if via == "flag" else ([], {"OPENAI_API_KEY": KEY})
    with start_katan("--error-rate", "0.5") as url:  # answers and failures both
        res = run_generate(url, tmp_path / "run", *extra, env=env)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "stats.json").read_text())["total"]["requests"] >= 2
    assert_no_key(res.output, res.stderr, caplog.text, all_text(tmp_path))


@pytest.mark.server
def test_api_key_redacted_when_the_server_refuses_it(tmp_path, caplog):
    """A server that rejects the key (401) and quotes it back: one redacted error line, exit 2."""
    caplog.set_level(logging.DEBUG)
    with start_katan("--validate-keys", "--api-keys", "openai=the-right-key") as url:
        res = run_generate(url, tmp_path / "run", "--api-key", KEY)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert_no_key(res.output, res.stderr, caplog.text, all_text(tmp_path))


@pytest.mark.server
def test_api_key_redacted_when_the_server_is_unreachable(tmp_path, caplog):
    from servers import free_port

    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{free_port()}/v1"
    res = run_generate(url, tmp_path / "run", env={"OPENAI_API_KEY": KEY})
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert_no_key(res.output, res.stderr, caplog.text, all_text(tmp_path))


def test_key_is_not_a_config_field():
    from selfinstruct.generation.bootstrap import GenerateConfig

    assert not any("key" in k for k in GenerateConfig().run_json())


# --------------------------------------------------------------------------- remote code


def test_no_from_pretrained_forces_remote_code():
    """Every from_pretrained call in the package passes trust_remote_code through a variable (or not at all)."""
    calls = []
    for path in (ROOT / "selfinstruct").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "from_pretrained":
                kw = {k.arg: k.value for k in node.keywords}
                value = kw.get("trust_remote_code")
                assert not (isinstance(value, ast.Constant) and value.value is True), f"{path.name}:{node.lineno}"
                calls.append(f"{path.name}:{node.lineno}")
    assert calls


@pytest.mark.parametrize("command", ["train", "eval", "generate"])
def test_every_model_command_has_the_opt_in_flag(command):
    res = CliRunner().invoke(main, [command, "--help"])
    assert "--trust-remote-code" in res.output


def make_remote_code_model(folder: Path, marker: Path) -> Path:
    """A tiny checkpoint whose config asks for custom code; importing that code writes ``marker``."""
    make_tiny_model_dir(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig",
                       "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    cfg["model_type"] = "evil"
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "configuration_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('custom code ran')\n"
        "from transformers import LlamaConfig\n\nclass EvilConfig(LlamaConfig):\n    model_type = 'evil'\n")
    (folder / "modeling_evil.py").write_text(
        "from transformers import LlamaForCausalLM\nfrom .configuration_evil import EvilConfig\n\n"
        "class EvilForCausalLM(LlamaForCausalLM):\n    config_class = EvilConfig\n")
    return folder


def data_file(tmp_path) -> Path:
    rows = [{"instruction": f"Name the number {i} in words please.", "input": "", "output": f"number {i}"}
            for i in range(6)]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def model_command(command, model, tmp_path, *extra):
    data = data_file(tmp_path)
    if command == "train":
        return ["train", "--data", str(data), "--model", str(model), "--out", str(tmp_path / "run"),
                "--max-steps", "1", "--batch-size", "2", "--val-fraction", "0", *extra]
    if command == "eval":
        return ["eval", "--data", str(data), "--model", str(model), "--out", str(tmp_path / "ev"),
                "--max-new-tokens", "2", *extra]
    return ["generate", "--teacher", f"hf:{model}", "--out", str(tmp_path / "gen"), "--rounds", "1",
            "--prompts-per-round", "1", "--max-tokens", "16", *extra]


@pytest.mark.parametrize("command", ["train", "eval", "generate"])
def test_custom_code_is_refused_without_the_flag(tmp_path, command):
    marker = tmp_path / "marker"
    model = make_remote_code_model(tmp_path / "evil", marker)
    res = CliRunner().invoke(main, model_command(command, model, tmp_path))
    assert res.exit_code == 2 and "Traceback" not in res.output, (res.output, res.exception)
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "--trust-remote-code" in lines[0], res.stderr
    assert not marker.exists()


def test_custom_code_runs_with_the_flag(tmp_path):
    marker = tmp_path / "marker"
    model = make_remote_code_model(tmp_path / "evil", marker)
    code = ("import sys\nfrom selfinstruct.cli import main\nmain(sys.argv[1:])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", code, *model_command("train", model, tmp_path,
                                                                      "--trust-remote-code")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert marker.read_text() == "custom code ran"


def test_dry_run_honours_the_flag(tmp_path):
    """`generate --dry-run` counts tokens with an hf: teacher's own tokenizer: custom code needs the flag
    there too, and the flag lets it run (before, the dry run refused even with it)."""
    marker = tmp_path / "marker"
    model = make_remote_code_model(tmp_path / "evil", marker)
    cfg = json.loads((model / "tokenizer_config.json").read_text())  # the tokenizer's own custom class
    cfg.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": [None, "tokenization_evil.EvilTokenizer"]})
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    (model / "tokenization_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('custom code ran')\n"
        "from transformers import PreTrainedTokenizerFast\n\nclass EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n")
    args = model_command("generate", model, tmp_path, "--dry-run")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "--trust-remote-code" in res.stderr and not marker.exists()
    code = "import sys\nfrom selfinstruct.cli import main\nmain(sys.argv[1:])\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", code, *args, "--trust-remote-code"], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "own tokenizer" in p.stdout and marker.read_text() == "custom code ran"


# --------------------------------------------------------------------------- pickle weights


@pytest.fixture(scope="module")
def pickle_model(tmp_path_factory):
    """A tiny checkpoint saved as pytorch_model.bin only."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = make_tiny_model_dir(tmp_path_factory.mktemp("pkl") / "model")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


@pytest.mark.parametrize("command", ["train", "eval", "generate"])
def test_pickle_checkpoint_is_refused(tmp_path, pickle_model, command):
    res = CliRunner().invoke(main, model_command(command, pickle_model, tmp_path))
    assert res.exit_code == 2 and "Traceback" not in res.output, (res.output, res.exception)
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "safetensors" in lines[0] and str(pickle_model) in lines[0], res.stderr


# --------------------------------------------------------------------------- paths from model text


def test_model_text_never_becomes_a_path(tmp_path, monkeypatch):
    """Instructions that look like paths stay data: only the run's own files are written."""
    from fake_teacher import FakeTeacher, run
    from selfinstruct.generation.journal import FILES

    evil = ["Summarize ../../escape/owned.txt for a careful beginner reader",
            "Explain what /tmp/selfinstruct-pwned/x.txt contains in three sentences",
            "Describe ..\\..\\windows\\evil and ~/.ssh/id_rsa as a short poem"]

    def instructions(self, rng, prompt):
        return "\n".join(f"{i}. {text} {rng.randint(0, 10**9)}" for i, text in enumerate(evil, 1))

    monkeypatch.setattr(FakeTeacher, "instructions", instructions)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "a" / "b" / "run"
    run(out, seed=0, rounds=2, delay=0)
    kept = [json.loads(x)["instruction"] for x in (out / "tasks.jsonl").read_text().splitlines()]
    assert any("../../escape" in k for k in kept) and any("/tmp/selfinstruct-pwned" in k for k in kept)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == [f"a/b/run/{n}" for n in sorted(os.listdir(out))]
    assert sorted(os.listdir(out)) == sorted(FILES)
    assert not Path("/tmp/selfinstruct-pwned").exists()
