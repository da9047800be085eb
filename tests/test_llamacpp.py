"""The llama.cpp engine on the real embedded GGUF, and the fallback when it is missing."""
from __future__ import annotations

import os
import sys

import pytest

from selfinstruct.teachers import TeacherError, make_teacher


def need_llama_cpp():
    """CI installs llama-cpp-python (`make install`): there a missing engine is a failure, not a skip."""
    if os.environ.get("CI"):
        import llama_cpp  # noqa: F401
    else:
        pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def teacher():
    need_llama_cpp()
    t = make_teacher("embedded", batch_size=4, seed=0)
    yield t
    t.close()


PROMPTS = ["The capital of France is", "1, 2, 3, 4,", "Write a short poem about the sea.\n",
           "Instructions:\n1. List three fruits.\n2.", "Q: What is 2 + 2?\nA:", "Translate 'cat' into French:"]


@pytest.mark.slow
def test_identity_and_tokens_match_the_hf_tokenizer(teacher):
    from transformers import AutoTokenizer

    from selfinstruct.models import resolve_model

    assert teacher.name == "embedded:gemma3-270m" and teacher.is_chat is False
    tok = AutoTokenizer.from_pretrained(resolve_model("embedded"))
    for p in PROMPTS:
        assert teacher.encode(p) == tok(p)["input_ids"], p  # BOS included, as transformers does


@pytest.mark.slow
def test_greedy_is_deterministic_and_counts_tokens(teacher):
    before = teacher.usage.snapshot()
    a = teacher.complete(PROMPTS, max_tokens=12, temperature=0)
    b = teacher.complete(PROMPTS, max_tokens=12, temperature=0)
    assert a == b
    assert all(c.completion_tokens <= 12 and c.finish_reason in ("stop", "length") and c.error is None for c in a)
    assert [c.prompt_tokens for c in a] == [len(teacher.encode(p)) for p in PROMPTS]
    used = teacher.usage - before
    assert used.requests == 2 * len(PROMPTS)
    assert used.completion_tokens == 2 * sum(c.completion_tokens for c in a)
    assert "France" in a[0].text  # real text from the real model (greedy: "the capital of the country of France")


@pytest.mark.slow
def test_parallel_answers_match_one_at_a_time(teacher):
    """Continuous batching changes nothing but speed: the same greedy text as one sequence alone
    (compared on the first tokens, where batched float sums cannot drift apart yet)."""
    batched = teacher.complete(PROMPTS, max_tokens=6, temperature=0)
    single = [teacher.complete([p], max_tokens=6, temperature=0)[0] for p in PROMPTS]
    assert sum(x.text == y.text for x, y in zip(batched, single)) >= len(PROMPTS) - 1


SHARED = ("Answer each question with one word.\nQ: What colour is the sky on a clear day?\nA: Blue\n"
          "Q: What do bees make?\nA: Honey\n")
OTHER = "Complete each list with one more item.\nList: apple, pear, plum,\nNext: cherry\n"


@pytest.mark.slow
def test_shared_prefixes_are_prefilled_once_and_change_nothing(teacher, monkeypatch):
    """Prompts that open alike share the opening's KV cells (one shared prefix per opening): the same
    greedy answers as without sharing, and each opening goes through llama_decode once, not once per prompt."""
    groups = [[SHARED + f"Q: {q}\nA:" for q in ("What is frozen water called?", "Which animal barks?",
                                                "What is the opposite of hot?", "What do cows drink?")],
              [OTHER + f"List: {x}\nNext:" for x in ("red, green,", "one, two, three,", "Monday, Tuesday,")]]
    prompts = [p for g in groups for p in g]
    decoded = []
    real = teacher.L.llama_decode
    monkeypatch.setattr(teacher.L, "llama_decode", lambda ctx, b: decoded.append(b.n_tokens) or real(ctx, b))
    teacher.share_prefix = True
    shared = teacher.complete(prompts, max_tokens=4, temperature=0)
    fed_shared, decoded[:] = sum(decoded), []
    teacher.share_prefix = False
    try:
        alone = teacher.complete(prompts, max_tokens=4, temperature=0)
    finally:
        teacher.share_prefix = True
    assert [c.text for c in shared] == [c.text for c in alone]
    assert [c.prompt_tokens for c in shared] == [c.prompt_tokens for c in alone]  # usage counts what was sent
    prefixes = [len(os.path.commonprefix([teacher.encode(p) for p in g])) for g in groups]
    assert min(prefixes) >= 16
    assert sum(decoded) - fed_shared == sum((len(g) - 1) * n for g, n in zip(groups, prefixes))


GEMMA_CHAT = ("{{ bos_token }}{% for m in messages %}<start_of_turn>"
              "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] | trim }}<end_of_turn>\n"
              "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")  # Gemma-IT's shape


@pytest.mark.slow
def test_chat_prompt_ids_match_transformers_bos_included(teacher, monkeypatch):
    """A template that opens with {{ bos_token }} gives the real Gemma tokenizer's ids: one BOS, as
    transformers' apply_chat_template (the packaged GGUF has no template; Gemma-IT's shape stands in)."""
    from transformers import AutoTokenizer

    from selfinstruct.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("embedded"))
    tok.chat_template = GEMMA_CHAT
    monkeypatch.setattr(teacher, "template", GEMMA_CHAT)
    msgs = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"}]
    want = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    want = list(want["input_ids"] if hasattr(want, "keys") else want)
    assert teacher.encode(msgs) == want and want.count(tok.bos_token_id) == 1 and want[0] == tok.bos_token_id


