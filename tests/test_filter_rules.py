"""missing_input and repeated_output (issue 15.9), one normalisation, RecordFilter.add without check()."""
import pytest

from selfinstruct.data.filters import (
    RecordFilter, clean_instances, filter_records, instance_reason, normalize, points_at_input,
    repeated_outputs,
)
from selfinstruct.data.records import read_examples, read_tasks


@pytest.mark.parametrize("instruction, points", [
    ("Write a 200-word summary of the following:", True),
    ("Summarize this text.", True),
    ("Translate the given sentence into French.", True),
    ("Which of the following is a mammal?", True),
    ("Rewrite this sentence in the passive voice.", True),
    ("Edit the text below for grammar.", True),
    ("Classify these reviews as positive or negative", True),
    ("Reverse the input string.", True),
    # the input is in the instruction itself
    ("Answer the following question: what is 2 + 2?", False),
    ("Sort the following numbers: 3, 1, 2.", False),
    ('Rewrite this sentence in the passive voice: "The cat chased the mouse."', False),
    ("Change the sentence 'You should have called me.' into a question.", False),
    ('Translate this sentence "I am happy" into French.', False),
    ("Translate this sentence \u201cI am happy\u201d into French.", False),
    ("Explain why this word 'serendipity' is hard to translate.", False),
    ("Don't rewrite this paragraph, it's fine.", True),                  # apostrophes are not quotes
    ("The following review expresses what sentiment? A lovely, warm film.", False),
    ("Title: rain in Spain\n\nWrite an article with the given title.", False),
    # no pointer at all, or the word used otherwise
    ("Write a story about a passage to India.", False),
    ("Describe the passage of time in a haiku.", False),
    ("Explain the input of a neural network.", False),
    ("Write a haiku about autumn leaves.", False),
])
def test_points_at_input(instruction, points):
    assert points_at_input(instruction) is points


def test_missing_input_only_when_the_input_is_empty():
    inst = "Write a 200-word summary of the following:"
    assert instance_reason("", "Dear Customer Service Representative, I write", inst) == "missing_input"
    assert instance_reason("  \n", "A summary.", inst) == "missing_input"
    assert instance_reason("The quarterly report says sales rose.", "Sales rose.", inst) is None
    assert instance_reason("", "", inst) == "empty_output"            # the older reasons come first
    assert instance_reason("", "Paris") is None                        # no instruction given: no rule


def test_filter_rejects_missing_input():
    rows = [{"instruction": "Write a 200-word summary of the following:", "input": "", "output": "Dear all."},
            {"instruction": "Write a 200-word summary of the following text:", "input": "Sales rose.",
             "output": "Sales went up."}]
    kept, rejected, stats = filter_records(rows, progress=False)
    assert [r["reason"] for r in rejected] == ["missing_input"] and stats["reasons"] == {"missing_input": 1}
    assert [r["input"] for r in kept] == ["Sales rose."]


def test_clean_instances_names_missing_input():
    kept, dropped = clean_instances([{"input": "", "output": "x y"}, {"input": "a text", "output": "z"}],
                                    5, "Summarize this text.")
    assert kept == [{"input": "a text", "output": "z"}] and dropped == {"missing_input": 1}


def _task(output, inp=""):
    return {"instances": [{"input": inp, "output": output}]}


def test_repeated_outputs_keep_the_first():
    letter = "Dear Customer Service Representative, I am writing to complain."
    tasks = [_task(letter), _task("Something else entirely, four words."), _task("  dear customer service "
             "REPRESENTATIVE,  I am writing to complain."), _task(letter, "with an input"), _task("Positive"),
             _task("Positive"), _task("no no no"), _task("no no no")]
    assert repeated_outputs(tasks) == [None, None, "repeated_output", "repeated_output", None, None, None, None]
    assert repeated_outputs([]) == [] and repeated_outputs([{"instances": []}, _task(letter)]) == [None, None]


