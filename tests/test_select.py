"""`selfinstruct select`: the scores (IFD, perplexity, length), the keep rule, the scores file, bad input."""
import json
import math

import pytest
from click.testing import CliRunner
from tiny import make_tiny_model_dir

from selfinstruct.cli import main
from selfinstruct.data.select import decide, scores_path_for

ROWS = [
    {"instruction": "What is the capital of France?", "input": "", "output": "The capital of France is Paris."},
    {"instruction": "Translate the sentence into Spanish.", "input": "Hello, how are you?",
     "output": "Hola, como estas?"},
    {"instruction": "Give three tips for staying healthy.", "input": "",
     "output": "Eat a balanced diet, exercise regularly and sleep well. Also drink water."},
    {"instruction": "Classify the sentiment of the review.", "input": "I loved it!", "output": "positive"},
    {"instruction": "List the first five prime numbers.", "input": "", "output": "2, 3, 5, 7, 11"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(*args):
    return CliRunner().invoke(main, ["select", *map(str, args)])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "m")


def direct_losses(model, tokenizer, row):
    """The IFD by hand: one unbatched forward per sequence, the model's own logits, torch's cross-entropy."""
    import torch

    from selfinstruct.data.formatting import format_example
    from selfinstruct.training.examples import IGNORE_INDEX, encode_example

    prompt, completion = format_example(row)
    ex = encode_example(prompt, completion, tokenizer, 1024)  # the tokens and labels `train` uses
    response = [t for t in ex["labels"] if t != IGNORE_INDEX]

    def mean_ce(ids, n_context):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float()
        return torch.nn.functional.cross_entropy(logits[n_context - 1:-1], torch.tensor(ids[n_context:])).item()

    cond = mean_ce(ex["input_ids"], len(ex["input_ids"]) - len(response))
    alone = mean_ce([tokenizer.bos_token_id] + response, 1)
    return cond, alone, len(response)


def test_scores_equal_a_direct_computation(tiny):
    """Batched (3 rows a pass, right-padded, head in chunks) = unbatched by hand, to 1e-5."""
    from selfinstruct.data import scoring
    from selfinstruct.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tiny))
    old = scoring.CHUNK_ELEMENTS
    scoring.CHUNK_ELEMENTS = 7 * model.config.vocab_size  # several head chunks per batch
    try:
        got = scoring.score_rows(ROWS, model, tok, batch_size=3, bf16=False)
    finally:
        scoring.CHUNK_ELEMENTS = old
    for row, s in zip(ROWS, got):
        cond, alone, n = direct_losses(model, tok, row)
        assert s["response_tokens"] == n
        assert s["loss_cond"] == pytest.approx(cond, abs=1e-5)
        assert s["loss_alone"] == pytest.approx(alone, abs=1e-5)
        assert s["ifd"] == pytest.approx(cond / alone, abs=1e-5)
        assert s["ppl"] == pytest.approx(math.exp(cond), rel=1e-5)


def test_scored_tokens_are_the_tokens_train_uses_for_a_prompt_that_holds_bos(tiny, monkeypatch):
    """A prompt-completion row exported with --template chat starts with the BOS text: train adds no second
    BOS (formatting.adds_special_tokens), and neither does the scorer."""
    from selfinstruct.data import scoring
    from selfinstruct.models import load_model_and_tokenizer
    from selfinstruct.training.examples import encode_rows

    model, tok = load_model_and_tokenizer(str(tiny))
    rows = [{"prompt": tok.bos_token + "Say hi.\n", "completion": "hi"}, ROWS[0]]
    seen = []
    real = scoring.encode_pair
    monkeypatch.setattr(scoring, "encode_pair", lambda *a: seen.append(real(*a)) or seen[-1])
    scoring.score_rows(rows, model, tok)
    assert [s["cond"] for s in seen] == [ex["input_ids"] for ex in encode_rows(rows, tok)[0]]
    assert seen[0]["cond"].count(tok.bos_token_id) == 1


def test_a_response_cut_entirely_gets_no_scores(tiny):
    from selfinstruct.data.scoring import score_rows
    from selfinstruct.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tiny))
    got = score_rows(ROWS[:2], model, tok, max_length=20)  # the Alpaca header alone is longer
    assert got == [None, None]


def trained_tiny(path):
    """A tiny model trained (a few seconds) to answer four instructions: the instruction predicts the answer."""
    import torch

    from selfinstruct.data.formatting import format_example
    from selfinstruct.models import load_model_and_tokenizer
    from selfinstruct.training.examples import Collator, encode_example

    make_tiny_model_dir(path, hidden=64, intermediate=128)
    model, tok = load_model_and_tokenizer(str(path))
    model.train()
    examples = [encode_example(*format_example(r), tok, 1024) for r in TRAIN_ROWS]
    batch = Collator(tok.pad_token_id, packing=False)(examples)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(60):  # one padded batch of the four rows a step
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tok


