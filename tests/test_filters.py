"""Heuristics, RecordFilter rules and filter_records outputs."""
import json

import pytest
from rouge_score import rouge_scorer

from selfinstruct.data.filters import (
    DEFAULT_BLACKLIST, Decision, RecordFilter, filter_records, instance_reason, instruction_reason,
    looks_like_classification, summary_lines, word_count,
)

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rs(a, b):
    return SCORER.score(a, b)["rougeL"].fmeasure


@pytest.mark.parametrize("instruction, reason", [
    ("Sort these words.", "too_short"),                         # 3 words
    ("Sort these four words.", None),
    ("   ", "too_short"),
    (" ".join(["word"] * 150), None),
    (" ".join(["word"] * 151), "too_long"),
    ("Describe the image below in detail.", "blacklist:image"),
    ("Describe the IMAGES below in detail.", "blacklist:images"),
    ("Explain how to go to the station.", "blacklist:go_to"),
    ("Explain how to go  to the station.", "blacklist:go_to"),
    ("Explain what a mapping of keys is.", None),                # whole words only
    ("Explain the word imagery, please.", None),
    ("Write a Python function that reverses a file.", "blacklist:file"),
    ("Write a program that reverses a string.", "write_a_program"),
    ("write a program to count the vowels.", "write_a_program"),
    ("- List three fruits you like.", "starts_with_punctuation"),
    ('"Quote" this sentence for me please.', "starts_with_punctuation"),
    ("¿Qué hora es ahora mismo?", "non_english_start"),
    ("Étudiez cette phrase très attentivement.", "non_english_start"),
    ("List three fruits that are red.", None),
])
def test_instruction_heuristics(instruction, reason):
    assert instruction_reason(instruction) == reason


def test_unicode_mode_counts_cjk_and_allows_non_english():
    assert word_count("请把下面的句子翻译成英文") == 1
    assert word_count("请把下面的句子翻译成英文", unicode=True) == 12
    assert word_count("Translate 这个 sentence", unicode=True) == 4
    assert instruction_reason("请把下面的句子翻译成英文。") == "too_short"
    assert instruction_reason("请把下面的句子翻译成英文。", unicode=True) is None
    assert instruction_reason("Étudiez cette phrase très attentivement.", unicode=True) is None
    assert instruction_reason("「引用」这个句子好吗", unicode=True) == "starts_with_punctuation"
    assert instruction_reason("画一张图片给我看看", unicode=True) is None   # blacklist is English words


def test_custom_blacklist():
    assert instruction_reason("Describe the image below in detail.", blacklist=()) is None
    assert instruction_reason("Compose a short poem about the sea.", blacklist=["poem", "essay"]) == "blacklist:poem"
    assert "flowchart" in DEFAULT_BLACKLIST and "go to" in DEFAULT_BLACKLIST


@pytest.mark.parametrize("inp, out, reason", [
    ("", "", "empty_output"), ("x", "  \n", "empty_output"), ("same", " same ", "output_equals_input"),
    ("", "fine", None), ("a", "b", None)])
def test_instance_heuristics(inp, out, reason):
    assert instance_reason(inp, out) == reason


def row(instruction, inp="", out="ok", **extra):
    return {"instruction": instruction, "input": inp, "output": out, **extra}


def test_record_filter_rules():
    f = RecordFilter(0.7, floor=0.0)
    f.add_reference("Give me three reasons to learn Python programming.")
    a = row("Give me three reasons to learn Python programming today.")
    d = f.check(a)
    want = rs(a["instruction"], "Give me three reasons to learn Python programming.")
    assert d == Decision(False, "similar", want, "Give me three reasons to learn Python programming.")
    assert want > 0.7
    # check() adds nothing; offer() keeps and indexes
    b = row("Summarize the story of a famous novel in two sentences.", "Hamlet")
    assert f.check(b).keep and f.check(b).keep
    assert len(f.index) == 1
    d = f.offer(b)
    assert d.keep and d.similarity == rs(b["instruction"], "Give me three reasons to learn Python programming.")
    assert len(f.index) == 2
    # more instances of a kept instruction pass the ROUGE gate; the exact pair does not
    assert f.offer(row(b["instruction"], "Moby Dick")) == Decision(True, None, d.similarity, d.most_similar)
    assert f.offer(row(b["instruction"], "Hamlet", "other")).reason == "exact_duplicate"
    assert f.offer(row("  Summarize the story of a famous  novel in two sentences.", "Hamlet")).reason \
        == "exact_duplicate"
    assert len(f.index) == 2
    # an instruction equal to a reference is similar (1.0), not a new instance
    d = f.offer(row("Give me three reasons to learn Python programming."))
    assert (d.reason, d.similarity) == ("similar", 1.0)
    assert f.offer(row("Draw a cat.", out="")).reason == "too_short"
    assert f.offer(row("Describe the image below in detail.")).reason == "blacklist:image"
    assert f.counts == {"kept": 2, "similar": 1, "exact_duplicate": 2, "too_short": 1, "blacklist:image": 1}


