"""Crashes: SIGKILL `generate` (20 times) and `train` mid-run, resume, and check nothing is lost.

Also: summary files are written atomically and journals are fsync'd every round.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campaign import ROOT, SCALE, RunChecker, generate_kill_campaign, record
from fake_teacher import FakeTeacher, config
from tiny import make_tiny_model_dir

KILLS = 20 * SCALE


def test_generate_survives_sigkill_campaign(tmp_path):
    res = generate_kill_campaign(tmp_path / "run", seed=7, kills=KILLS, rounds=10)
    assert res["kills"] == KILLS and res["rows_lost"] == 0
    assert res["tasks"] > 50 and res["data"] > res["tasks"]
    record("generate_kills", **res)


def test_checker_catches_a_lost_row_and_a_duplicate(tmp_path):
    """The campaign's checker is able to fail."""
    from selfinstruct.data.seeds import load_seeds

    from fake_teacher import run

    out = tmp_path / "run"
    run(out, seed=3, rounds=2, delay=0)
    checker = RunChecker(load_seeds(), 0.7)
    checker.check(out, final=True)
    lines = (out / "tasks.jsonl").read_text().splitlines(keepends=True)
    (out / "tasks.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(AssertionError):
        checker.check(out)
    assert checker.lost == 1
    (out / "tasks.jsonl").write_text("".join(lines + lines[-1:]))
    with pytest.raises(AssertionError, match="duplicate"):
        RunChecker(load_seeds(), 0.7).check(out)


def test_torn_lines_are_repaired_on_resume(tmp_path):
    from fake_teacher import run

    out = tmp_path / "run"
    run(out, seed=5, rounds=1, delay=0)
    for name in ("tasks.jsonl", "data.jsonl", "data.messages.jsonl", "rejected.jsonl"):
        with open(out / name, "ab") as f:
            f.write(b'{"id": "machine_task_999", "instruction": "half a li')
    run(out, seed=5, rounds=2, delay=0)
    from selfinstruct.data.seeds import load_seeds

    RunChecker(load_seeds(), 0.7).check(out, final=True)


# --------------------------------------------------------------------------- writes


def test_summary_files_are_atomic_and_journals_fsynced_each_round(tmp_path, monkeypatch):
    """stats.json/run.json only ever appear through os.replace; journals get os.fsync every round."""
    from selfinstruct.generation.bootstrap import run as run_loop
    from selfinstruct.generation.journal import RunState
    from selfinstruct.data.seeds import load_seeds

    replaced, synced, opened = [], [], []
    real_replace, real_fsync, real_open = os.replace, os.fsync, open

    def spy_replace(src, dst):
        replaced.append(Path(dst).name)
        return real_replace(src, dst)

    def spy_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    cfg = config(3, 1)
    state = RunState(tmp_path / "run", cfg.run_json(), load_seeds())
    import builtins

    def spy_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wx") and str(file).endswith((".json",)):
            opened.append(Path(file).name)  # a summary opened for writing in place
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", spy_open)
    run_loop(FakeTeacher(1), cfg, state, echo=lambda m: None)
    assert opened == []
    assert replaced.count("stats.json") >= 3 and "run.json" in replaced
    tasks = [p for p in synced if p.endswith("tasks.jsonl")]
    assert len(tasks) >= 3, synced  # at least once per round
    assert any(p.endswith("data.jsonl") for p in synced) and any(p.endswith("rejected.jsonl") for p in synced)
    assert any(p.endswith("data.messages.jsonl") for p in synced)


def test_no_file_is_written_in_place():
    """Read the code: no module writes a file in place (write_text, json.dump, open(..., "w")); all go through writers."""
    import re

    bad = []
    for path in (ROOT / "selfinstruct").rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"(\.write_text\(|\.write_bytes\(|json\.dump\(|open\([^)]*[\"'][wx]b?[\"'])", text):
            line = text.count("\n", 0, m.start()) + 1
            bad.append(f"{path.relative_to(ROOT / 'selfinstruct')}:{line}: {text.splitlines()[line - 1].strip()}")
    # writers.py holds the atomic writers themselves (mkstemp + os.replace)
    assert [b for b in bad if not b.startswith("data/writers.py")] == []