TRAIN_ROWS = [
    {"instruction": "What is the capital of France?", "input": "", "output": "Paris."},
    {"instruction": "Translate hello into Spanish.", "input": "", "output": "Hola."},
    {"instruction": "Name a red fruit.", "input": "", "output": "A cherry."},
    {"instruction": "List the first three prime numbers.", "input": "", "output": "2, 3, 5."},
]


def test_an_unrelated_response_scores_worse_than_an_answer(tmp_path):
    """Same responses, swapped instructions: the loss given the instruction and the IFD both go up."""
    from selfinstruct.data.scoring import score_rows

    model, tok = trained_tiny(tmp_path / "m")
    swapped = [{**r, "output": TRAIN_ROWS[(i + 1) % 4]["output"]} for i, r in enumerate(TRAIN_ROWS)]
    good = score_rows(TRAIN_ROWS, model, tok, bf16=False)
    bad = score_rows(swapped, model, tok, bf16=False)
    bad = bad[-1:] + bad[:-1]  # line each response up with its own scores from `good`
    for g, b in zip(good, bad):
        assert b["loss_cond"] > g["loss_cond"] + 0.3
        assert b["ifd"] > g["ifd"]
        assert g["ifd"] < 1 and g["loss_alone"] == pytest.approx(b["loss_alone"])


@pytest.mark.slow
def test_the_embedded_model_scores_unrelated_answers_worse(tmp_path):
    """The embedded Gemma 3 270M: an answer from another task has a higher conditioned loss and IFD."""
    from selfinstruct.data.scoring import load_scorer, score_rows

    model, tok, bf16 = load_scorer(None)
    rows = [ROWS[0], {**ROWS[0], "output": "I spent 10 years in school."},
            ROWS[1], {**ROWS[1], "output": "The mitochondria is the powerhouse of the cell."}]
    s = score_rows(rows, model, tok, bf16=bf16)
    for good, bad in ((s[0], s[1]), (s[2], s[3])):
        assert bad["loss_cond"] > good["loss_cond"] and bad["ifd"] > good["ifd"]


# --------------------------------------------------------------------------- the keep rule (pure)


def S(ifd, ppl=10.0, n=5, rating=None):
    return {"ifd": ifd, "ppl": ppl, "response_tokens": n, "rating": rating}


def test_keep_rule_drops_ifd_at_or_above_1_and_keeps_the_highest_ifd():
    scores = [S(0.2), S(0.9), S(1.0), S(1.3), None, S(0.5)]
    d = decide(scores, keep_fraction=1 / 3)  # 2 of 6 rows
    assert [x["kept"] for x in d] == [False, True, False, False, False, True]
    assert [x["rank"] for x in d] == [3, 1, None, None, None, 2]
    assert d[2]["reason"].startswith("ifd >= 1") and d[3]["reason"].startswith("ifd >= 1")
    assert d[4]["reason"].startswith("response cut") and d[0]["reason"].startswith("below the cut")
    assert [x["kept"] for x in decide(scores)] == [True, True, False, False, False, True]  # thresholds only
    assert [x["kept"] for x in decide(scores, keep_fraction=1 / 3, reverse=True)] == \
        [True, False, False, False, False, True]
    assert [x["kept"] for x in decide(scores, max_ifd=math.inf)] == [True] * 4 + [False, True]


def test_keep_rule_by_other_scores_and_rating():
    scores = [S(0.5, ppl=30, n=9, rating=5), S(0.6, ppl=3, n=2, rating=2), S(0.7, ppl=10, n=4, rating=None)]
    assert [x["kept"] for x in decide(scores, by="ppl", keep_fraction=0.34)] == [False, True, False]
    assert [x["kept"] for x in decide(scores, by="length", keep_fraction=0.34)] == [True, False, False]
    d = decide(scores, by="rating")
    assert [x["kept"] for x in d] == [True, True, False] and d[2]["reason"] == "no rating"
    d = decide(scores, min_rating=4)
    assert [x["kept"] for x in d] == [True, False, False] and d[1]["reason"] == "rating < 4"


# --------------------------------------------------------------------------- the command


