"""Decontamination: the index's rules, filter --decontaminate, generate's screening, real-data targets."""
import json
import random
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfinstruct import cli, teachers
from selfinstruct.data.decontam import NGRAM, DecontamIndex, eval_rows, load_index, normalize
from selfinstruct.generation.bootstrap import GenerateConfig, run
from selfinstruct.generation.journal import RunState
from selfinstruct.data.records import InputError
from selfinstruct.generation.report import write_run_report
from selfinstruct.data.seeds import load_seeds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

LONG = ("The committee met on Tuesday to review the proposal for a new community garden behind the library, "
        "and after a long discussion voted to fund it for two years.")
EVAL = [
    {"instruction": "Summarise the following announcement in one sentence for a newsletter.", "input": LONG,
     "output": "The committee voted to fund a community garden for two years."},
    {"instruction": "Explain why the moon shows phases.", "input": "", "output": "Because..."},
    {"instruction": "Rewrite this sentence to avoid gendered language.", "input": "Each nurse brought her kit.",
     "output": "Each nurse brought their kit."},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def index(tmp_path):
    return load_index([write_jsonl(tmp_path / "eval.jsonl", EVAL)])


# --------------------------------------------------------------------------- the rules


def test_normalize_case_whitespace_punctuation():
    assert normalize("  Don't   STOP,\tnow!! ") == "dont stop now"
    assert normalize("Café—naïve  «quote»") == "café naïve quote"
    assert normalize("?!...") == ""


def test_ascii_fast_path_equals_the_unicode_rule():
    import string

    from selfinstruct.data.decontam import _APOSTROPHE, _NON_WORD
    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choices(string.printable + "''__", k=rng.randint(0, 40)))
        assert normalize(text) == _NON_WORD.sub(" ", _APOSTROPHE.sub("", text.casefold())).strip(), text


@pytest.mark.parametrize("variant", [
    lambda s: s, str.upper, str.lower, str.swapcase,
    lambda s: "\n  " + s.replace(" ", "   \t") + "\n",
    lambda s: s.replace(".", "").replace(",", ";") + "!!",
    lambda s: s.replace(" ", "  ").replace("-", " "),
])
def test_exact_variants_are_caught_as_exact(index, variant):
    for row in EVAL:
        hit = index.check(variant(row["instruction"]), variant(row["input"]))
        assert hit is not None and hit.rule == "exact" and hit.eval_row["instruction"] == row["instruction"]
        assert hit.eval_row["line"] == EVAL.index(row) + 1 and hit.eval_row["file"].endswith("eval.jsonl")


def test_shared_ngram_names_the_row(index):
    words = LONG.split()
    hit = index.check("Give this text a title.", " ".join(words[5:5 + NGRAM]))
    assert hit.rule == f"ngram:{NGRAM}" and hit.eval_row["input"] == LONG
    assert index.check("Give this text a title.", " ".join(words[5:5 + NGRAM - 1])) is None


def test_rouge_needs_equal_inputs(index):
    hit = index.check("Rewrite this sentence to avoid any gendered language.", "each nurse brought HER kit")
    assert hit.rule == "rouge" and hit.score > 0.9 and "eval_rouge" in hit.as_fields()
    assert index.check("Rewrite this sentence to avoid any gendered language.", "Each nurse packed.") is None
    assert index.check("Explain why the moon has phases.", "").rule == "rouge"
    assert index.check("Explain why the moon has phases.", "Tell me.") is None
    assert index.check("Describe how tides work on Earth.", "") is None


def test_unknown_input_matches_the_instruction_alone(index):
    hit = index.check("Rewrite this sentence to avoid gendered language!", None)
    assert hit.rule == "exact" and hit.eval_row["input"] == "Each nurse brought her kit."
    assert index.check("Rewrite this sentence to avoid any gendered language.", None).rule == "rouge"
    assert index.check("Rewrite this sentence to avoid gendered language.", "") is None  # input known, differs
    assert index.check("Name three rivers in Africa.", None) is None


def test_ngram_index_equals_brute_force():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(12)]
    rows = [{"instruction": " ".join(rng.choices(vocab, k=rng.randint(3, 14))), "input": "", "file": "e",
             "line": i + 1} for i in range(300)]
    idx = DecontamIndex(rows, n=4, rouge_threshold=1.0)
    grams = {}
    for i, r in enumerate(rows):
        w = r["instruction"].split()
        for k in range(len(w) - 3):
            grams.setdefault(tuple(w[k:k + 4]), i)
    for _ in range(500):
        q = rng.choices(vocab, k=rng.randint(1, 12))
        want = {grams[tuple(q[k:k + 4])] for k in range(len(q) - 3) if tuple(q[k:k + 4]) in grams}
        exact = next((i for i, r in enumerate(rows) if r["instruction"] == " ".join(q)), None)
        hit = idx.check(" ".join(q), "")
        if exact is not None:
            assert hit.rule == "exact"
        elif want:
            assert hit.rule == "ngram:4" and rows.index(hit.eval_row) == min(want)
        else:
            assert hit is None or hit.rule == "rouge"


