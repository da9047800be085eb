"""`selfinstruct eval`: metrics on hand-made rows, the judge statistics, and two tiny models end to end."""
import json
import re

import pytest
from click.testing import CliRunner

from selfinstruct.cli import main
from selfinstruct.evaluation.metrics import (answer_flags, exact_match, normalize, pick_examples, rouge_l, score_answer,
                                       summarize)
from selfinstruct.evaluation.evaluate import generate, sample_rows
from selfinstruct.data.records import read_examples
from selfinstruct.evaluation.judge import judge_pairs, parse_verdict, row_outcome, summarize_judgements, win_rate
from selfinstruct.teachers import Completion

from tiny import make_tiny_model_dir

# --------------------------------------------------------------------------- metrics


def test_rouge_l_known_values():
    assert rouge_l("the cat on mat", "the cat sat on the mat") == pytest.approx(0.8)  # LCS 4, p=1, r=4/6
    assert rouge_l("The CAT!", "the cat") == 1.0
    assert rouge_l("dog", "the cat") == 0.0
    assert rouge_l("", "the cat") == 0.0


def test_exact_match_normalises_case_whitespace_and_punctuation():
    assert normalize("  Positive.\n") == "positive"
    assert normalize("Don't  STOP, «now»!") == "dont stop now"
    assert exact_match("Yes!!", "yes") and exact_match("New   York.", "new york")
    assert not exact_match("not", "no") and not exact_match("positive review", "positive")


ROW = {"instruction": "Name the capital of France.", "input": "", "output": "Paris"}
LONG_INPUT = {"instruction": "Summarise.", "input": "one two three four five six seven eight", "output": "x"}


def test_flags_empty_echo_runaway():
    assert answer_flags("", "", ROW, runaway=False) == {"empty": True, "echo": False, "runaway": False}
    assert answer_flags("Paris", "Paris\n\n### Instruction:\nmore", ROW, runaway=False)["echo"]
    assert answer_flags("Name the capital of France. Paris", "same", ROW, runaway=False)["echo"]
    assert answer_flags("one two three four five six seven eight, ok", "", LONG_INPUT, runaway=False)["echo"]
    short = {"instruction": "Define.", "input": "apple", "output": "a fruit"}
    assert not answer_flags("An apple is a fruit", "", short, runaway=False)["echo"]  # short input inside: fine
    assert answer_flags("Apple!", "", short, runaway=False)["echo"]                    # the input, echoed
    assert answer_flags("Paris Paris Paris", "", ROW, runaway=True) == {"empty": False, "echo": False,
                                                                        "runaway": True}


def test_score_answer_cuts_at_the_first_header():
    s = score_answer(ROW, "Paris.\n\n### Instruction:\nName a city.", runaway=False)
    assert s["answer"] == "Paris." and s["rouge_l"] == 1.0 and s["echo"] and s["words"] == 1
    assert s["exact_match"] is None  # not a classification row
    cls = score_answer({**ROW, "is_classification": True}, " paris ", runaway=False)
    assert cls["exact_match"] is True and not cls["echo"]


def test_summarize_and_pick_examples():
    rows = [{"rouge_l": 1.0, "exact_match": True, "empty": False, "echo": False, "runaway": False, "words": 2},
            {"rouge_l": 0.5, "exact_match": False, "empty": False, "echo": True, "runaway": True, "words": 6},
            {"rouge_l": 0.0, "exact_match": None, "empty": True, "echo": False, "runaway": False, "words": 0},
            {"rouge_l": 0.5, "exact_match": None, "empty": False, "echo": False, "runaway": False, "words": 4}]
    for r, answer in zip(rows, ["yes", "Yes.", "", "no"]):
        r["answer"] = answer
    assert summarize(rows) == {"rows": 4, "rouge_l": 0.5, "exact_match": 0.5, "classification_rows": 2,
                               "empty": 0.25, "echo": 0.25, "runaway": 0.25, "words": 3.0,
                               "top_answer": "yes", "top_answer_share": 0.5, "distinct_per_100": 75.0,
                               "collapse": None}
    a, b = [0.1, 0.9, 0.5, 0.5], [0.8, 0.2, 0.5, 0.6]
    assert pick_examples(a, b, 2) == ([0, 3], [1])      # gaps +0.7, -0.7, 0, +0.1: the tie is left out
    assert pick_examples(a, b, 1) == ([0], [1])
    assert pick_examples([0.0] * 5, [0.0] * 5, 3) == ([], [])   # all ties: nothing to show
    assert pick_examples(a, None, 1) == ([1], [0])
    assert pick_examples([0.3], [0.4], 3) == ([0], [])


