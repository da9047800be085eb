"""`selfinstruct answer`: a model writes each row's output anew (the student as the next teacher)."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfinstruct.cli import main
from selfinstruct.data.writers import OutputError
from selfinstruct.generation.answer import answer_file, answered_row, fingerprint, generate
from test_evaluate import noisy_model, write_rows

ROWS = [
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "teacher's answer", "id": "a"},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour", "seed": True},
    {"instruction": "Write a haiku about rain.", "input": "", "output": "x"},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(noisy_model(tmp_path_factory.mktemp("answer") / "m", 0))


def read(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_answered_row_cuts_at_a_header_and_names_what_it_rejects():
    row = {"instruction": "i", "input": "", "output": "old", "_line": 3, "id": 7}
    assert answered_row(row, {"raw": " new answer\n\n### Instruction:\nmore", "runaway": False}) == \
        ({"instruction": "i", "input": "", "output": "new answer", "id": 7}, None)
    assert answered_row(row, {"raw": "on and on", "runaway": True})[1] == "runaway"
    assert answered_row(row, {"raw": "### Response:", "runaway": False})[1] == "empty_answer"


def test_answers_are_evals_answers_and_every_row_is_kept_or_rejected(tiny, tmp_path):
    from selfinstruct.data.formatting import alpaca_prompt, cut_at_header
    from selfinstruct.models import generation_dtype, load_model_and_tokenizer

    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    stats = answer_file(data, tiny, tmp_path / "out.jsonl", rejected=tmp_path / "rej.jsonl", max_new_tokens=12,
                        repeat_penalty=1.3, log=lambda m: None)
    model, tok = load_model_and_tokenizer(tiny, dtype=generation_dtype())
    want = generate(model, tok, [alpaca_prompt(r["instruction"], r["input"]) for r in ROWS], max_new_tokens=12,
                    repeat_penalty=1.3)
    got = {r["instruction"]: r for r in read(tmp_path / "out.jsonl") + read(tmp_path / "rej.jsonl")}
    assert len(got) == 3 and stats["kept"] + stats["rejected"] == 3
    for row, w in zip(ROWS, want):
        g = got[row["instruction"]]
        assert g["output"] == cut_at_header(w["raw"])                 # the answer replaces the teacher's
        assert g.get("reason") == ("runaway" if w["runaway"] else None)
        assert {k: v for k, v in g.items() if k not in ("output", "reason")} == \
            {k: v for k, v in row.items() if k != "output"}            # every other field is kept
    assert not (tmp_path / "out.jsonl.partial.jsonl").exists()


def test_the_repeat_penalty_reaches_the_model(tiny):
    from selfinstruct.data.formatting import alpaca_prompt
    from selfinstruct.models import generation_dtype, load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(tiny, dtype=generation_dtype())
    prompts = [alpaca_prompt(r["instruction"], r["input"]) for r in ROWS]
    plain = generate(model, tok, prompts, max_new_tokens=24)
    assert generate(model, tok, prompts, max_new_tokens=24, repeat_penalty=1.0) == plain
    assert generate(model, tok, prompts, max_new_tokens=24, repeat_penalty=3.0) != plain


def journal_header(data, model) -> str:
    """The first line `answer_file(data, model, out, max_new_tokens=8)` writes to its journal."""
    from selfinstruct.data.records import read_examples

    settings = dict(model=model, max_new_tokens=8, temperature=0.0, top_p=1.0, repeat_penalty=1.2,
                    template="alpaca", seed=0)
    return json.dumps({"fingerprint": fingerprint(read_examples(data), settings), **settings})


def test_a_killed_run_resumes_from_its_journal_and_answers_only_the_rest(tiny, tmp_path):
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    journal = out.with_name(out.name + ".partial.jsonl")
    journal.write_text(journal_header(data, tiny) + "\n"
                       + json.dumps({"row": 1, "raw": "Bonjour from before", "new_tokens": 3, "runaway": False})
                       + "\n" + '{"row": 2, "raw": "torn')           # a line the kill cut short
    logs = []
    stats = answer_file(data, tiny, out, rejected=tmp_path / "rej.jsonl", max_new_tokens=8, log=logs.append)
    rows = {r["instruction"]: r for r in read(out) + read(tmp_path / "rej.jsonl")}
    assert rows["Translate to French."]["output"] == "Bonjour from before"   # not answered again
    assert stats["rows"] == 3
    assert any("resuming: 1 of 3" in m for m in logs)
    assert not journal.exists()


@pytest.mark.parametrize("left", ["header", "torn header"])
def test_a_run_killed_before_any_answer_starts_cleanly(left, tiny, tmp_path):
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    header = journal_header(data, tiny)
    out.with_name(out.name + ".partial.jsonl").write_text(header + "\n" if left == "header" else header[:20])
    stats = answer_file(data, tiny, out, max_new_tokens=8, log=lambda m: None)
    assert stats["rows"] == 3 and len(read(out)) == stats["kept"]


def test_a_journal_from_other_settings_is_refused(tiny, tmp_path):
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    out.with_name(out.name + ".partial.jsonl").write_text(json.dumps({"fingerprint": "other"}) + "\n")
    with pytest.raises(OutputError, match="other data or settings"):
        answer_file(data, tiny, out, log=lambda m: None)


@pytest.mark.parametrize("case", ["bad_line", "out_exists", "no_model", "no_chat_template"])
def test_bad_input_is_one_line_and_exit_2_before_any_model_loads(case, tiny, tmp_path, monkeypatch):
    import selfinstruct.generation.answer as answer

    monkeypatch.setattr(answer, "load_model_and_tokenizer",
                        lambda *a, **k: pytest.fail("a model loaded before the inputs were checked"))
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    model, extra = tiny, []
    if case == "bad_line":
        data.write_text(data.read_text() + '{"instruction": 3}\n')
    if case == "out_exists":
        (tmp_path / "out.jsonl").write_text("keep me\n")
    if case == "no_model":
        model = str(tmp_path / "missing")
    if case == "no_chat_template":
        import shutil

        model = str(tmp_path / "plain")
        shutil.copytree(tiny, model)
        (Path(model) / "chat_template.jinja").unlink()
        extra = ["--template", "chat"]
    r = CliRunner().invoke(main, ["answer", str(data), "--model", model, "--out", str(tmp_path / "out.jsonl"), *extra])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in r.output
    assert {"bad_line": "rows.jsonl:4", "out_exists": "already exists", "no_model": "not found",
            "no_chat_template": "chat template"}[case] in line, line
    if case == "out_exists":
        assert (tmp_path / "out.jsonl").read_text() == "keep me\n"
