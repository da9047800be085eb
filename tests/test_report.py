"""`selfinstruct report` on a hand-made generate run, and the eval report writers."""
import json
import struct

import pytest
from click.testing import CliRunner
from rouge_score import rouge_scorer

from selfinstruct.cli import main
from selfinstruct.evaluation.report import md_block, render_html, render_markdown
from selfinstruct.generation.report import leading_verbs, leading_word, max_similarities, similarities

PNG = b"\x89PNG\r\n\x1a\n"

TASKS = [
    {"instruction": "Write a poem about the sea.", "round": 1, "similarity": 0.31, "is_classification": False,
     "instances": [{"input": "", "output": "Waves roll in and out, blue and wide."}]},
    {"instruction": "Classify the review as positive or negative.", "round": 1, "similarity": 0.52,
     "is_classification": True,
     "instances": [{"input": "Great film!", "output": "positive"}, {"input": "Dull.", "output": "negative"}]},
    {"instruction": "write a short story about a dog.", "round": 2, "similarity": 0.44, "is_classification": False,
     "instances": [{"input": "", "output": "Rex ran to the park and found a friend."}]},
    {"instruction": "Explain, in simple words, how rain forms.", "round": 2, "similarity": 0.12,
     "is_classification": False, "instances": [{"input": "", "output": "Water vapour cools into drops."}]},
]
ROUNDS = [
    {"round": 1, "requests": 4, "retries": 0, "failures": 0, "prompt_tokens": 1000, "completion_tokens": 400,
     "cost_usd": 0.001, "candidates": 5, "kept": 2, "instances": 3, "rejected": {"too_similar": 2, "too_short": 1},
     "seconds": 12.5},
    {"round": 2, "requests": 4, "retries": 1, "failures": 0, "prompt_tokens": 1200, "completion_tokens": 500,
     "cost_usd": 0.002, "candidates": 3, "kept": 2, "instances": 2, "rejected": {"too_similar": 1}, "seconds": 10.0},
]