def test_summarize_flags_a_collapsed_model():
    row = {"rouge_l": 0.0, "exact_match": None, "empty": False, "echo": False, "runaway": False, "words": 2}
    thanks = [{**row, "answer": "Thank you!" if i % 2 else "thank you"} for i in range(12)]
    s = summarize(thanks, [f"reference {i}" for i in range(12)])
    assert s["collapse"] and s["top_answer"] == "thank you" and s["top_answer_share"] == 1.0
    assert s["distinct_per_100"] == pytest.approx(100 / 12)
    varied = [{**row, "answer": f"answer {i}"} for i in range(12)]
    assert not summarize(varied)["collapse"]
    labels = ["positive", "negative"] * 6                 # a classification set: its references repeat too
    right = [{**row, "answer": label} for label in labels]
    assert not summarize(right, labels)["collapse"] and summarize(right)["collapse"]


def test_sample_rows_is_seeded_and_keeps_file_order(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"q{i}", "output": str(i)}) + "\n" for i in range(20)))
    rows = read_examples(path)
    a, b = sample_rows(rows, 5, seed=1), sample_rows(rows, 5, seed=1)
    assert [r["output"] for r in a] == [r["output"] for r in b] and len(a) == 5
    assert [r["_line"] for r in a] == sorted(r["_line"] for r in a)
    assert [r["output"] for r in sample_rows(rows, 5, seed=2)] != [r["output"] for r in a]
    assert len(sample_rows(rows, 50)) == 20 and len(sample_rows(rows, None)) == 20


# --------------------------------------------------------------------------- judge


def test_win_rate_wilson_interval_on_known_counts():
    r = win_rate(30, 10, 10)               # ties count half: 35/50
    assert r["win_rate"] == pytest.approx(0.7)
    assert r["ci_low"] == pytest.approx(0.562496, abs=1e-6) and r["ci_high"] == pytest.approx(0.808964, abs=1e-6)
    all_wins = win_rate(10, 0, 0)
    assert all_wins["win_rate"] == 1.0 and all_wins["ci_low"] == pytest.approx(0.722467, abs=1e-6)
    assert all_wins["ci_high"] == pytest.approx(1.0)
    assert win_rate(0, 0, 0)["win_rate"] is None


def test_parse_verdict():
    assert parse_verdict("Verdict: 2\nBecause it is correct.") == "2"
    assert parse_verdict("**Verdict:** tie") == "tie"
    assert parse_verdict("verdict = \"1\"") == "1"
    assert parse_verdict("Hmm, Verdict: 1 ... on reflection Verdict: 2") == "2"
    assert parse_verdict("  2.\nResponse 2 is clearer") == "2"
    assert parse_verdict("Response 1 is better than the other.") == "1"
    assert parse_verdict("Both are equally good.") == "tie"
    assert parse_verdict("I cannot decide") is None and parse_verdict("") is None


def test_row_outcome_undoes_the_position_swap():
    assert row_outcome("2", "1") == "win"      # B preferred in both orders
    assert row_outcome("1", "2") == "loss"
    assert row_outcome("1", "1") == "tie"      # pure position bias cancels out
    assert row_outcome("tie", "1") == "win" and row_outcome(None, "2") == "loss"
    assert row_outcome(None, None) is None


class LongerAnswerJudge:
    """A deterministic judge that prefers the longer response (plain-text prompts)."""
    name, is_chat = "longer", False

    def complete(self, prompts, **kw):
        out = []
        for p in prompts:
            one = p.split("### Response 1:\n")[1].split("\n\n### Response 2:")[0]
            two = p.split("### Response 2:\n")[1].split("\n\n### Your verdict")[0]
            v = "tie" if len(one) == len(two) else "1" if len(one) > len(two) else "2"
            out.append(Completion(f"Verdict: {v}\nLength."))
        return out