def test_no_heuristics_keeps_exact_duplicate_and_similarity_gates():
    f = RecordFilter(0.7, heuristics=False)
    assert f.offer(row("Hi.", out="")).keep
    assert f.offer(row("Describe the image below in detail.")).keep
    assert f.offer(row("Hi.", out="")).reason == "exact_duplicate"
    assert f.offer(row("Describe the images below in detail.")).reason == "similar"


def test_floor_semantics():
    f = RecordFilter(0.7)                  # floor = threshold: low maxima are unknown
    assert f.offer(row("List three fruits that are red.")).similarity is None
    d = f.offer(row("Name a country in Europe with a king."))
    assert (d.similarity, d.most_similar) == (None, None)
    f0 = RecordFilter(0.7, floor=0.0)      # floor 0: always exact
    assert f0.offer(row("List three fruits that are red.")) == Decision(True, None, 0.0, None)
    d = f0.offer(row("Name a country in Europe with a king."))
    assert (d.similarity, d.most_similar) == (0.0, None)
    d = f0.offer(row("Name three fruits that are yellow."))
    assert (d.similarity, d.most_similar) == (rs("Name three fruits that are yellow.",
                                                 "List three fruits that are red."),
                                              "List three fruits that are red.")


def test_filter_records_outputs_and_stats():
    rows = [row("List three fruits that are red.", _line=1, id=1),
            row("List three fruits that are red!", _line=2, id=2),
            row("Name a country in Europe with a king.", _line=3, id=3),
            row("Describe the image below in detail.", _line=4, id=4),
            row("Translate the sentence into French.", "Hello", "Hello", _line=5)]
    kept, rejected, stats = filter_records(rows, against=["Name a country in Asia with a king."],
                                           floor=0.0, progress=False)
    assert [r["id"] for r in kept] == [1]
    assert kept[0]["similarity"] == rs(rows[0]["instruction"], "Name a country in Asia with a king.")
    assert [(r.get("id"), r["reason"]) for r in rejected] == [
        (2, "similar"), (3, "similar"), (4, "blacklist:image"), (None, "output_equals_input")]
    assert rejected[0]["similarity"] == 1.0 and rejected[0]["most_similar"] == rows[0]["instruction"]
    assert rejected[1]["most_similar"] == "Name a country in Asia with a king."
    assert "similarity" not in rejected[2]
    assert stats["kept"] == 1 and stats["rejected"] == 4 and stats["references"] == 1
    assert stats["reasons"] == {"similar": 2, "blacklist:image": 1, "output_equals_input": 1}
    assert stats["pairs_compared"] + stats["pairs_pruned"] == 2 + 2 + 1   # only similarity-checked rows
    text = "\n".join(summary_lines(stats, "k.jsonl", "r.jsonl"))
    assert "1 kept, 4 rejected" in text and "similar" in text and "wrote k.jsonl (1 rows), r.jsonl (4 rows)" in text
    json.dumps(kept + rejected)            # serialisable


def test_filter_records_on_alpaca_data_matches_rouge_score_loop(shared_data):
    """The Alpaca script's decision rule, done the slow way, on its own 1,100 rows."""
    rows = json.loads((shared_data / "instruction-data.json").read_text())[:250]
    kept, rejected, _ = filter_records(rows, heuristics=False, floor=0.0, progress=False)
    pool, want_kept, seen = [], [], set()
    for r in rows:
        if (r["instruction"], r["input"]) in seen:
            continue
        if r["instruction"] not in pool and any(rs(r["instruction"], k) > 0.7 for k in pool):
            continue
        seen.add((r["instruction"], r["input"]))
        if r["instruction"] not in pool:
            pool.append(r["instruction"])
        want_kept.append(r)
    assert [r["instruction"] for r in kept] == [r["instruction"] for r in want_kept]
    assert len(rejected) > 20
    for r in kept:
        earlier = pool[:pool.index(r["instruction"])]
        assert r["similarity"] == max((rs(r["instruction"], k) for k in earlier), default=0.0)


@pytest.mark.parametrize("text, expected", [
    ("Classify the tone of this letter.", True),
    ("Tell whether the review is positive or negative.", True),
    ("Is this email spam or not spam?", True),
    ("Which of these animals is a mammal?", True),
    ("Assign the headline to one of these topics: politics, sports, or science.", True),
    ("What is the sentiment of this tweet?", True),
    ("Write a poem about the sea.", False),
    ("Explain how a bill becomes a law.", False),
    ("What does this year's flag represent?", False),
    ("Suggest a name for a bakery that sells only bread.", False),
    ("Summarize the article in two sentences.", False),
])
def test_looks_like_classification(text, expected):
    assert looks_like_classification(text) is expected


def test_an_output_that_repeats_the_instruction_is_unusable():
    assert instance_reason("", "Name a river.", "name a  river.") == "output_equals_instruction"
    assert instance_reason("", "The Nile.", "Name a river.") is None


def test_copied_examples_match_after_normalisation():
    from selfinstruct.data.filters import copied_examples, example_key
    shown = ["Add 2 and 3.", "Write a  poem\nabout rain:"]
    assert copied_examples(["add 2 and 3", '"Write a poem about rain"', "Add 2 and 4.", "Write a poem"], shown) == \
        [True, True, False, False]
    assert example_key("  “Name a river!”  ") == "name a river"
    assert copied_examples(["x y z"], []) == [False]
