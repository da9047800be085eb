"""`selfinstruct train` on two CPU processes (torchrun, gloo) against one process with twice the batch.

Marked ``distributed`` (run by `make test`). Every run shares one tiny random Llama and one data file
(module fixtures). Each training process runs in fp32 (``SELFINSTRUCT_DTYPE=float32``) on one thread.

The data is built so that the ranks' shares of every step are very uneven: 8 training rows, one of them
with a 121-token response and seven with 4-6 tokens, and batch 4 per process (so every step is the whole
training set, in a new order). Whatever the order, one rank holds the long response (over 121 targets) and
the other at most 4 x 6 = 24. A loss divided by each rank's own target count, then averaged over the ranks,
gives the short rows five times their weight: the equality test fails with it (docs/benchmarks.md,
"training on several processes").
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from selfinstruct.cli import main
from selfinstruct.training.processes import launch_shortfall
from tiny import metrics, model_and_data

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["apple", "river", "stone", "cloud", "green", "seven", "light", "table", "music", "north", "paper", "water"]
ROWS = [{"instruction": "Repeat the word apple 60 times.", "input": "", "output": " ".join(["apple"] * 60)}] + [
    {"instruction": f"Say the word {w}.", "input": "", "output": w} for w in WORDS[1:]]  # 8 train, 4 validation
ARGS = ["--max-steps", "6", "--lr", "3e-3", "--warmup-ratio", "0", "--val-fraction", "0.3", "--eval-steps", "3",
        "--logging-steps", "1", "--seed", "0"]
# fp32 sums of the same numbers in another order (per rank, then across ranks) differ in the last bits:
# measured 1.6e-7 relative on the losses and 3.6e-7 on the weights after 6 steps. Dividing by each rank's
# own target count moves the losses by up to 1.8e-2 relative and the weights by 2.1e-2 (more than the
# 1.1e-2 that training moved them): the tolerances sit 30x above the first, 1,000x below the second.
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-5

distributed = pytest.mark.distributed


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "SELFINSTRUCT_DTYPE": "float32", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def torchrun(*args, script=("-m", "selfinstruct.cli")) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2`` (a free port of its own), as a user would type it."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *script, *args]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=170, cwd=ROOT)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return model_and_data(tmp_path_factory.mktemp("dist"), ROWS)


@pytest.fixture(scope="module")
def one(setup):
    """One process, batch 8 (in this process)."""
    root, base, data = setup
    out = root / "one"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELFINSTRUCT_DTYPE", "float32")
        res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(base), "--out", str(out),
                                        "--batch-size", "8", *ARGS])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def two(setup):
    """Two processes, batch 4 each."""
    root, base, data = setup
    out = root / "two"
    res = torchrun("train", "--data", str(data), "--model", str(base), "--out", str(out), "--batch-size", "4", *ARGS)
    assert res.returncode == 0, res.stdout + res.stderr
    return out, res


@distributed
def test_two_processes_with_half_the_batch_train_as_one(setup, one, two):
    from transformers import AutoTokenizer

    from selfinstruct.training.examples import encode_rows, split_rows

    _, base, _ = setup
    out, _ = two
    train_rows, _ = split_rows(ROWS, 0.3, 0)
    targets = sorted(sum(t != -100 for t in e["labels"]) for e in encode_rows(train_rows,
                                                                              AutoTokenizer.from_pretrained(base))[0])
    assert len(targets) == 8 and targets[-1] > 5 * 4 * targets[-2]  # every 4 + 4 split is uneven
    assert metrics(out, "data")[0]["processes"] == 2 and metrics(one, "data")[0]["processes"] == 1
    a, b = metrics(one, "train"), metrics(out, "train")
    assert [r["step"] for r in b] == list(range(1, 7))
    assert [r["tokens"] for r in b] == [r["tokens"] for r in a]  # the same examples, every step
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=LOSS_RTOL)
    assert [r["grad_norm"] for r in b] == pytest.approx([r["grad_norm"] for r in a], rel=LOSS_RTOL)
    assert ([r["eval_loss"] for r in metrics(out, "eval")]
            == pytest.approx([r["eval_loss"] for r in metrics(one, "eval")], rel=LOSS_RTOL))
    wa, wb = load_file(one / "model.safetensors"), load_file(out / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < WEIGHT_ATOL
    assert any(not torch.equal(wa[k], load_file(base / "model.safetensors")[k]) for k in wa)  # it trained


@distributed
def test_rank_zero_alone_writes_and_prints(one, two):
    out, res = two
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one.iterdir())
    assert [r["type"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == (
        ["data"] + ["train"] * 3 + ["eval"] + ["train"] * 3 + ["eval", "summary"])
    assert (out / "val.jsonl").read_text() == (one / "val.jsonl").read_text()
    args = json.loads((out / "train_args.json").read_text())
    assert args == json.loads((one / "train_args.json").read_text()) | {"batch_size": 4, "out": str(out)}
    assert (out / "loss.png").stat().st_size > 1000
    stdout = res.stdout.splitlines()
    for start in ("data: 8 train / 4 validation", "attention: sdpa", "trained 6 steps"):
        assert sum(line.startswith(start) for line in stdout) == 1, (start, res.stdout)
    assert "batches: 4 examples per process, 2 processes (DDP)" in res.stdout
    assert res.stderr.count("warning: no GPU") == 1 and "warning: accelerate launch" not in res.stderr


@distributed
def test_the_model_trained_on_two_processes_reloads(two):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = two
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    saved = load_file(out / "model.safetensors")
    assert all(torch.equal(p, saved[k]) for k, p in model.state_dict().items() if k in saved)
    ids = tok("### Instruction:\nSay the word river.", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=4, do_sample=False).shape[1] > ids["input_ids"].shape[1]


@distributed
def test_resume_on_two_processes_repeats_no_step(setup, two):
    root, base, data = setup
    out = root / "resumed"
    cli = ["--data", str(data), "--model", str(base), "--out", str(out), "--batch-size", "4", *ARGS]
    crashed = torchrun("5", *cli, script=("tests/train_crash.py",))  # checkpoints every 3 steps
    assert crashed.returncode != 0 and "crashed at step 5" in crashed.stderr
    assert (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").is_file()
    assert not (out / "model.safetensors").exists() and max(r["step"] for r in metrics(out, "train")) == 4
    res = torchrun("train", *cli, "--resume")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("resuming from") == 1 and "checkpoint-3" in res.stdout
    assert res.stdout.count("trained 6 steps") == 1
    resumed, straight = metrics(out, "train"), metrics(two[0], "train")
    assert [r["step"] for r in resumed] == list(range(1, 7))  # no step twice, none missing
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in straight], rel=LOSS_RTOL)
    assert len(metrics(out, "data")) == 1 and len(metrics(out, "summary")) == 1


def accelerate_launch(tmp_path, *launch) -> tuple[Path, list[str]]:
    """``accelerate launch LAUNCH -m selfinstruct.cli train`` on a bad data file: the launch, the warnings,
    and the one-line error, in seconds (no model loads)."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x"}\n')
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch, "-m", "selfinstruct.cli", "train",
           "--data", str(bad), "--out", str(tmp_path / "out")]
    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode != 0 and not (tmp_path / "out").exists()
    return bad, res.stderr.splitlines()