def write_run(path, tasks=TASKS):
    path.mkdir(parents=True, exist_ok=True)
    (path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    data = [{"instruction": t["instruction"], **i} for t in tasks for i in t["instances"]]
    (path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    (path / "rejected.jsonl").write_text(json.dumps({"instruction": "x", "reason": "too_short", "round": 1}) + "\n")
    total = {k: sum(r[k] for r in ROUNDS) for k in ("requests", "prompt_tokens", "completion_tokens", "kept")}
    (path / "stats.json").write_text(json.dumps({"teacher": "openai:test", "seeds": 175, "rounds": ROUNDS,
                                                 "total": total}))
    (path / "run.json").write_text(json.dumps({"style": "selfinstruct", "threshold": 0.7}))
    return path


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    return len(data), width, height


def test_leading_words():
    assert leading_word("Write, then rewrite.") == "write"
    assert leading_word("  \"Don't stop\" me") == "don't"
    assert leading_word("3 ways to...") == "ways"
    assert leading_word("...") == ""
    assert leading_verbs([t["instruction"] for t in TASKS]) == [("write", 2), ("classify", 1), ("explain", 1)]


def test_max_similarities_match_rouge_score():
    texts = ["Write a poem about the sea.", "Write a poem about the sky.", "Explain how rain forms.", "!!"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    want = [max(scorer.score(a, b)["rougeL"].fmeasure for j, b in enumerate(texts) if j != i)
            for i, a in enumerate(texts)]
    assert max_similarities(texts) == pytest.approx(want, abs=1e-12)
    assert want[0] == pytest.approx(5 / 6) and want[3] == 0.0


def test_similarities_prefer_the_run_values_and_recompute_when_missing():
    assert similarities(TASKS) == ([0.31, 0.52, 0.44, 0.12], pytest.approx(similarities(TASKS)[1]))
    assert "tasks.jsonl" in similarities(TASKS)[1]
    missing = [{**t, "similarity": None} for t in TASKS]
    values, source = similarities(missing)
    assert "recomputed" in source and values == max_similarities([t["instruction"] for t in TASKS])
    seeds = ["Write a poem about the sea and the sky.", "Explain how rain forms."]
    with_seeds, source = similarities(missing, seeds)
    assert "the 2 seeds" in source and with_seeds[3] == pytest.approx(rouge_l_pair(TASKS[3]["instruction"], seeds[1]))
    assert with_seeds[0] > values[0] and with_seeds[1] == values[1]


def rouge_l_pair(a, b):
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(a, b)["rougeL"].fmeasure


def test_report_writes_markdown_and_real_pngs(tmp_path):
    run = write_run(tmp_path / "run")
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    out = run / "report"
    md = (out / "report.md").read_text()
    assert "Kept **4 tasks** (1 classification) with **5 examples**" in md
    assert "rejected 4 candidates" in md and "2200 prompt + 900 completion" in md and "$0.0030" in md
    assert "| 1 | 5 | 2 | 3 | 3 | 4 | 1000 | 400 | 0.0010 | 12 |" in md
    assert "| too_similar | 3 |" in md and "| write | 2 |" in md
    assert "median 0.375, 90th percentile 0.496, n=4" in md
    sizes = {}
    for name in ("rounds.png", "lengths.png", "similarity.png", "first_words.png"):
        assert f"]({name})" in md
        n_bytes, w, h = png_size(out / name)
        assert n_bytes > 8000, name  # axes, bars and text, not a blank canvas
        sizes[name] = (w, h)
    assert sizes["rounds.png"] == (1000, 400) and sizes["similarity.png"] == (700, 400)
    pil = pytest.importorskip("PIL.Image")
    with pil.open(out / "rounds.png") as im:
        im.verify()


def test_report_refuses_to_overwrite_unless_asked(tmp_path):
    run = write_run(tmp_path / "run")
    runner = CliRunner()
    assert runner.invoke(main, ["report", str(run)]).exit_code == 0
    again = runner.invoke(main, ["report", str(run)])
    assert again.exit_code == 2 and "already exists" in again.output and "pass --overwrite" in again.output
    assert runner.invoke(main, ["report", str(run), "--overwrite"]).exit_code == 0


def test_report_refuses_a_folder_that_is_neither_a_run_nor_data(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "data.jsonl").write_text("{}\n")  # no stats.json: read as data, and it is bad data
    result = CliRunner().invoke(main, ["report", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "data.jsonl:1: missing field 'instruction'" in result.output
    assert not (tmp_path / "x" / "report").exists() and not (tmp_path / "x.report").exists()
    (tmp_path / "y").mkdir()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "y")])
    assert result.exit_code == 2 and "no data.jsonl" in result.output


def test_report_names_the_line_of_broken_stats(tmp_path):
    run = write_run(tmp_path / "run")
    (run / "stats.json").write_text('{\n  "rounds": [\n  oops\n]}')
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 2 and f"{run / 'stats.json'}:3: invalid JSON" in result.output


# --------------------------------------------------------------------------- eval reports

EVIL = "<script>alert('x')</script>"


def eval_fixture():
    rows = [{"instruction": f"Say {EVIL}", "input": "a & b", "output": "ok"},
            {"instruction": "Count to three.", "input": "", "output": "1 2 3"}]
    def s(answer, rouge, **flags):
        return {"answer": answer, "rouge_l": rouge, "exact_match": None, "words": len(answer.split()),
                "empty": False, "echo": False, "runaway": False, **flags}
    scored = {"A": [s(EVIL, 0.0), s("1 2", 0.8)], "B<i>": [s("ok ```` fence", 0.5, echo=True), s("", 0.0, empty=True)]}
    metrics = {n: {"rows": 2, "rouge_l": sum(x["rouge_l"] for x in v) / 2, "exact_match": None,
                   "classification_rows": 0, "empty": 0.0, "echo": 0.0, "runaway": 0.0, "words": 1.0,
                   "seconds": 1.0} for n, v in scored.items()}
    from selfinstruct.evaluation.evaluate import compare_models

    summary = {"data": "d.jsonl", "rows": 2, "limit": None, "seed": 0, "template": "alpaca",
               "max_new_tokens": 8, "temperature": 0.0, "models": ["A", "B<i>"], "metrics": metrics,
               "comparisons": compare_models(["A", "B<i>"], scored, seed=0)}
    return summary, rows, scored


def test_html_escapes_model_text_and_is_self_contained():
    summary, rows, scored = eval_fixture()
    page = render_html(summary, rows, scored, [0], [1])
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "B&lt;i&gt;" in page and "<i>" not in page and "a &amp; b" in page
    assert "http" not in page and "<link" not in page and "<style>" in page
    assert page.count('class="example"') == 2


def test_markdown_fences_model_text():
    summary, rows, scored = eval_fixture()
    md = render_markdown(summary, rows, scored, [0], [1])
    assert f"```text\n{EVIL}\n```" in md
    assert "`````text\nok ```` fence\n`````" in md
    assert "**B<i>** (echo)" in md and "**B<i>** (empty)" in md
    assert "| ROUGE-L F1 (mean) | 0.400 | 0.250 |" in md
    assert "| 1 | 0 | 1 |" in md  # B wins row 0, ties none, loses row 1
    assert md_block("a ``` b").startswith("````text")


@pytest.mark.parametrize("shape", ["alpaca", "messages", "prompt-completion"])
def test_report_on_any_data_file(tmp_path, shape):
    from selfinstruct.data.formatting import alpaca_prompt

    data = [{"instruction": t["instruction"], **i} for t in TASKS for i in t["instances"]]
    rows = {"alpaca": data,
            "messages": [{"messages": [{"role": "user", "content": r["instruction"]},
                                       {"role": "assistant", "content": r["output"]}]} for r in data],
            "prompt-completion": [{"prompt": alpaca_prompt(r["instruction"], r["input"]), "completion": r["output"]}
                                  for r in data]}[shape]
    path = tmp_path / "filtered.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["report", str(path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "filtered.jsonl.report"
    md = (out / "report.md").read_text()
    assert md.startswith("# Data report: filtered.jsonl") and "**5 rows**, 4 distinct instructions" in md
    assert "| write | 2 |" in md and "| output | 5 |" in md
    for name in ("lengths.png", "similarity.png", "first_words.png"):
        assert f"]({name})" in md and png_size(out / name)[0] > 8000
    assert CliRunner().invoke(main, ["report", str(path)]).exit_code == 2  # never overwritten unasked
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"q": r["instruction"], "a": r["output"]}) + "\n" for r in data))
    result = CliRunner().invoke(main, ["report", str(qa), "--columns", "instruction=q,output=a", "--out",
                                       str(tmp_path / "qa")])
    assert result.exit_code == 0 and "**5 rows**" in (tmp_path / "qa" / "report.md").read_text()