def test_eval_rows_read_every_training_format(tmp_path):
    tasks = write_jsonl(tmp_path / "t.jsonl", [{"instruction": "Add the numbers.", "instances": [
        {"input": "1 2", "output": "3"}, {"input": "2 2", "output": "4"}]}])
    chat = write_jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": "Say hi."},
                                                             {"role": "assistant", "content": "Hi."}]}])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_jsonl(run_dir / "data.jsonl", [{"instruction": "Count to three.", "input": "", "output": "1 2 3"}])
    assert [r["input"] for r in eval_rows(tasks)] == ["1 2", "2 2"]
    assert eval_rows(chat)[0]["instruction"] == "Say hi." and eval_rows(run_dir)[0]["line"] == 1
    assert len(eval_rows("packaged")) >= 140
    with pytest.raises(InputError, match=r"p\.jsonl: no eval row has any words"):
        eval_rows(write_jsonl(tmp_path / "p.jsonl", [{"instruction": "?!", "input": "", "output": "x"}]))


# --------------------------------------------------------------------------- filter --decontaminate


def run_filter(*args):
    return CliRunner().invoke(cli.main, ["filter", *map(str, args), "--no-progress"])


def test_filter_rejects_contaminated_rows_with_the_eval_row(tmp_path):
    ev = write_jsonl(tmp_path / "eval.jsonl", EVAL)
    ev2 = write_jsonl(tmp_path / "eval2.jsonl", [{"instruction": "Name the largest planet in our solar system.",
                                                   "input": "", "output": "Jupiter"}])
    rows = [{"instruction": "EXPLAIN why the Moon shows phases", "input": "", "output": "a"},
            {"instruction": "List four uses for baking soda at home.", "input": "", "output": "b"},
            {"instruction": "Give the newsletter a title.", "input": LONG, "output": "c"},
            {"instruction": "name the largest planet in our solar system!", "input": "", "output": "d"}]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out, rej = tmp_path / "kept.jsonl", tmp_path / "rej.jsonl"
    r = run_filter(src, "--out", out, "--rejected", rej, "--decontaminate", ev, "--decontaminate", ev2)
    assert r.exit_code == 0, r.output
    assert [k["output"] for k in read_jsonl(out)] == ["b"]
    rejected = read_jsonl(rej)
    assert [(x["output"], x["reason"], x["rule"]) for x in rejected] == [
        ("a", "contaminated", "exact"), ("c", "contaminated", f"ngram:{NGRAM}"), ("d", "contaminated", "exact")]
    assert rejected[0]["eval_row"] == {"instruction": EVAL[1]["instruction"], "input": "", "file": str(ev),
                                       "line": 2}
    assert rejected[2]["eval_row"]["file"] == str(ev2)
    assert "contaminated" in r.output and "decontaminated against 4 eval rows" in r.output
    r = run_filter(src, "--out", tmp_path / "k2.jsonl")  # without the option, nothing is contaminated
    assert r.exit_code == 0 and "contaminated" not in r.output


@pytest.mark.parametrize("content,where", [
    (None, "no such file"), ("", ":1: file is empty"), ('{"instruction": "x"\n', ":1: invalid JSON"),
    ('{"instruction": "Fine row here.", "output": "y"}\n[1, 2]\n', ":2: expected a JSON object"),
])
def test_bad_eval_file_is_one_line_exit_2_before_any_work(tmp_path, content, where):
    ev = tmp_path / "eval.jsonl"
    if content is not None:
        ev.write_text(content)
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": "List four uses for soda.", "output": "b"}])
    out = tmp_path / "kept.jsonl"
    r = run_filter(src, "--out", out, "--decontaminate", ev)
    assert r.exit_code == 2 and r.output.startswith(f"error: {ev}") and where in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not out.exists()


# --------------------------------------------------------------------------- generate


class Recording:
    """tests/fake_teacher.py's teacher, keeping every prompt it was sent."""

    def __init__(self, seed=0):
        from fake_teacher import FakeTeacher
        self.inner, self.prompts = FakeTeacher(seed), []
        self.name, self.is_chat, self.usage = "fake", True, self.inner.usage

    def complete(self, prompts, **kw):
        self.prompts += ["\n".join(m["content"] for m in p) if not isinstance(p, str) else p for p in prompts]
        return self.inner.complete(prompts, **kw)

    def close(self):
        pass


