import functools
import itertools
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from rouge_score import rouge_scorer, tokenizers

from selfinstruct.data.filters import instance_reason, instruction_reason
from selfinstruct.data.records import InputError
from selfinstruct.data.seeds import MIN_SEEDS, default_seeds_path, load_seeds, seed_stats

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds" / "seed_tasks.jsonl"
BLACKLIST = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
             "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]


class _CachedTokenizer(tokenizers.Tokenizer):
    """rouge-score's default tokenizer, memoised (each instruction is scored ~350 times)."""

    def __init__(self):
        self._inner = tokenizers.DefaultTokenizer(use_stemmer=False)

    @functools.lru_cache(maxsize=None)
    def tokenize(self, text):
        return self._inner.tokenize(text)


@pytest.fixture(scope="module")
def rouge():
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CachedTokenizer())
    return lambda a, b: scorer.score(a, b)["rougeL"].fmeasure


@pytest.fixture(scope="module")
def ours():
    return load_seeds()


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def task_line(i, **extra):
    row = {"instruction": f"Seed instruction number {i} says something.",
           "instances": [{"input": "", "output": str(i)}], **extra}
    return json.dumps(row)


# --------------------------------------------------------------------------- our seed set


def test_packaged_seeds_are_the_repo_file(ours):
    assert default_seeds_path().read_bytes() == SEEDS.read_bytes()
    assert len(ours) == 175
    assert [t["id"] for t in ours] == [f"seed_task_{i}" for i in range(175)]
    assert len({t["name"] for t in ours}) == 175
    assert all(re.fullmatch(r"[a-z0-9_]+", t["name"]) for t in ours)
    raw = [json.loads(line) for line in SEEDS.read_text(encoding="utf-8").splitlines()]
    assert all(set(r) == {"id", "name", "instruction", "instances", "is_classification"} for r in raw)
    assert all(isinstance(r["is_classification"], bool) for r in raw)


def test_seed_mix(ours):
    stats = seed_stats(ours)
    assert stats["count"] == 175
    assert 0.13 <= stats["classification_share"] <= 0.18
    assert 0.35 <= stats["with_input_share"] <= 0.45
    assert 8 <= stats["mean_instruction_words"] <= 30


def test_instructions_pass_the_heuristics(ours):
    for t in ours:
        ins = t["instruction"]
        assert 5 <= len(ins.split()) <= 60, ins
        assert ins[0].isalnum(), ins
        assert not ins.lower().startswith("write a program"), ins
        hits = [w for w in BLACKLIST if re.search(rf"\b{w}\b", ins, flags=re.IGNORECASE)]
        assert not hits, (ins, hits)


def test_seeds_pass_the_project_filters(ours):
    assert {t["name"]: instruction_reason(t["instruction"]) for t in ours if instruction_reason(t["instruction"])} == {}
    bad = [(t["name"], instance_reason(i["input"], i["output"], t["instruction"])) for t in ours for i in t["instances"]]
    assert [b for b in bad if b[1]] == []


