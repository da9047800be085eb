"""Tokenisation, label masks, split, collation and packing equivalence (tiny models, no real weights)."""
import json

import pytest
import torch

from selfinstruct.data.sources import load_rows
from selfinstruct.training.examples import (IGNORE_INDEX, Collator, encode_example, encode_rows, group_examples,
                                            split_rows, token_batches)
from selfinstruct.data.formatting import format_example
from selfinstruct.data.records import InputError
from tiny import CORPUS as CORPUS_EXTRA
from tiny import make_tokenizer, tiny_config

ROW = {"instruction": "What is the capital of France?", "input": "", "output": "Paris."}
PROMPT = format_example(ROW)[0]


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def test_labels_mask_the_prompt_and_keep_eos(tok):
    prompt, completion = format_example(ROW)
    ex = encode_example(prompt, completion, tok, max_length=1024)
    n = len(tok(prompt)["input_ids"])
    ids, labels = ex["input_ids"], ex["labels"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id == 1
    assert labels == [IGNORE_INDEX] * n + ids[n:]
    assert tok.decode(ids[:n]) == "<bos>" + prompt
    assert tok.decode([t for t in labels if t != IGNORE_INDEX]) == "Paris.<eos>"


def test_labels_exact_tensor_on_a_known_example(tok):
    ex = encode_example("Q: hi\n", "ok", tok, max_length=64)
    p = tok("Q: hi\n")["input_ids"]
    c = tok("ok", add_special_tokens=False)["input_ids"]
    assert ex["input_ids"] == p + c + [1]
    assert ex["labels"] == [-100] * len(p) + c + [1]
    assert tok.decode(p) == "<bos>Q: hi\n" and tok.decode(c) == "ok"


RESPONSES = ["\nParis.", "\n\n- Paris\n- Lyon", " Paris.", "  indented", ", and then", "...", ": yes",
             "```python\ndef f(x):\n    return x * 2\n```", "def f(x):\n    return x", "{\"a\": [1, 2]}"]


def check_boundary(tok, prompt, completion, add_special=True):
    """The exact tensors for one example, and the response text that carries loss."""
    ex = encode_example(prompt, completion, tok, max_length=4096, add_special_tokens=add_special)
    p = tok(prompt, add_special_tokens=add_special)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    assert ex["input_ids"] == p + c + [eos]
    assert ex["labels"] == [IGNORE_INDEX] * len(p) + c + [eos]
    # the prompt part is exactly what the model gets at inference, the trained part exactly the response
    assert tok.decode(ex["input_ids"][: len(p)], skip_special_tokens=add_special) == prompt
    assert tok.decode([t for t in ex["labels"] if t != IGNORE_INDEX]) == completion + tok.eos_token
    # padded with another example: -100 on the prompt and on the padding, the response + one EOS are targets
    short = encode_example("Q:\n", "ok", tok, max_length=64)
    batch = Collator(pad_token_id=tok.pad_token_id, packing=False)([short, ex])
    n = len(ex["input_ids"])
    m = len(short["input_ids"])
    assert batch["labels"][1].tolist() == ex["labels"]
    assert batch["labels"][0].tolist() == short["labels"] + [IGNORE_INDEX] * (n - m)
    assert batch["attention_mask"].tolist() == [[1] * m + [0] * (n - m), [1] * n]


def test_boundary_merge_does_not_hide_the_first_response_token():
    """A tokenizer whose merges cross whitespace (like Gemma's): ':\n' + '\n' is one '\n\n' token in the
    joint text. Tokenising prompt + response together and masking len(prompt ids) would mask that token."""
    corpus = [PROMPT + "\n" + r for r in ["Paris", "- a\n- b", "Lyon is nice"]] * 8
    tok = make_tokenizer(vocab_size=400, corpus=corpus + CORPUS_EXTRA, split_words=False)
    joint = tok(PROMPT + "\nParis.")["input_ids"]
    assert joint[: len(tok(PROMPT)["input_ids"])] != tok(PROMPT)["input_ids"]  # the merge is real here
    for completion in RESPONSES:
        check_boundary(tok, PROMPT, completion)


def test_pad_equal_to_eos_still_learns_to_stop(tok):
    ex = encode_example("Q: hi\n", "ok", tok, max_length=64)
    short = encode_example("Q:\n", "ok", tok, max_length=64)
    batch = Collator(pad_token_id=tok.eos_token_id, packing=False)([ex, short])
    # the real EOS keeps its label; the padding (also id 1) gets -100
    n = len(ex["input_ids"])
    assert batch["labels"][0, n - 1].item() == 1
    m = len(short["input_ids"])
    assert batch["input_ids"][1, m:].tolist() == [1] * (n - m)
    assert batch["labels"][1, m - 1].item() == 1 and batch["labels"][1, m:].tolist() == [-100] * (n - m)


def test_truncation_cuts_the_response_and_drops_rows_with_none_left(tok):
    prompt, completion = format_example({**ROW, "output": "Paris is the capital of France. " * 5})
    n = len(tok(prompt)["input_ids"])
    ex = encode_example(prompt, completion, tok, max_length=n + 3)
    assert len(ex["input_ids"]) == n + 3
    assert ex["labels"][:n] == [-100] * n and -100 not in ex["labels"][n:]
    assert ex["input_ids"][-1] != tok.eos_token_id  # a cut answer must not learn to stop there
    assert encode_example(prompt, completion, tok, max_length=n) is None
    rows = [ROW, {**ROW, "instruction": "Describe the history of the Roman Empire in detail " * 3}]
    examples, dropped = encode_rows(rows, tok, "alpaca", max_length=n + 2)
    assert (len(examples), dropped) == (1, 1)


def test_chat_template_labels(tok):
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    (ex,), dropped = encode_rows([row], tok, "chat", max_length=64)
    assert dropped == 0
    assert ex["input_ids"].count(tok.bos_token_id) == 1  # the template's BOS, not a second one
    assert tok.decode([t for t in ex["labels"] if t != -100]) == "yo<eos>"


def test_collator_packs_with_restarting_positions():
    feats = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
    b = Collator(pad_token_id=0, packing=True)(feats)
    # no attention mask and no cache: transformers then reads the position-id restarts
    assert set(b) == {"input_ids", "labels", "position_ids", "use_cache"} and b["use_cache"] is False
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert b["labels"].tolist() == [[-100, 6, 7, -100, 9]]  # never predict the next example's first token
    assert b["position_ids"].tolist() == [[0, 1, 2, 0, 1]]


def test_collator_pads_dynamically():
    feats = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    b = Collator(pad_token_id=0, packing=False)(feats)
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]] and b["use_cache"] is False
    b = Collator(pad_token_id=0, packing=False, pad_to_multiple_of=4)(feats)
    assert b["input_ids"].tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]