@pytest.mark.slow
def test_stop_strings_and_length(teacher):
    free = teacher.complete(["1, 2, 3, 4,"], max_tokens=16, temperature=0)[0]
    assert free.finish_reason == "length" and free.completion_tokens == 16
    stop = free.text[3:6]
    cut = teacher.complete(["1, 2, 3, 4,"], max_tokens=16, temperature=0, stop=[stop])[0]
    assert cut.text == free.text[:free.text.find(stop)] and cut.finish_reason == "stop"
    assert cut.completion_tokens < 16


@pytest.mark.slow
def test_sampling_is_seeded_and_streams_every_index(teacher):
    kw = dict(max_tokens=10, temperature=1.0, top_p=0.9)
    got = dict(teacher.stream(PROMPTS * 2, **kw))
    assert sorted(got) == list(range(2 * len(PROMPTS)))
    t2 = make_teacher("embedded", batch_size=4, seed=0)
    try:
        t2._calls = teacher._calls - 1
        again = dict(t2.stream(PROMPTS * 2, **kw))
    finally:
        t2.close()
    assert again == got
    greedy = teacher.complete(PROMPTS * 2, max_tokens=10, temperature=0)
    assert [got[i].text for i in range(len(greedy))] != [c.text for c in greedy]


@pytest.mark.slow
def test_prompt_longer_than_the_context_is_one_error_answer():
    need_llama_cpp()
    t = make_teacher("embedded", batch_size=2)
    t.context = 64  # what a long prompt meets, made small
    try:
        out = t.complete(["word " * 200, "The capital of France is"], max_tokens=4, temperature=0)
    finally:
        t.close()
    assert out[0].finish_reason == "error" and "context window of 64" in out[0].error
    assert out[1].error is None and out[1].completion_tokens > 0
    assert t.usage.failures == 1


@pytest.mark.slow
def test_smollm2_chat_template_on_llama_cpp():
    need_llama_cpp()
    t = make_teacher("smollm2", batch_size=2)
    try:
        assert t.is_chat
        ids = t.encode([{"role": "user", "content": "Say hi."}])
        text = b"".join(t._bytes(i, special=True) for i in ids).decode("utf-8", "replace")
        assert "<|im_start|>user" in text and text.rstrip().endswith("<|im_start|>assistant")
        out = t.complete([[{"role": "user", "content": "What is the capital of France?"}]], max_tokens=24,
                         temperature=0)
        # SmolLM2's Q4_1 file answers worse on llama.cpp than dequantised on transformers ("Paris"):
        # check the reply is real text of the asked length, not its content
        assert out[0].text.strip() and out[0].completion_tokens > 0 and out[0].error is None
    finally:
        t.close()
    plain = make_teacher("smollm2", endpoint="completions", batch_size=1)
    try:
        assert plain.is_chat is False
    finally:
        plain.close()


def test_missing_engine_falls_back_with_one_line(monkeypatch, tmp_path):
    """No llama-cpp-python: the packaged model runs on transformers, and one line says why."""
    from selfinstruct.teachers import hf

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    made = {}

    def fake_init(self, spec, **kw):
        made.update(spec=spec, **kw)

    monkeypatch.setattr(hf.HFTeacher, "__init__", fake_init)
    lines = []
    t = make_teacher("embedded", log=lines.append)
    assert isinstance(t, hf.HFTeacher) and made["spec"] == "embedded" and made["is_chat"] is False
    assert made["batch_size"] == 32 and made["name"] == "embedded:gemma3-270m"
    assert len(lines) == 1 and "transformers" in lines[0] and "llama-cpp-python" in lines[0]
    with pytest.raises(TeacherError, match="llama-cpp-python"):
        make_teacher("embedded", engine="llamacpp")
    (tmp_path / "model.gguf").write_bytes(b"")  # a gguf: file that exists needs the engine (a missing one is
    with pytest.raises(TeacherError, match="llama-cpp-python"):  # its own line, test_teachers.py)
        make_teacher(f"gguf:{tmp_path / 'model.gguf'}")


def test_engine_must_be_known():
    with pytest.raises(TeacherError, match="engine must be one of"):
        make_teacher("embedded", engine="vllm")


@pytest.mark.slow
def test_smollm2_chat_answers_hold_to_a_json_schema():
    """A chat model on llama.cpp takes generate's schemas, as an OpenAI-compatible server does: every
    sampled reply is JSON of the schema's shape (without the grammar, few are)."""
    import json

    from selfinstruct.generation import prompts as P
    need_llama_cpp()
    t = make_teacher("smollm2", batch_size=4, seed=1)
    try:
        assert t.structured
        schema = P.instance_schema(False, 3)
        tasks = ["Sort the numbers.", "Name a colour.", "Translate into French.", "Sum the list."]
        out = t.complete([[{"role": "user", "content": f"Examples for: {x}"}] for x in tasks],
                         max_tokens=160, temperature=0.7, top_p=0.9, schema=schema)
        for o in out:
            reply = json.loads(o.text)
            assert list(reply) == ["examples"] and len(reply["examples"]) >= 3
            assert all(set(e) == {"input", "output"} for e in reply["examples"])
    finally:
        t.close()