def test_normalize_is_one_rule_for_filter_and_instances():
    assert normalize("  Write A\tpoem\n") == "write a poem"
    # case: the RecordFilter's exact-duplicate and kept-instruction keys follow the same rule as
    # clean_instances (and as the ROUGE-L tokenizers, which lowercase)
    f = RecordFilter(threshold=1.0)
    row = {"instruction": "Write a poem about the sea.", "input": "calm", "output": "Waves."}
    assert f.offer(row).keep
    d = f.offer({**row, "instruction": "write a POEM about the  sea."})
    assert (d.keep, d.reason) == (False, "exact_duplicate")
    kept, dropped = clean_instances([{"input": "A", "output": "Yes"}, {"input": "a", "output": "yes"}])
    assert len(kept) == 1 and dropped == {"duplicate_instance": 1}


def test_add_does_not_need_check_first():
    f = RecordFilter(floor=0.0)
    f.add_reference("Write a poem about the sea.")
    f.check({"instruction": "Something unrelated entirely here.", "input": "", "output": "x"})
    f.add({"instruction": "Write a long poem about the sea.", "input": "", "output": "x"})   # no check of it
    d = f.check({"instruction": "Write a long poem about the sea.", "input": "other", "output": "y"})
    # 6 of 7 and 6 words in common: F1 = 2 * (6/7) * (6/6) / (6/7 + 1) = 12/13
    assert d.keep and d.most_similar == "Write a poem about the sea." and d.similarity == pytest.approx(12 / 13)


def test_human_written_data_loses_nothing(shared_data):
    rows = read_examples(shared_data / "instruction-data.json")
    reasons = [instance_reason(r["input"], r["output"], r["instruction"]) for r in rows]
    assert reasons.count("missing_input") == 0
    assert not any(repeated_outputs([{"instances": [r]} for r in rows]))
    for name in ("self_instruct_seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        tasks = read_tasks(shared_data / name)
        assert not any(repeated_outputs(tasks))
        assert not any(instance_reason(i["input"], i["output"], t["instruction"]) == "missing_input"
                       for t in tasks for i in t["instances"])


def test_generate_alpaca_rejects_missing_input_and_repeated_output(tmp_path):
    from collections import Counter

    from test_generate import FakeTeacher, assert_consistent, make_run

    letter = "Dear Customer Service Representative, I am writing about my order {n}."

    def blocks(p, n):
        out = letter.format(n=n)
        return (f" Write a complaint letter about order w{n}a w{n}b\n4. Input:\n<noinput>\n4. Output:\n{out}\n###\n"
                f"5. Instruction: Write a 200-word summary of the following:\n5. Input:\n<noinput>\n5. Output:\n"
                f"A summary w{n}.\n###\n"
                f"6. Instruction: Write a polite note about late parcel w{n}c\n6. Input:\n<noinput>\n6. Output:\n"
                f"{out}\n###\n"
                f"7. Instruction: Name a fruit that is red w{n}d\n7. Input:\n<noinput>\n7. Output:\nApple\n###\n"
                f"8. Instruction: Which fruit keeps the doctor away w{n}e\n8. Input:\n<noinput>\n8. Output:\nApple", "stop")

    make_run(tmp_path, FakeTeacher({"alpaca": blocks}), rounds=1, prompts_per_round=1, style="alpaca")
    tasks, data, rejected, stats = assert_consistent(tmp_path)
    assert Counter(r["reason"] for r in rejected) == {"missing_input": 1, "repeated_output": 1}
    # the first of two long equal outputs is kept; short labels ("Apple") may repeat
    assert [t["instruction"] for t in tasks] == ["Write a complaint letter about order w1a w1b",
                                                 "Name a fruit that is red w1d", "Which fruit keeps the doctor away w1e"]
    assert [r["instruction"] for r in rejected if r["reason"] == "repeated_output"] == [
        "Write a polite note about late parcel w1c"]
    assert stats["total"]["rejected"] == {"missing_input": 1, "repeated_output": 1}