def test_select_writes_kept_rows_and_every_rows_scores(tmp_path, tiny):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "kept.jsonl"
    r = run(src, "--out", out, "--model", tiny, "--max-ifd", "inf", "--keep-fraction", "0.4", "--no-progress")
    assert r.exit_code == 0, r.output
    assert f"kept 2 of 5 rows -> {out}" in r.output
    recs = read_jsonl(tmp_path / "kept.scores.jsonl")
    assert scores_path_for(out) == tmp_path / "kept.scores.jsonl"
    assert [x["line"] for x in recs] == [1, 2, 3, 4, 5] and [x["row"] for x in recs] == ROWS
    assert sorted(x["rank"] for x in recs) == [1, 2, 3, 4, 5]
    by_rank = sorted(recs, key=lambda x: x["rank"])
    assert [x["kept"] for x in by_rank] == [True, True, False, False, False]
    assert by_rank[0]["scores"]["ifd"] >= by_rank[1]["scores"]["ifd"] >= by_rank[2]["scores"]["ifd"]
    assert all(set(x["scores"]) == {"ifd", "ppl", "response_tokens", "loss_cond", "loss_alone"} for x in recs)
    assert by_rank[2]["reason"] == "below the cut: ifd rank 3 of 5, 2 kept" and by_rank[0]["reason"] is None
    assert recs[0]["rule"]["by"] == "ifd" and recs[0]["rule"]["max_ifd"] is None
    assert read_jsonl(out) == [x["row"] for x in recs if x["kept"]]  # kept rows, in input order

    rep = CliRunner().invoke(main, ["report", str(tmp_path / "kept.scores.jsonl")])
    assert rep.exit_code == 0, rep.output
    md = (tmp_path / "kept.scores.report" / "select.md").read_text()
    assert "Kept 2 of 5 rows" in md and "| ifd |" in md
    assert (tmp_path / "kept.scores.report" / "scores.png").stat().st_size > 1000


def test_bad_input_is_one_line_exit_2_before_the_model_loads(tmp_path):
    missing_model = tmp_path / "no-such-model"  # loading it would fail: errors must come first
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    r = run(bad, "--out", tmp_path / "k.jsonl", "--model", missing_model)
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and f"{bad}:2:" in r.output and "Traceback" not in r.output

    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    (tmp_path / "taken.jsonl").write_text("keep me\n")
    r = run(src, "--out", tmp_path / "taken.jsonl", "--model", missing_model)
    assert r.exit_code == 2 and "already exists" in r.output and r.output.strip().count("\n") == 0
    assert (tmp_path / "taken.jsonl").read_text() == "keep me\n"
    (tmp_path / "k.scores.jsonl").write_text("old\n")
    r = run(src, "--out", tmp_path / "k.jsonl", "--model", missing_model)
    assert r.exit_code == 2 and "k.scores.jsonl: already exists" in r.output
    assert not (tmp_path / "k.jsonl").exists() and (tmp_path / "k.scores.jsonl").read_text() == "old\n"

    r = run(src, "--out", tmp_path / "k2.jsonl", "--by", "rating", "--model", missing_model)
    assert r.exit_code == 2 and "needs --rate" in r.output
    r = run(src, "--out", tmp_path / "k2.jsonl", "--model", missing_model)  # the model is checked last
    assert r.exit_code == 2 and "no-such-model" in r.output and r.output.strip().count("\n") == 0


# --------------------------------------------------------------------------- the LLM rating (AlpaGasus)


def test_rating_prompt_and_parse():
    from selfinstruct.data.rating import format_input, parse_output

    text = format_input({"instruction": "Name a red fruit.", "input": "", "output": "A cherry."})
    assert "### Instruction:\nName a red fruit." in text and "### Input:\n(none)" in text
    assert "### Response:\nA cherry." in text and "1 to 5" in text and "{" not in text
    chat = format_input({"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]})
    assert "### Instruction:\nHi?" in chat and "### Response:\nHello." in chat
    assert parse_output("Score: 4\nAccurate and complete.") == 4
    assert parse_output("**Rating:** 4.5/5 - good") == 4.5
    assert parse_output("3\nPartly right.") == 3
    assert parse_output("Score: 9") is None and parse_output("I like it.") is None and parse_output(None) is None


@pytest.mark.server
def test_select_rates_rows_through_a_real_server(tmp_path, tiny):
    """--rate openai:MODEL over HTTP on 127.0.0.1: the scripted server rates the Paris row 5, others 2."""
    from servers import completion_body, start_scripted

    def reply(body):
        prompt = body["messages"][-1]["content"]
        return 200, {}, completion_body("Score: 5\nCorrect." if "Paris" in prompt else "Score: 2\nWeak.", chat=True)

    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "kept.jsonl"
    with start_scripted(reply) as (url, state):
        r = run(src, "--out", out, "--model", tiny, "--rate", "openai:judge", "--base-url", url, "--api-key", "x",
                "--by", "rating", "--keep-fraction", "0.2", "--max-ifd", "inf", "--no-progress")
    assert r.exit_code == 0, r.output
    assert len(state.bodies) == len(ROWS) and all(b["temperature"] == 0 for b in state.bodies)
    assert read_jsonl(out) == [ROWS[0]]
    recs = read_jsonl(tmp_path / "kept.scores.jsonl")
    assert [x["scores"]["rating"] for x in recs] == [5, 2, 2, 2, 2]
    assert recs[0]["scores"]["rating_reply"].startswith("Score: 5") and recs[0]["rule"]["rate"] == "openai:judge"
