"""The packaged eval set: original, held out from the seeds, loadable, shipped."""
import json
import subprocess
import sys
from collections import Counter

import pytest

from selfinstruct.data.evalset import PACKAGED, packaged_eval_path, resolve_eval_data
from selfinstruct.data.records import read_examples, read_tasks
from selfinstruct.data.seeds import load_seeds
from selfinstruct.data.similarity import RougeIndex, rouge_l, tokenize

def _tasks():
    return [json.loads(line) for line in packaged_eval_path().read_text().splitlines() if line.strip()]


def _max_against(instructions, references, floor):
    """Per instruction, its exact max ROUGE-L against ``references`` when above ``floor``."""
    index = RougeIndex(threshold=floor, floor=floor)
    for r in references:
        index.add(r)
    out = []
    for i in instructions:
        score, j = index.nearest(i)
        out.append((score, i, None if j is None else index.texts[j]))
    return out


def test_packaged_path_is_a_file_and_default():
    p = packaged_eval_path()
    assert p.is_file() and p.name == "eval_tasks.jsonl"
    assert resolve_eval_data(None) == p and resolve_eval_data(PACKAGED) == p
    assert str(resolve_eval_data("x.jsonl")) == "x.jsonl"


def test_format_counts_and_shares():
    tasks = _tasks()
    assert 140 <= len(tasks) <= 170
    for t in tasks:
        assert set(t) == {"id", "name", "instruction", "instances", "is_classification"}
        assert t["instances"] and all(set(i) == {"input", "output"} and i["output"].strip() for i in t["instances"])
    assert len({t["id"] for t in tasks}) == len(tasks) and len({t["name"] for t in tasks}) == len(tasks)
    with_input = sum(any(i["input"].strip() for i in t["instances"]) for t in tasks) / len(tasks)
    cls = sum(t["is_classification"] for t in tasks) / len(tasks)
    assert 0.35 <= with_input <= 0.45, with_input
    assert 0.12 <= cls <= 0.18, cls
    words = sorted(len(t["instances"][0]["output"].split()) for t in tasks)
    assert words[len(words) // 2] <= 50 and sum(w <= 80 for w in words) / len(words) >= 0.9


def test_loads_through_records_and_seed_loader():
    rows = read_examples(packaged_eval_path())
    assert len(rows) == len(_tasks()) and all(r["output"] for r in rows)
    assert len(read_tasks(packaged_eval_path())) == len(rows)
    assert len(load_seeds(packaged_eval_path())) == len(rows)  # also a valid seed/task file


def test_every_task_at_most_half_to_every_seed():
    seeds = [t["instruction"] for t in load_seeds()]
    for score, inst, near in _max_against([t["instruction"] for t in _tasks()], seeds, 0.5):
        assert score <= 0.5, (inst, near, score)
    # the index's answer equals brute force on one task (the check above can fail)
    tok = tokenize(_tasks()[0]["instruction"])
    brute = max(rouge_l(tok, tokenize(s)) for s in seeds)
    assert brute <= 0.5


def test_no_two_eval_tasks_above_point_seven():
    insts = [t["instruction"] for t in _tasks()]
    index = RougeIndex(threshold=0.7)
    for inst in insts:
        score, i = index.nearest(inst)
        assert i is None or score <= 0.7, (inst, index.texts[i], score)
        index.add(inst)


def test_original_against_the_papers_tasks(shared_data):
    paper = [r["instruction"] for r in read_examples(shared_data / "user_oriented_instructions.jsonl")]
    paper += [t["instruction"] for t in read_tasks(shared_data / "self_instruct_seed_tasks.jsonl")]
    paper = list(dict.fromkeys(paper))
    assert len(paper) >= 252 + 175 - 5
    for score, inst, near in _max_against([t["instruction"] for t in _tasks()], paper, 0.7):
        assert score <= 0.7, (inst, near, score)


def test_wheel_ships_the_eval_set(tmp_path):
    root = packaged_eval_path().parents[2]
    if not (root / "pyproject.toml").exists():
        pytest.skip("not a source checkout")
    pytest.importorskip("setuptools")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(root)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import zipfile
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "selfinstruct/eval_data/eval_tasks.jsonl" in names
    assert Counter(n.split("/")[0] for n in names)["selfinstruct"] > 10


@pytest.mark.parametrize("data", [[], ["--data", "packaged"]])
def test_eval_reads_the_packaged_set_when_data_is_omitted(tmp_path, data):
    from click.testing import CliRunner

    from selfinstruct.cli import main

    missing = tmp_path / "no-model"
    r = CliRunner().invoke(main, ["eval", "--model", str(missing), "--out", str(tmp_path / "o"), *data])
    # the data loaded (it is checked first); the missing model is the one error
    assert r.exit_code == 2 and r.output == f"error: {missing}: model folder not found\n", r.output
    r = CliRunner().invoke(main, ["eval", "--model", str(missing), "--out", str(tmp_path / "o"),
                                  "--data", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 2 and "none.jsonl: no such file" in r.output
