"""Teachers: pure helpers, and the local HF teacher on a tiny random Llama."""
from __future__ import annotations

import email.utils
import random

import pytest

from selfinstruct.teachers.openai_api import backoff_delay, parse_retry_after, redact
from selfinstruct.teachers.hf import HFTeacher
from selfinstruct.teachers import (Completion, TeacherError, Usage, cut_at_stop, estimate_cost,
                                   make_teacher, parse_spec)
from tiny import make_tiny_model_dir

# ------------------------------------------------------------------ spec parsing


@pytest.mark.parametrize("spec, expected", [
    (None, ("local", "embedded")),
    ("embedded", ("local", "embedded")),
    ("smollm2", ("local", "smollm2")),
    ("gguf:/models/x.gguf", ("gguf", "/models/x.gguf")),
    ("hf:HuggingFaceTB/SmolLM2-135M", ("hf", "HuggingFaceTB/SmolLM2-135M")),
    ("hf:/models/x", ("hf", "/models/x")),
    ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
    ("openai:meta/llama:70b", ("openai", "meta/llama:70b")),
])
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


def test_parse_spec_bare_folder(tmp_path):
    assert parse_spec(str(tmp_path)) == ("hf", str(tmp_path))


@pytest.mark.parametrize("spec", ["foo:bar", "gpt-4o-mini", "openai:", "hf:  ", "vllm:llama"])
def test_parse_spec_rejects_with_valid_forms(spec):
    with pytest.raises(TeacherError) as e:
        parse_spec(spec)
    assert "openai:MODEL" in str(e.value) and "hf:PATH_OR_HUB_ID" in str(e.value)
    assert "\n" not in str(e.value)


def test_make_teacher_unknown_prefix():
    with pytest.raises(TeacherError, match="unknown teacher 'foo:bar'"):
        make_teacher("foo:bar")