def fake_run(out, evals, rounds=1):
    from fake_teacher import config
    cfg = config(rounds, 0)
    cfg.decontaminate = tuple(evals)
    state = RunState(out, cfg.run_json(), load_seeds())
    teacher = Recording()
    run(teacher, cfg, state, echo=lambda m: None)
    return teacher, read_jsonl(out / "tasks.jsonl"), read_jsonl(out / "rejected.jsonl")


def test_generate_rejects_contaminated_candidates_at_screening(tmp_path):
    _, clean_tasks, clean_rejected = fake_run(tmp_path / "clean", ())
    assert len(clean_tasks) >= 3
    leaked = clean_tasks[:2]
    ev = write_jsonl(tmp_path / "eval.jsonl", [
        {"instruction": t["instruction"].upper(), "instances": t["instances"][:1]} for t in leaked])
    teacher, tasks, rejected = fake_run(tmp_path / "run", ["packaged", str(ev)])
    seen = {t["instruction"] for t in clean_tasks + clean_rejected}  # the same candidates were proposed
    assert tasks and {t["instruction"] for t in tasks} <= seen - {t["instruction"] for t in leaked}
    hits = [r for r in rejected if r["reason"] == "contaminated"]
    assert [h["instruction"] for h in hits] == [t["instruction"] for t in leaked]
    assert [(h["rule"], h["eval_row"]["line"], h["eval_row"]["file"]) for h in hits] == [
        ("exact", 1, str(ev)), ("exact", 2, str(ev))]
    for t in leaked:  # never sent for classification or instances
        assert sum(t["instruction"] in p for p in teacher.prompts) == 0
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["rounds"][0]["rejected"]["contaminated"] == 2
    assert json.loads((tmp_path / "run" / "run.json").read_text())["decontaminate"] == ["packaged", str(ev)]
    report = write_run_report(tmp_path / "run").read_text()
    assert "Contaminated: **2** candidates" in report and "| contaminated | 2 |" in report


def test_generate_config_decontaminates_against_the_packaged_set_by_default():
    assert GenerateConfig().decontaminate == ("packaged",)


def test_cli_generate_decontamination_options(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(teachers, "make_teacher", lambda *a, **k: made.append(k) or pytest.fail("model loaded"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": 3}\n')
    res = CliRunner().invoke(cli.main, ["generate", "--out", str(tmp_path / "o"), "--decontaminate", str(bad)])
    assert res.exit_code == 2 and res.output == f"error: {bad}:1: field 'output' must be a string, got int\n"
    res = CliRunner().invoke(cli.main, ["generate", "--no-decontaminate", "--decontaminate", str(bad)])
    assert res.exit_code == 2 and "exclude each other" in res.output
    assert not made and not (tmp_path / "o").exists()

    from fake_teacher import FakeTeacher
    monkeypatch.setattr(teachers, "make_teacher", lambda *a, **k: FakeTeacher(0))
    for flags, want in ((["--no-decontaminate"], []), ([], ["packaged"])):
        out = tmp_path / f"run{len(want)}"
        res = CliRunner().invoke(cli.main, ["generate", "--rounds", "1", "--out", str(out), "--prompts-per-round",
                                            "1", "--instances", "2", *flags])
        assert res.exit_code == 0, res.output
        assert json.loads((out / "run.json").read_text())["decontaminate"] == want


# --------------------------------------------------------------------------- real data: the targets


@pytest.fixture(scope="module")
def measured(shared_data):
    import decontam_bench as bench
    rows = bench.real_eval_rows(shared_data)
    planted = bench.planted_cases(rows)
    return bench.measure(DecontamIndex(rows), planted, bench.clean_rows(shared_data, t0_sample=3000))


def test_every_exact_case_whitespace_punctuation_variant_is_caught(measured):
    for kind in ("exact", "case", "whitespace", "punctuation"):
        caught, total = measured["recall"][kind]
        assert total >= 400 and caught == total, kind


def test_light_rewrites_with_a_long_input_are_caught(measured):
    caught, total = measured["recall"]["rewrite_long"]
    assert total >= 100 and caught / total >= 0.8


def test_at_most_two_percent_of_clean_rows_flagged(measured):
    for name, f in measured["flags"].items():
        assert f["rows"] >= 1000 and f["flagged"] / f["rows"] <= 0.02, (name, f)