def test_outputs_are_concise_and_labels_are_short(ours):
    words = sorted(len(t["instances"][0]["output"].split()) for t in ours)
    assert words[-1] <= 160 and words[len(words) // 2] <= 60
    for t in ours:
        assert all(i["output"].strip() for i in t["instances"])
        if t["is_classification"]:
            lines = t["instances"][0]["output"].splitlines()
            assert all(len(line.split()) <= 6 for line in lines), t["name"]


def test_no_two_instructions_are_near_duplicates(ours, rouge):
    ins = [t["instruction"] for t in ours]
    worst = max(itertools.combinations(ins, 2), key=lambda p: rouge(*p))
    assert rouge(*worst) <= 0.7, worst


def test_not_copied_from_the_paper_seeds(ours, rouge, shared_data):
    paper = [t["instruction"] for t in load_seeds(shared_data / "self_instruct_seed_tasks.jsonl")]
    for t in ours:
        best = max(paper, key=lambda p: rouge(t["instruction"], p))
        assert rouge(t["instruction"], best) < 0.7, (t["instruction"], best)


# --------------------------------------------------------------------------- other formats


def test_loads_the_paper_seeds(shared_data):
    tasks = load_seeds(shared_data / "self_instruct_seed_tasks.jsonl")
    assert len(tasks) == 175
    assert tasks[0]["id"] == "seed_task_0" and tasks[0]["name"] == "breakfast_suggestion"
    assert len({t["id"] for t in tasks}) == 175
    raw = [json.loads(line) for line in (shared_data / "self_instruct_seed_tasks.jsonl").open()]
    assert [t["is_classification"] for t in tasks] == [r["is_classification"] for r in raw]


def test_loads_alpaca_json_grouping_rows_into_tasks(tmp_path):
    rows = [{"instruction": f"Name a colour, variant {i % 8}.", "input": str(i), "output": f"c{i}"}
            for i in range(10)]
    rows.append({"instruction": "Say hello in French.", "output": "Bonjour"})
    p = write(tmp_path, "alpaca.json", json.dumps(rows, indent=2))
    tasks = load_seeds(p)
    assert len(tasks) == 9
    assert [t["id"] for t in tasks] == [f"seed_task_{i}" for i in range(9)]
    assert tasks[0]["instances"] == [{"input": "0", "output": "c0"}, {"input": "8", "output": "c8"}]
    assert tasks[8]["instances"] == [{"input": "", "output": "Bonjour"}]
    assert not any(t["is_classification"] for t in tasks)
    jl = write(tmp_path, "alpaca.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert [t["instances"] for t in load_seeds(jl)] == [t["instances"] for t in tasks]


def test_loads_the_shared_alpaca_data(shared_data):
    tasks = load_seeds(shared_data / "instruction-data.json")
    assert len(tasks) == 954
    assert sum(len(t["instances"]) for t in tasks) == 1100
    assert tasks[1]["instruction"] == "Edit the following sentence for grammar."
    assert tasks[1]["id"] == "seed_task_1" and tasks[1]["is_classification"] is False


def test_ids_are_kept_and_filled_in(tmp_path):
    lines = [task_line(i) for i in range(MIN_SEEDS)]
    lines[2] = task_line(2, id="mine", is_classification=True)
    lines[5] = task_line(5, id=7)
    tasks = load_seeds(write(tmp_path, "s.jsonl", "\n".join(lines)))
    assert [t["id"] for t in tasks] == ["seed_task_0", "seed_task_1", "mine", "seed_task_3",
                                        "seed_task_4", "7", "seed_task_6", "seed_task_7"]
    assert [t["is_classification"] for t in tasks] == [False, False, True] + [False] * 5


def test_seed_stats_values():
    tasks = [{"instruction": "a b c d", "instances": [{"input": "x", "output": "1"}], "is_classification": True},
             {"instruction": "a b", "instances": [{"input": " ", "output": "2"}]},
             {"instruction": "a b c", "instances": [{"input": "", "output": "3"}, {"input": "y", "output": "4"}]},
             {"instruction": "a b c", "instances": [{"input": "", "output": "5"}]}]
    assert seed_stats(tasks) == {"count": 4, "classification": 1, "classification_share": 0.25,
                                 "with_input": 2, "with_input_share": 0.5, "mean_instruction_words": 3.0}
    assert seed_stats([])["count"] == 0


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("bad,line,msg", [
    ('{"instruction": "x", "instances": [', 3, "invalid JSON"),
    ('{"instances": [{"input": "", "output": "o"}]}', 3, "missing field 'instruction'"),
    ('{"instruction": "x y z", "instances": [{"input": ""}]}', 3, "missing field 'output'"),
    ('{"instruction": "x y z", "instances": [{"output": "o"}], "is_classification": "yes"}', 3,
     "'is_classification' must be true or false"),
    ('{"id": ["a"], "instruction": "x y z", "instances": [{"output": "o"}]}', 3, "field 'id' must be"),
    ('{"id": "seed_task_0", "instruction": "x y z", "instances": [{"output": "o"}]}', 3,
     "duplicate id 'seed_task_0' (first at line 1)"),
])
def test_bad_seed_files_name_the_line(tmp_path, bad, line, msg):
    lines = [task_line(0, id="seed_task_0"), task_line(1), bad] + [task_line(i) for i in range(2, 12)]
    p = write(tmp_path, "bad.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(InputError) as e:
        load_seeds(p)
    assert e.value.line == line
    assert str(e.value).startswith(f"{p}:{line}: ") and msg in str(e.value)


def test_skip_invalid_keeps_the_good_rows(tmp_path):
    lines = [task_line(i) for i in range(10)]
    lines[4] = "{not json"
    lines[6] = '{"instruction": "x y z"}'
    skipped = []
    tasks = load_seeds(write(tmp_path, "s.jsonl", "\n".join(lines)), skip_invalid=True, skipped=skipped)
    assert len(tasks) == 8
    assert [(e.line, e.message.split(":")[0]) for e in skipped] == [(5, "invalid JSON"), (7, "missing field 'output'")]


def test_too_few_seeds_is_refused(tmp_path):
    p = write(tmp_path, "few.jsonl", "\n".join(task_line(i) for i in range(MIN_SEEDS - 1)))
    with pytest.raises(InputError, match=r"only 7 seed task\(s\); need at least 8"):
        load_seeds(p)
    assert len(load_seeds(p, min_tasks=7)) == 7


@pytest.mark.parametrize("name,text,line,msg", [
    ("empty.jsonl", "\n", 1, "file is empty"),
    ("chat.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n', 1, "missing field 'instruction'"),
    ("arr.json", '[\n{"instruction": "a b c", "output": "x"},\n{"instruction": 3, "output": "y"}\n]', 3,
     "field 'instruction' must be a string"),
])
def test_other_bad_inputs(tmp_path, name, text, line, msg):
    p = write(tmp_path, name, text)
    with pytest.raises(InputError) as e:
        load_seeds(p)
    assert e.value.line == line and msg in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_seeds(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- packaging


def test_a_built_wheel_ships_and_finds_the_seeds(tmp_path):
    """Build a wheel from a copy of the project, install it elsewhere, load the seeds from there."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "selfinstruct", src / "selfinstruct", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "seeds", src / "seeds")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("selfinstruct-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("selfinstruct/seeds_data/seed_tasks.jsonl") == SEEDS.read_bytes()
    target = tmp_path / "site"
    subprocess.run(pip + ["install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True)
    code = ("import json, selfinstruct.data.seeds as s; t = s.load_seeds(); "
            "print(json.dumps([s.__file__, len(t), t[-1]['id']]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         check=True, capture_output=True, text=True).stdout
    where, n, last = json.loads(out)
    assert Path(where).is_relative_to(target) and (n, last) == (175, "seed_task_174")