def test_openai_without_key_on_official_api(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(TeacherError, match="OPENAI_API_KEY is not set"):
        make_teacher("openai:gpt-4o-mini")


def test_openai_bad_endpoint():
    with pytest.raises(TeacherError, match="endpoint must be"):
        make_teacher("openai:m", base_url="http://127.0.0.1:9/v1", endpoint="responses")


# ------------------------------------------------------------------ usage, cost


def test_usage_snapshot_and_difference():
    u = Usage(requests=5, retries=2, failures=1, prompt_tokens=100, completion_tokens=40)
    before = u.snapshot()
    u.requests += 3
    u.prompt_tokens += 30
    u.completion_tokens += 7
    assert before == Usage(5, 2, 1, 100, 40)  # a snapshot does not follow later changes
    assert (u - before) == Usage(requests=3, retries=0, failures=0, prompt_tokens=30, completion_tokens=7)
    assert (u - before).as_dict() == {"requests": 3, "retries": 0, "failures": 0,
                                      "prompt_tokens": 30, "completion_tokens": 7, "unreported": 0}


def test_estimate_cost():
    u = Usage(prompt_tokens=2_000_000, completion_tokens=500_000)
    assert estimate_cost(u, 0.15, 0.60) == pytest.approx(0.30 + 0.30)
    assert estimate_cost(Usage(prompt_tokens=1000), 2.5, 10.0) == pytest.approx(0.0025)
    assert estimate_cost(u, None, 0.6) is None
    assert estimate_cost(u, 0.15, None) is None


# ------------------------------------------------------------------ retry helpers


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "junk", "retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


def test_parse_retry_after_http_date():
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0


def test_backoff_full_jitter_bounds():
    rng = random.Random(0)
    for attempt in range(10):
        bound = min(8.0, 0.5 * 2 ** attempt)
        draws = [backoff_delay(attempt, base=0.5, cap=8.0, rng=rng) for _ in range(400)]
        assert all(0 <= d <= bound for d in draws)
        assert max(draws) > 0.9 * bound and min(draws) < 0.1 * bound  # full jitter spans the range


def test_backoff_honours_retry_after_up_to_cap():
    assert backoff_delay(0, base=0.5, cap=60, retry_after=7.0) == 7.0
    assert backoff_delay(3, base=0.5, cap=60, retry_after=0.0) == 0.0
    assert backoff_delay(0, base=0.5, cap=5.0, retry_after=3600.0) == 5.0


def test_redact():
    key = "sk-proj-abcdef123456"
    msg = redact(f"Error code: 401 - {{'message': \"got '{key}'\"}}\n second line", key)
    assert key not in msg and "***" in msg and "\n" not in msg
    assert redact("x" * 1000, key).endswith("...") and len(redact("x" * 1000, key)) == 300
    assert redact("abc", None) == "abc"


# ------------------------------------------------------------------ stop strings


def test_cut_at_stop_earliest():
    assert cut_at_stop("a\n\n2. b###c", ["###", "\n\n"]) == ("a", True)
    assert cut_at_stop("a###c\n\nd", ["\n\n", "###"]) == ("a", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)
    assert cut_at_stop("abc", None) == ("abc", False)
    assert cut_at_stop("abc", ["", "c"]) == ("ab", True)  # empty stop strings are ignored
    assert cut_at_stop("###", ["###"]) == ("", True)


# ------------------------------------------------------------------ HF teacher on a tiny random Llama

PROMPTS = [
    "What is the capital of France?",
    "Give three tips",
    "Write a short poem about the sea. The waves are blue",
    "List",
    "Classify the sentiment of the review",
    [{"role": "user", "content": "Translate the sentence into Spanish."}],
    "Summarize the paragraph in one sentence.",
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and much faster when other jobs share the CPU.
    fp32, so that batched and one-at-a-time greedy runs agree exactly (bf16 rounds by batch shape)."""
    import os

    import torch

    before, dtype = torch.get_num_threads(), os.environ.get("SELFINSTRUCT_DTYPE")
    torch.set_num_threads(1)
    os.environ["SELFINSTRUCT_DTYPE"] = "float32"
    yield
    torch.set_num_threads(before)
    os.environ.pop("SELFINSTRUCT_DTYPE") if dtype is None else os.environ.__setitem__("SELFINSTRUCT_DTYPE", dtype)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    # untied embeddings: a tied random model just repeats its last token, which hides padding bugs
    return make_tiny_model_dir(tmp_path_factory.mktemp("teacher") / "m", tie=False, seed=1)


@pytest.fixture(scope="module")
def teacher(tiny_dir):
    return make_teacher(f"hf:{tiny_dir}", batch_size=3, seed=0)


def test_hf_teacher_identity(teacher, tiny_dir):
    assert isinstance(teacher, HFTeacher)
    assert teacher.name == f"hf:{tiny_dir}" and teacher.is_chat is True
    assert teacher.tokenizer.padding_side == "left"


def test_hf_batched_equals_one_at_a_time_greedy(teacher):
    batched = teacher.complete(PROMPTS, max_tokens=10, temperature=0)
    single = [teacher.complete([p], max_tokens=10, temperature=0)[0] for p in PROMPTS]
    assert batched == single
    assert len({c.text for c in batched}) == len(PROMPTS)  # distinct outputs: the comparison means something


def test_hf_token_counts_and_length(teacher):
    tok = teacher.tokenizer
    before = teacher.usage.snapshot()
    out = teacher.complete(PROMPTS, max_tokens=6, temperature=0)
    chat_ids = tok(tok.apply_chat_template(PROMPTS[5], add_generation_prompt=True, tokenize=False),
                   add_special_tokens=False)["input_ids"]
    expected = [len(tok(p)["input_ids"]) if isinstance(p, str) else len(chat_ids) for p in PROMPTS]
    assert [c.prompt_tokens for c in out] == expected
    assert expected[0] == 1 + len(tok("What is the capital of France?", add_special_tokens=False)["input_ids"])
    # the random model never emits <eos> in 6 steps: every answer ran out of tokens
    assert [(c.completion_tokens, c.finish_reason) for c in out] == [(6, "length")] * len(PROMPTS)
    assert teacher.usage - before == Usage(requests=len(PROMPTS), prompt_tokens=sum(expected),
                                           completion_tokens=6 * len(PROMPTS))
    assert all(c.text == tok.decode(tok(c.text, add_special_tokens=False)["input_ids"]) for c in out)


def test_hf_stop_string_cuts_and_stops_early(teacher):
    free = teacher.complete(PROMPTS[:3], max_tokens=16, temperature=0)
    # pick a stop string the greedy run really produces, a few characters in, for the first prompt
    text = free[0].text
    stop = text[4:7]
    assert len(stop) == 3 and stop in text
    cut = teacher.complete(PROMPTS[:3], max_tokens=16, temperature=0, stop=[stop])
    assert cut[0].text == text[:text.find(stop)]
    assert cut[0].finish_reason == "stop" and cut[0].completion_tokens < 16
    for f, c in zip(free[1:], cut[1:]):  # the other rows: cut at the same string, if they have it
        assert c.text == f.text[:f.text.find(stop)] if stop in f.text else c.text == f.text


def test_hf_end_of_sequence_row(teacher):
    from selfinstruct.teachers.hf import answer_end

    tok = teacher.tokenizer
    ids = tok("Paris is", add_special_tokens=False)["input_ids"]
    eos, pad = tok.eos_token_id, 999_999  # a pad id that is not the eos
    assert answer_end(ids + [eos, pad, pad], {eos}, pad) == (len(ids), True)
    assert answer_end(ids + [pad, pad], {eos}, pad) == (len(ids), False)  # a stop string ended it in a batch
    assert answer_end(ids, {eos}, pad) == (len(ids), False)
    assert answer_end(ids + [eos], {eos}, eos) == (len(ids), True)  # pad == eos still ends with eos
    c = teacher._completion(ids, True, n_prompt=4, max_tokens=len(ids) + 3, stop=None)
    assert c == Completion("Paris is", 4, len(ids) + 1, "stop")
    c = teacher._completion(ids, False, n_prompt=4, max_tokens=len(ids), stop=None)
    assert c == Completion("Paris is", 4, len(ids), "length")
    c = teacher._completion(ids, False, n_prompt=4, max_tokens=len(ids), stop=[" is"])
    assert c == Completion("Paris", 4, len(ids), "stop")


def test_stop_ids_keep_a_pad_that_is_the_eos(teacher):
    """Llama 3 style: pad == eos (<|eot_id|>); eval and the teacher both stop there (one rule)."""
    from selfinstruct.teachers.hf import stop_ids

    tok = teacher.tokenizer
    saved = tok.pad_token
    try:
        tok.pad_token = tok.eos_token
        assert tok.eos_token_id in stop_ids(teacher.model, tok)
    finally:
        tok.pad_token = saved


def test_hf_sampling_is_seeded(tiny_dir, teacher):
    kw = dict(max_tokens=8, temperature=1.0, top_p=0.95)
    a = make_teacher(f"hf:{tiny_dir}", batch_size=3, seed=0).complete(PROMPTS, **kw)
    b = make_teacher(f"hf:{tiny_dir}", batch_size=3, seed=0).complete(PROMPTS, **kw)
    c = make_teacher(f"hf:{tiny_dir}", batch_size=3, seed=1).complete(PROMPTS, **kw)
    assert a == b
    assert [x.text for x in a] != [x.text for x in c]
    greedy = teacher.complete(PROMPTS, max_tokens=8, temperature=0)
    assert [x.text for x in a] != [x.text for x in greedy]


def test_hf_repeat_penalty_works_as_llama_cpps():
    """Positive logits of recent generated tokens are divided, others multiplied; the prompt and tokens
    older than the window are left alone."""
    import torch

    from selfinstruct.teachers.hf import recent_penalty

    ids = torch.tensor([[5, 1, 2, 3, 2]])  # prompt [5], then 1, 2, 3, 2 generated
    scores = torch.tensor([[1.0, 2.0, -2.0, 4.0, 0.5, 3.0]])
    out = recent_penalty(2.0, start=1, last_n=3)(ids, scores.clone())
    assert out.tolist() == [[1.0, 2.0, -4.0, 2.0, 0.5, 3.0]]  # 2 and 3 penalised; 1 is out of the window, 5 prompt


def test_hf_teacher_applies_the_repeat_penalty_greedy(tiny_dir, monkeypatch):
    """generate's repeat penalties reach the transformers engine too (before, it ignored them): a huge
    penalty leaves no token repeated in a greedy answer that repeats itself without it."""
    from selfinstruct.teachers import hf

    rows, real = [], hf.generate
    monkeypatch.setattr(hf, "generate", lambda *a, **kw: (rows.append(out[1]) or out for out in real(*a, **kw)))
    t = make_teacher(f"hf:{tiny_dir}", batch_size=2, seed=0, repeat_penalty=1.0)
    t.complete(PROMPTS[:2], max_tokens=30, temperature=0)
    plain, rows[:] = list(rows), []
    t.repeat_penalty = 1e6
    t.complete(PROMPTS[:2], max_tokens=30, temperature=0)
    assert any(len(set(r)) < len(r) for r in plain)
    assert all(len(set(r)) == len(r) for r in rows)
    assert make_teacher(f"hf:{tiny_dir}", repeat_penalty=1.3).repeat_penalty == 1.3


def test_hf_progress_bar(teacher, capsys):
    teacher.complete(PROMPTS[:2], max_tokens=2, temperature=0, progress="teacher test")
    assert "teacher test" in capsys.readouterr().err


def test_hf_no_chat_template(tmp_path):
    d = make_tiny_model_dir(tmp_path / "plain", chat_template=False)
    t = make_teacher(str(d))
    assert t.is_chat is False
    with pytest.raises(TeacherError, match="no chat template"):
        t.complete([[{"role": "user", "content": "hi"}]], max_tokens=2)
    assert t.complete(["hi"], max_tokens=3, temperature=0)[0].completion_tokens == 3


def test_hf_missing_folder(tmp_path):
    with pytest.raises(TeacherError, match="not found"):
        make_teacher(f"hf:{tmp_path}/nope")


@pytest.mark.slow
def test_embedded_teacher_is_a_completion_model():
    t = make_teacher(None, batch_size=2)
    assert t.name == "embedded:gemma3-270m" and t.is_chat is False
    out = t.complete(["The capital of France is", "1, 2, 3, 4,"], max_tokens=8, temperature=0, stop=["\n"])
    assert len(out) == 2 and all(c.finish_reason in ("stop", "length") and "\n" not in c.text for c in out)
    assert " 5" in out[1].text
    assert t.usage.requests == 2 and t.usage.completion_tokens == sum(c.completion_tokens for c in out)


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_missing_gguf_file_is_one_line(tmp_path, dry_run):
    from click.testing import CliRunner

    from selfinstruct.cli import main

    res = CliRunner().invoke(main, ["generate", "--teacher", "gguf:/nowhere/nonexistent.gguf", "--rounds", "1",
                                    "--out", str(tmp_path / "o")] + (["--dry-run"] if dry_run else []))
    assert res.exit_code == 2, res.output
    assert res.output == "error: gguf:/nowhere/nonexistent.gguf: no such file\n"
    assert not (tmp_path / "o").exists()