def test_token_batches_fill_a_token_budget():
    lengths = [5, 9, 3, 7, 2, 8, 4, 6, 1, 10]
    packed = token_batches(lengths, 12, seed=3)
    assert sorted(i for b in packed for i in b) == list(range(10))  # every example exactly once
    assert all(sum(lengths[i] for i in b) <= 12 for b in packed)
    assert packed == token_batches(lengths, 12, seed=3) != token_batches(lengths, 12, seed=4)
    # greedy fill: a batch closes only when the next example does not fit
    for a, b in zip(packed, packed[1:]):
        assert sum(lengths[i] for i in a) + lengths[b[0]] > 12
    padded = token_batches(lengths, 12, seed=3, packing=False)
    assert sorted(i for b in padded for i in b) == list(range(10))
    assert all(len(b) * max(lengths[i] for i in b) <= 12 for b in padded)
    assert sorted(map(sorted, padded)) == sorted(map(sorted, [[8, 4, 2], [6, 0], [7], [3], [5], [1], [9]]))
    assert token_batches([30, 2], 10) in ([[0], [1]], [[1], [0]])  # too long: a batch of its own


def test_collator_flattens_token_budget_batches():
    feats = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]},
             {"input_ids": [4], "labels": [4]}]
    items = group_examples(feats, 5, seed=0, packing=True)
    assert [len(it["examples"]) for it in items] in ([2, 1], [1, 2])
    b = Collator(pad_token_id=0, packing=True)(items[:1])
    assert b["input_ids"].shape[1] == sum(len(f["input_ids"]) for f in items[0]["examples"])
    assert b["position_ids"][0].tolist() == [p for f in items[0]["examples"] for p in range(len(f["input_ids"]))]


def test_split_is_deterministic_and_order_free():
    rows = [{"instruction": f"task {i}", "input": "", "output": str(i)} for i in range(40)]
    train, val = split_rows(rows, 0.1, seed=42)
    assert len(val) == 4 and len(train) == 36
    assert not {r["instruction"] for r in val} & {r["instruction"] for r in train}
    _, val2 = split_rows(list(reversed(rows)), 0.1, seed=42)
    assert sorted(r["instruction"] for r in val2) == sorted(r["instruction"] for r in val)
    _, val3 = split_rows(rows, 0.1, seed=7)
    assert {r["instruction"] for r in val3} != {r["instruction"] for r in val}
    assert split_rows(rows, 0.0)[1] == []


def test_split_keeps_every_instance_of_a_task_on_one_side():
    # 30 tasks with 1-4 instances each: a row hash would scatter a task's instances over both sides
    rows = [{"instruction": f"task {t}", "input": f"case {k}", "output": f"{t}-{k}"}
            for t in range(30) for k in range(1 + t % 4)]
    train, val = split_rows(rows, 0.2, seed=42)
    assert len(train) + len(val) == len(rows) == 73
    assert not {r["instruction"] for r in val} & {r["instruction"] for r in train}
    assert abs(len(val) - 15) <= 3  # whole tasks, about the fraction asked for
    by_task = {}
    for r in val:
        by_task.setdefault(r["instruction"], []).append(r)
    assert all(len(v) == 1 + int(k.split()[1]) % 4 for k, v in by_task.items())  # complete tasks
    # chat rows: the prompt turns are the task
    chat = [{"messages": [{"role": "user", "content": f"q{t}"}, {"role": "assistant", "content": f"a{k}"}]}
            for t in range(10) for k in range(3)]
    ctrain, cval = split_rows(chat, 0.2)
    assert len(cval) == 6 and not {r["messages"][0]["content"] for r in cval} & {
        r["messages"][0]["content"] for r in ctrain}
    # one task only: nothing to hold out
    assert split_rows(rows[:1] * 5, 0.5)[1] == []