def test_judge_pairs_asks_both_orders_and_maps_back():
    rows = [{"instruction": f"q{i}", "input": "", "output": "r"} for i in range(3)]
    recs = judge_pairs(LongerAnswerJudge(), rows, ["short", "a much longer answer", "same"],
                       ["a longer answer", "tiny", "same"])
    assert [r["outcome"] for r in recs] == ["win", "loss", "tie"]
    assert [(r["verdict_a_first"], r["verdict_b_first"]) for r in recs] == [("2", "1"), ("1", "2"), ("tie", "tie")]
    s = summarize_judgements(recs)
    assert (s["wins"], s["losses"], s["ties"], s["unparsed"], s["win_rate"]) == (1, 1, 1, 0, 0.5)


# --------------------------------------------------------------------------- tiny models


def noisy_model(path, seed):
    """A tiny random Llama with large weights, so greedy outputs differ between prompts."""
    import torch
    from transformers import AutoModelForCausalLM

    make_tiny_model_dir(path, seed=seed)
    model = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return noisy_model(root / "A", 0), noisy_model(root / "B", 1)


def test_batched_left_padded_generation_equals_one_at_a_time(tiny_models):
    from selfinstruct.data.formatting import alpaca_prompt
    from selfinstruct.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tiny_models[0]))
    prompts = [alpaca_prompt("Give three tips for staying healthy."), alpaca_prompt("Hi"),
               alpaca_prompt("Classify the sentiment of the review.", "I loved it! A wonderful film, really.")]
    batched = generate(model, tok, prompts, max_new_tokens=10, batch_size=3)
    single = [generate(model, tok, [p], max_new_tokens=10, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert len({b["raw"] for b in batched}) == 3       # not a degenerate model
    for b in batched:
        assert b["runaway"] == (b["new_tokens"] == 10 and "###" not in b["raw"])


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


EVAL_ROWS = [
    {"instruction": "What is 2+2? <script>alert(1)</script>", "input": "", "output": "4"},
    {"instruction": "Classify the review.", "instances": [{"input": "Loved it", "output": "positive"},
                                                          {"input": "Awful", "output": "negative"}],
     "is_classification": True},
    {"instruction": "Write a greeting.", "input": "", "output": "Hello there!"},
]


def test_eval_two_tiny_models_end_to_end(tiny_models, tmp_path):
    a, b = "A", "B"  # the folders' last parts: no temporary path in a report
    data = write_rows(tmp_path / "d.jsonl", EVAL_ROWS)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["eval", "--model", str(tiny_models[0]), "--model", str(tiny_models[1]),
                                       "--data", str(data), "--out", str(out),
                                       "--max-new-tokens", "6", "--batch-size", "2", "--judge", str(tiny_models[0])])
    assert result.exit_code == 0, result.output
    titles = [x for x in (out / "report.md").read_text().splitlines() if x.startswith(("#", "**"))]
    titles += re.findall(r"<(?:title|h1|h2|p class=\"lead\")>(.*?)<", (out / "report.html").read_text())
    assert len(titles) > 4 and not [t for t in titles if str(tmp_path.parent) in t or "models0" in t]
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 2                                   # 4 rows (a task flattens to 2) x 2 models
    assert [r["model"] for r in rows] == [a] * 4 + [b] * 4
    assert [r["row"] for r in rows] == [0, 1, 2, 3] * 2
    assert [r["is_classification"] for r in rows[:4]] == [False, True, True, False]
    assert all(r["exact_match"] is None for r in rows if not r["is_classification"])
    for r in rows:
        assert 0 <= r["new_tokens"] <= 6 and r["rouge_l"] == rouge_l(r["answer"], r["reference"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["models"] == [a, b] and metrics["metrics"][a]["rows"] == 4
    assert metrics["metrics"][a]["classification_rows"] == 2
    judged = [json.loads(x) for x in (out / "judge.jsonl").read_text().splitlines()]
    assert len(judged) == 4 and metrics["judge"]["a"] == a and metrics["judge"]["b"] == b
    assert metrics["judge"]["n"] + metrics["judge"]["unparsed"] == 4
    cmp = metrics["comparisons"][0]
    assert (cmp["a"], cmp["b"], cmp["rows"]) == (a, b, 4)
    assert cmp["wins"] + cmp["ties"] + cmp["losses"] == 4 and cmp["ci_low"] <= cmp["diff"] <= cmp["ci_high"]
    assert cmp["mean_a"] == pytest.approx(metrics["metrics"][a]["rouge_l"])
    assert cmp["headline"].startswith(f"{b} ") and f" {a}: ROUGE-L " in cmp["headline"]
    for m in metrics["metrics"].values():
        assert 0 < m["top_answer_share"] <= 1 and m["distinct_per_100"] > 0
        assert m["collapse"] is None                        # 4 rows: too few to tell
    md = (out / "report.md").read_text()
    assert md.splitlines()[2] == f"**{cmp['headline']}**  "
    assert md.splitlines()[3].startswith("Empty / echoing / runaway answers: ")
    assert a in md and b in md and "## Judge" in md
    ties = sum(x["rouge_l"] == y["rouge_l"] for x, y in zip(rows[:4], rows[4:]))
    assert f"{ties} of 4 rows tie" in md and md.count("### Row ") == 4 - ties   # only rows that differ
    page = (out / "report.html").read_text()
    assert f'<p class="lead">{cmp["headline"]}</p>' in page and "<script>" not in page
    assert json.loads((out / "metrics.json").read_text())["model_specs"] == {"A": str(tiny_models[0]),
                                                                               "B": str(tiny_models[1])}
    again = CliRunner().invoke(main, ["eval", "--model", str(tiny_models[0]), "--data", str(data), "--out", str(out)])
    assert again.exit_code == 2 and "results.jsonl: already exists" in again.output


def test_bad_data_fails_with_file_line_before_any_model_loads(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"instruction": "ok", "output": "fine"}\n{"instruction": "no output"}\n')
    out = tmp_path / "out"
    # the model does not exist: were it looked at first, the error would name it
    result = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "missing"), "--data", str(data),
                                       "--out", str(out)])
    assert result.exit_code == 2
    assert result.output == f"error: {data}:2: missing field 'output'\n"
    assert not out.exists()


