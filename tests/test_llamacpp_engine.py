"""The llama.cpp engine's own logic on a fake ``llama_cpp`` module (tests/fake_llama.py), in the fast
tier: continuous batching and shared prefixes, sampler and context lifetimes, chat BOS, start-up."""
from __future__ import annotations

import os

import pytest

import fake_llama
from selfinstruct.teachers import TeacherError, make_teacher
from tiny import CHAT_TEMPLATE, make_tokenizer


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def teacher(monkeypatch, tok, *, parallel=3, chat=False, **kw):
    from selfinstruct.teachers.llamacpp import LlamaCppTeacher

    L = fake_llama.install(monkeypatch, tok, chat_template=CHAT_TEMPLATE if chat else None, **kw)
    return L, LlamaCppTeacher("fake.gguf", name="gguf:fake", parallel=parallel, chat=chat, threads=1)


SHARED = "Answer each question with one word. Q: What colour is the sky? A: Blue. "
PROMPTS = [SHARED + q for q in ("Q: What do bees make? A:", "Q: Which animal barks? A:", "Q: Hot or cold? A:")] + \
          ["The capital of France is", "1, 2, 3, 4,", "word " * 200]


def test_continuous_batching_and_shared_prefixes_give_each_prompt_its_own_answer(monkeypatch, tok):
    """Every answer is the toy model's answer to its prompt alone: _fill puts each token at its
    sequence's next position (prompts longer than a batch included), and a shared prefix's cells
    stand for the prompt's own."""
    L, t = teacher(monkeypatch, tok, n_ctx_train=1024)
    try:
        ids = [t.encode(p) for p in PROMPTS]
        assert max(map(len, ids)) > t.n_batch  # one prompt is prefilled over two batches
        shared = t.complete(PROMPTS, max_tokens=20, temperature=0)
        fed_shared = L.calls.count("llama_decode")
        t.share_prefix = False
        alone = t.complete(PROMPTS, max_tokens=20, temperature=0)
    finally:
        t.close()
    assert L.errors == []
    for p, a, b in zip(ids, shared, alone):
        want = fake_llama.greedy_answer(p, tok.eos_token_id, 20)
        assert a == b and a.text == tok.decode(want) and a.prompt_tokens == len(p)
        assert a.completion_tokens == len(want) + (len(want) < 20)  # EOS counts as a generated token
    assert "llama_memory_seq_cp" in L.calls and fed_shared > 0
    assert fake_llama.live_chains(L) == []  # one chain per sequence, each freed when it ends


def test_close_ends_a_paused_stream_before_freeing_the_context(monkeypatch, tok):
    """A consumer that raises mid-stream leaves the generator paused; close() must run its cleanup
    while the context lives, so that nothing touches freed memory when the generator goes."""
    L, t = teacher(monkeypatch, tok)
    gen = t.stream(PROMPTS, max_tokens=20, temperature=0.7)
    next(gen)  # one answer out; the others are mid-decode
    t.close()
    gen.close()
    del gen
    assert L.errors == []
    assert L.calls.index("llama_free") > max(i for i, c in enumerate(L.calls) if c == "llama_memory_seq_rm")
    assert fake_llama.live_chains(L) == []
    with pytest.raises(TeacherError, match="closed"):
        t.stream(PROMPTS)


def test_repeat_penalty_applies_to_greedy_decoding(monkeypatch, tok):
    L, t = teacher(monkeypatch, tok)
    try:
        plain = t.complete(PROMPTS[3:5], max_tokens=20, temperature=0)
        assert [s[0] for s in L.chains[-1].stages] == ["greedy"]
        t.repeat_penalty = 1.2
        penalised = t.complete(PROMPTS[3:5], max_tokens=20, temperature=0)
        assert [s[0] for s in L.chains[-1].stages] == ["penalties", "greedy"]
        assert L.chains[-1].stages[0][2:4] == (64, 1.2)
        t.complete(PROMPTS[3:4], max_tokens=4, temperature=0.7)
        assert [s[0] for s in L.chains[-1].stages] == ["top_k", "penalties", "temp", "top_p", "dist"]
    finally:
        t.close()
    assert [c.text for c in plain] != [c.text for c in penalised]
    assert L.errors == [] and fake_llama.live_chains(L) == []


def test_chat_prompts_keep_the_models_bos(monkeypatch, tok):
    """The chat template opens with {{ bos_token }}: the ids are transformers' apply_chat_template's,
    one BOS and no more."""
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]
    _, t = teacher(monkeypatch, tok, chat=True)
    try:
        ids = t.encode(msgs)
    finally:
        t.close()
    want = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    want = want["input_ids"] if hasattr(want, "keys") else want
    assert ids == list(want) and ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


def test_threads_fall_back_to_cpu_count_without_sched_getaffinity(monkeypatch, tok):
    from selfinstruct.teachers.llamacpp import LlamaCppTeacher

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    L = fake_llama.install(monkeypatch, tok)
    t = LlamaCppTeacher("fake.gguf", name="gguf:fake", parallel=2)
    t.close()
    assert L.params.n_threads == (os.cpu_count() or 1) and L.errors == []


def test_every_failed_start_frees_what_was_made(monkeypatch, tok):
    from selfinstruct.teachers.llamacpp import LlamaCppTeacher

    L = fake_llama.install(monkeypatch, tok, fail_context=True)
    with pytest.raises(TeacherError, match="cannot create a context"):
        LlamaCppTeacher("fake.gguf", name="gguf:fake", parallel=2)
    assert L.calls.count("llama_model_free") == 1 and L.errors == []

    L = fake_llama.install(monkeypatch, tok)

    def interrupted(*args):
        raise KeyboardInterrupt  # Ctrl-C, or any error, after the context and the batch exist

    monkeypatch.setattr(L, "llama_model_meta_val_str", interrupted)
    with pytest.raises(KeyboardInterrupt):
        LlamaCppTeacher("fake.gguf", name="gguf:fake", parallel=2, chat=True)
    assert [c for c in L.calls if c.endswith("free")] == ["llama_batch_free", "llama_free", "llama_model_free"]
    assert L.errors == []


def test_batch_size_over_the_sequence_limit_is_one_line_before_loading(monkeypatch, tok, tmp_path):
    L = fake_llama.install(monkeypatch, tok, max_seq=16)
    (tmp_path / "fake.gguf").write_bytes(b"")  # the file must exist (a missing one is its own error)
    spec = f"gguf:{tmp_path / 'fake.gguf'}"
    with pytest.raises(TeacherError, match=r"batch size 13 is over llama.cpp's limit of 12 sequences"):
        make_teacher(spec, batch_size=13)
    assert "llama_model_load_from_file" not in L.calls
    make_teacher(spec, batch_size=12).close()
    assert L.errors == []