def test_load_rows_shapes_and_errors(tmp_path):
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "data.jsonl").write_text(
        json.dumps({"instruction": "a", "instances": [{"input": "", "output": "x"}, {"input": "i", "output": "y"}]})
        + "\n" + json.dumps(ROW) + "\n")
    rows = load_rows(tmp_path / "gen")
    assert [r["output"] for r in rows] == ["x", "y", "Paris."] and [r["_line"] for r in rows] == [1, 1, 2]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps(ROW) + "\n" + json.dumps({"messages": [{"role": "user", "content": "q"},
                                                                      {"role": "assistant", "content": "a"}]}) + "\n")
    with pytest.raises(InputError, match=r"chat\.jsonl:2: .*--template chat"):
        load_rows(chat)
    assert len(load_rows(chat, "chat")) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROW) + "\n{oops\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:2: invalid JSON"):
        load_rows(bad)
    skipped = []
    assert len(load_rows(bad, skip_invalid=True, skipped=skipped)) == 1 and len(skipped) == 1


def gemma3_config(vocab_size):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=1, head_dim=8, sliding_window=6,
                            layer_types=["sliding_attention", "full_attention"], pad_token_id=0)


@pytest.mark.parametrize("arch,attn", [("llama", "sdpa"), ("llama", "eager"), ("gemma3", "sdpa")])
def test_packed_loss_equals_one_at_a_time(tok, arch, attn):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_config(len(tok)) if arch == "llama" else gemma3_config(len(tok))
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn).eval()
    assert model.config.use_cache  # the collator's use_cache=False must be what makes packing safe
    rows = [ROW, {"instruction": "List primes.", "input": "up to 11", "output": "2, 3, 5, 7, 11"},
            {"instruction": "Translate to Spanish.", "input": "Hello, how are you?", "output": "Hola, como estas?"}]
    examples, _ = encode_rows(rows, tok)
    with torch.no_grad():
        packed = model(**Collator(0, packing=True)(examples))
        total, n = 0.0, 0
        for ex in examples:
            out = model(**Collator(0, packing=False)([ex]))
            k = sum(t != -100 for t in ex["labels"][1:])
            total, n = total + out.loss.item() * k, n + k
        padded = model(**Collator(0, packing=False)(examples))
    assert packed.loss.item() == pytest.approx(total / n, abs=1e-5)
    assert padded.loss.item() == pytest.approx(total / n, abs=1e-5)
    # attention does not cross examples: the last example's logits match its solo run
    last = examples[-1]
    with torch.no_grad():
        solo = model(input_ids=torch.tensor([last["input_ids"]]), use_cache=False).logits[0]
    assert torch.allclose(packed.logits[0, -len(last["input_ids"]):], solo, atol=1e-5)


@pytest.mark.slow
def test_packing_on_the_embedded_gemma():
    """The real Gemma 3 270M (sliding-window layers): packed loss == one-at-a-time loss."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfinstruct.models import resolve_model

    path = resolve_model(None)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").eval()
    rows = [ROW, {"instruction": "List primes.", "input": "up to 11", "output": "2, 3, 5, 7, 11"}]
    examples, _ = encode_rows(rows, tok)
    with torch.no_grad():
        packed = model(**Collator(tok.pad_token_id, packing=True)(examples)).loss.item()
        total, n = 0.0, 0
        for ex in examples:
            k = sum(t != -100 for t in ex["labels"][1:])
            total += model(**Collator(tok.pad_token_id, packing=False)([ex])).loss.item() * k
            n += k
    assert packed == pytest.approx(total / n, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["embedded", "smollm2"])
def test_boundary_with_real_tokenizers(spec):
    """The embedded Gemma 3 and SmolLM2 tokenizers, Alpaca and chat prompts, responses that begin with a
    newline, whitespace, punctuation or code: exact ids and labels, and the trained text is the response."""
    from transformers import AutoTokenizer

    from selfinstruct.models import ModelError, resolve_model

    try:
        tok = AutoTokenizer.from_pretrained(resolve_model(spec))
    except ModelError as e:
        pytest.skip(str(e))
    for completion in RESPONSES:
        check_boundary(tok, PROMPT, completion)
        if tok.chat_template:
            row = {"instruction": ROW["instruction"], "input": "", "output": completion}
            prompt = format_example(row, "chat", tok)[0]
            check_boundary(tok, prompt, completion, add_special=False)
    if spec == "embedded":  # the case the review found: ':\n' + '\n' merge in Gemma's tokenizer
        joint = tok(PROMPT + "\nParis.")["input_ids"]
        assert joint[: len(tok(PROMPT)["input_ids"])] != tok(PROMPT)["input_ids"]