def test_existing_outputs_are_refused_before_any_model_loads(tmp_path):
    data = write_rows(tmp_path / "d.jsonl", EVAL_ROWS)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.md").write_text("keep me")
    result = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "missing"), "--data", str(data),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "report.md: already exists" in result.output
    assert (tmp_path / "out" / "report.md").read_text() == "keep me"


def test_missing_model_is_one_line_and_writes_nothing(tmp_path):
    data = write_rows(tmp_path / "d.jsonl", EVAL_ROWS)
    result = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "missing"), "--data", str(data),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_demo_refuses_a_used_folder_and_picks_its_eval_data(tmp_path, monkeypatch):
    from selfinstruct import demo
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    assert demo.main(["--out", str(tmp_path / "used"), "--quick"]) == 2
    assert demo.eval_data(tmp_path, "mine.jsonl") == ("mine.jsonl", "given with --eval-data")
    path, why = demo.eval_data(tmp_path / "model", None)  # never ../shared: a user's clone has none
    assert path == "packaged" and "packaged eval set" in why


def test_model_names_default_to_the_folder_and_take_name():
    from selfinstruct.data.records import InputError
    from selfinstruct.evaluation.evaluate import model_names

    assert model_names(["/tmp/pytest-1/x/runs/tuned/", "embedded", "HuggingFaceTB/SmolLM2-135M"]) == [
        "tuned", "embedded", "SmolLM2-135M"]
    assert model_names(["/a/final", "/b/final"]) == ["final", "final#2"]
    assert model_names(["/a/final", "/b/final"], ["base", "tuned"]) == ["base", "tuned"]
    with pytest.raises(InputError, match="1 name"):
        model_names(["/a/final", "/b/final"], ["base"])


def test_eval_name_labels_the_reports(tiny_models, tmp_path):
    data = write_rows(tmp_path / "d.jsonl", EVAL_ROWS[:1])
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["eval", "--model", str(tiny_models[0]), "--name", "base", "--data", str(data),
                                  "--out", str(out), "--max-new-tokens", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "metrics.json").read_text())["models"] == ["base"]
    assert "Eval report: base<" in (out / "report.html").read_text()
    r = CliRunner().invoke(main, ["eval", "--model", str(tiny_models[0]), "--name", "a", "--name", "b",
                                  "--data", str(data), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "2 name(s) for 1 model(s)" in r.output