# --------------------------------------------------------------------------- train


ROWS = [{"instruction": f"Say the word {w} {n} times.", "input": "", "output": " ".join([w] * n)}
        for w in ("apple", "river", "stone", "cloud", "green", "seven", "light", "table") for n in (1, 2, 3)]
TRAIN_SCRIPT = """
import sys, time
from transformers import TrainerCallback
from selfinstruct.training.train import TrainOptions, train

class Slow(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        time.sleep(0.05)

data, model, out, resume = sys.argv[1:5]
train(TrainOptions(data=data, model=model, out=out, max_steps=16, batch_size=4, lr=1e-2, eval_steps=4,
                   save_steps=4, logging_steps=1, val_fraction=0.2, seed=3, resume=resume == "1"),
      callbacks=[Slow()], echo=lambda m: None)
"""


def train_proc(data, model, out, resume):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(data), str(model), str(out),
                             "1" if resume else "0"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def rows_of(out, kind):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
            if line.strip() and json.loads(line).get("type") == kind]


def kill_train_at(data, model, out, resume, ckpt, step):
    """Start (or resume) training; SIGKILL once checkpoint-``ckpt`` is complete and ``step`` is logged."""
    proc = train_proc(data, model, out, resume)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        steps = [r["step"] for r in rows_of(out, "train")] if (out / "metrics.jsonl").exists() else []
        if (out / "checkpoints" / f"checkpoint-{ckpt}" / "trainer_state.json").exists() and steps \
                and steps[-1] >= step:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return max(r["step"] for r in rows_of(out, "train"))


def test_train_sigkill_mid_epoch_then_resume(tmp_path):
    """Kill mid-epoch (between checkpoints), resume; the curve continues with every step logged once."""
    model = make_tiny_model_dir(tmp_path / "base")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "run"
    points = [(8, 9)] if SCALE == 1 else [(4, 5), (8, 10), (12, 14)]
    for i, (ckpt, step) in enumerate(points):
        killed_at = kill_train_at(data, model, out, i > 0, ckpt, step)
        assert step <= killed_at < 16
    # a kill while saving leaves a half-written checkpoint folder: resume must skip it
    partial = out / "checkpoints" / "checkpoint-15"  # newer than any complete one
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    proc = train_proc(data, model, out, True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    steps = [r["step"] for r in rows_of(out, "train")]
    assert steps == list(range(1, 17)), steps  # the curve continues: every step once, none restarted at 0
    evals = [r["step"] for r in rows_of(out, "eval")]
    assert evals == [4, 8, 12, 16]
    assert len(rows_of(out, "data")) == 1 and len(rows_of(out, "summary")) == 1
    assert (out / "model.safetensors").exists()
    record("train_kills", kills=len(points), partial_checkpoints=1, steps_logged=len(steps), duplicated_steps=0)


def test_spend_check_catches_lost_tokens(tmp_path):
    """The campaign's spend check is able to fail: a billed answer missing from stats.json."""
    from campaign import check_spend, ledger_path

    out = tmp_path / "run"
    out.mkdir()
    (out / "stats.json").write_text(json.dumps({"rounds": [{"prompt_tokens": 100, "completion_tokens": 50}],
                                                "in_progress": {"prompt_tokens": 10, "completion_tokens": 5}}))
    ledger_path(out).write_text("100 50\n10 5\n7 3\n")  # the last answer was billed, not yet recorded
    assert check_spend(out) == 10  # one answer in flight at the kill: allowed
    ledger_path(out).write_text("100 50\n10 5\n7 3\n8 2\n")  # two answers missing: spend was lost
    with pytest.raises(AssertionError, match="spend lost"):
        check_spend(out)
    assert check_spend(out, earlier_gap=10) == 20  # unless an earlier kill already lost one