@distributed
def test_accelerate_cpu_launch_of_two_says_it_started_one(tmp_path):
    bad, lines = accelerate_launch(tmp_path, "--cpu", "--num_processes", "2", "--num_machines", "1",
                                   "--mixed_precision", "no", "--dynamo_backend", "no")
    warned = [line for line in lines if line.startswith("warning: accelerate launch was asked for several")]
    assert len(warned) == 1 and "training on 1 process" in warned[0], lines
    assert f"error: {bad}:1: missing field 'output'" in lines  # (accelerate repeats the child's stderr)


@distributed
def test_the_fsdp_config_on_cpu_processes_says_it_trains_with_ddp(tmp_path):
    config = ROOT / "selfinstruct" / "configs" / "fsdp.yaml"
    bad, lines = accelerate_launch(tmp_path, "--config_file", str(config), "--num_processes", "2",
                                   "--mixed_precision", "no")
    warned = [line for line in lines if line.startswith("warning: the accelerate config asks for FSDP")]
    assert len(warned) == 1 and "train with DDP" in warned[0], lines  # rank 0 alone prints
    assert lines.count(f"error: {bad}:1: missing field 'output'") == 2  # every process checks its input


def test_launch_shortfall_reads_the_launchers_environment():
    simple = {"ACCELERATE_USE_CPU": "True", "ACCELERATE_MIXED_PRECISION": "no"}  # accelerate's 1-process launcher
    assert launch_shortfall({}) is None and launch_shortfall(simple) is None  # --num_processes 1
    assert "started one" in launch_shortfall({**simple, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
    torchrun_env = {"MASTER_ADDR": "localhost", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}
    assert launch_shortfall(torchrun_env) is None
    assert launch_shortfall({**torchrun_env, "ACCELERATE_USE_CPU": "False"}) is None  # accelerate --multi_gpu
    fsdp = {**torchrun_env, "ACCELERATE_USE_FSDP": "true"}
    assert "train with DDP" in launch_shortfall(fsdp) and launch_shortfall(fsdp, cuda=True) is None
