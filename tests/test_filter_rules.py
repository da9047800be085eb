"""missing_input and repeated_output (issue 15.9), one normalisation, RecordFilter.add without check(); the reader rules (issue 24)."""
import pytest

from selfinstruct.data.filters import (
    RecordFilter, clean_instances, filter_records, instance_reason, instruction_reason, normalize, points_at_input,
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


# --------------------------------------------------------------------------- reader rules (issue 24)
# Caught rows are the embedded teacher's (a 5-round generate run), unedited; the rows that must pass are
# human-written (the Self-Instruct paper's seeds and user-oriented tasks, the Alpaca-style tutorial rows, T0
# prompts, this package's seeds), copied here so that the tests need no ../shared.

@pytest.mark.parametrize("instruction, reason", [
    ("The owner was cleaning up the garage. They had no pet control system in place and the owner was a danger "
     "to her children and animals. Write the 12th task.", "scaffolding"),
    ("Ana's pet could not fly because she had to have its pet control system in place. Write the 13th task.",
     "scaffolding"),
    ("Task 12: Name three rivers that flow through Spain.", "scaffolding"),
    ("Example 1. List three fruits that are red.", "scaffolding"),
    ("Sort the numbers in ascending order.\nInput: 3, 1, 2", "scaffolding"),
    ("Come up with a series of tasks about cooking pasta.", "scaffolding"),
    # human-written
    ("Answer the following question given this paragraph: \n\nExample 3.5 Calculating Projectile Motion: "
     "Hot rocks and lava.", None),
    ("Create a new task list for a week of moving house.", None),
    ("Write the next task in the project plan after testing.", None),
    ("Come up with a question and a funny answer as a joke.", None),
])
def test_scaffolding(instruction, reason):
    assert instruction_reason(instruction) == reason


@pytest.mark.parametrize("instruction, reason", [
    ("Write a Java program that calculates the amount of money a student earns for studying at a university "
     "in the week of the fourth semester.", "write_a_program"),
    ("Write a simple Java program that asks the user to enter their name, phone number, and month, and then "
     "to input each.", "write_a_program"),
    ("write a C++ program to print the first ten primes.", "write_a_program"),
    ("Write a program to compute the sum of integers from k to n.", "write_a_program"),   # the paper's rule
    # human-written
    ("Write a python function that sorts a list from large to small.", None),
    ("Write a script in JavaScript for printing the current date and time.", None),
    ("Write a short story about a programmer who loses her keys.", None),
])
def test_write_a_program_names_a_language_too(instruction, reason):
    assert instruction_reason(instruction) == reason


@pytest.mark.parametrize("instruction, output, reason", [
    ("In Rust, write a function that reverses the order of the words in a sentence.", "The words are reversed.",
     "no_code"),
    ("Write Python code to count the vowels in a word.", "There are three vowels.", "no_code"),
    ("Create a SQL query that lists the customers from Spain.", "All the customers from Spain.", "no_code"),
    # human-written: code answers, and tasks that only say "code", "method" or "function"
    ("Write a python function that sorts a list from large to small.",
     "def reverse_sort(lst):\n    return sorted(lst, reverse=True)", None),
    ("Generate the regular expression based on the description.", "^[0-9].*\\s$", None),
    ("Write a script in JavaScript for printing the current date and time.",
     "var newDate = new Date();\nvar currentDateTime = newDate.toLocaleString();", None),
    ("Generate a random alphanumeric code of 10 characters.",
     "Here is a randomly generated 10-character alphanumeric code:", None),
    ("Give a detailed description of a method for brainstorming an essay.",
     "Mind Mapping is one of the methods for brainstorming an essay.", None),
    ("Please write the Excel function name associated with each description.", "- DAYS\n- FIND\n- MEDIAN", None),
    ("Universities develop their own programs in London. Which city has a gateway?", "Dublin", None),
])
def test_no_code(instruction, output, reason):
    assert instance_reason("", output, instruction) == reason


@pytest.mark.parametrize("instruction, reason", [
    ("On the day of the school\u2019s assembly, a group of students made \"no-call\u201d posters in their "
     "classroom, and asked their teachers to pass the same.", "not_a_task"),
    ("I recently applied for a job, but I have no interest in this employer. I\u2019m not interested in "
     "working here.", "not_a_task"),
    ("A friend is very angry. They decide to call a friend's family to come over.", "not_a_task"),
    ("We live in a world where people can always make money, even if it doesn't look good for them.",
     "not_a_task"),
    ("The sky is blue.", "not_a_task"),
    ("Life is a short life, where we spend most of our time trying to survive.", "not_a_task"),
    # human-written
    ("Converting 85 F to Celsius.", None),
    ("Reply to the email and refuse the invitation politely.", None),
    ("Pull out the ingredients and their quantities from this recipe text as a bulleted list.", None),
    ("Automatically correct the given sentence.", None),
    ("The tone of the email should be changed and rewritten in a more professional manner.", None),
    ("My favorite witty review of The Rings of Power series is this:", None),
    ("Currently, there is a chat in which people are arranging a meeting in the future. Retrieve the meeting "
     "information from the conversation.", None),
    ("In Rust, write a function that reverses the order of the words in a sentence.", None),
    ("What is the capital of France", None),
    ("Humans can easily string together abstract concepts to form a coherent sentence. \nFor example, with the "
     "concepts ski, mountain, skier, a simple sentence can be", None),
    ("It was a dark and stormy night, and the wind howled. Continue the story.", None),
])
def test_not_a_task(instruction, reason):
    assert instruction_reason(instruction) == reason


def test_not_a_task_is_english_only():
    assert instruction_reason("The sky is blue.", unicode=True) is None


@pytest.mark.parametrize("instruction, inp, output, reason", [
    ("Select a particular name and write an article that compares the new development to that of another "
     "person.", "", "I'm not sure about this one.", "unrelated_output"),
    ("Design a 60-minute morning routine for someone who wants to play a musical instrument, take a shower, "
     "and finish a meal before work.", "", "You're going to be a musician, and you want to play your instrument.",
     "unrelated_output"),
    ("Summarize the main causes of the French Revolution.", "", "My favourite colour is green.", "unrelated_output"),
    # human-written: tasks that invite a voice
    ("Provide an example of a compound sentence.", "", "I played the piano, and she sang along.", None),
    ("Create a fun math question for children.", "",
     "I am an odd number. Take away one letter and I become even. What number am I?", None),
    ("Give me a phrase that I can use to express I am very happy.", "", "I am over the moon!", None),
    ("Generate a 5-star review (1 being lowest and 5 being highest) about an app with package "
     "com.iskrembilen.quasseldroid.", "", "I love being able to resume my conversations from whatever device.", None),
    ("What may have caused you to feel guilty ?", "", "I did the wrong thing in that situation .", None),
    ("Come up with a metaphor that can describe my situation.", "Situation: I fell in love with her.",
     "I am like a moth to a flame; I can't help but be drawn to her.", None),
    ("Summarize the main causes of the French Revolution.", "", "Debt, famine and a rigid class system.", None),
    # this package's seeds: the voice is the input's
    ("Translate this French text into natural English.", "Nous avons raté le dernier bus.",
     "We missed the last bus.", None),
    ("Turn these bullet points into one well-written paragraph for a community newsletter.",
     "- new library opens Saturday", "Our new public library opens its doors this Saturday!", None),
])
def test_unrelated_output(instruction, inp, output, reason):
    assert instance_reason(inp, output, instruction) == reason


@pytest.mark.parametrize("instruction, inp, output, reason", [
    ("What is the significance of the article that describes a real life event that has changed the lives of "
     "hundreds of people?", "",
     "The article describes a real life event that has changed the lives of hundreds of people.",
     "output_echoes_instruction"),
    ("What would it be like to have a new, open field with a large grass area on top?", "",
     "A new, open field with a large grass area on top.", "output_echoes_instruction"),
    # human-written: the answer is in the question, or the instruction carries its text or its choices
    ("What is the symbol for the chemical element silver?", "", "The symbol for the chemical element silver is Ag.",
     None),
    ("What is the plural form of 'sheep'?", "", "The plural form of 'sheep' is 'sheep.'", None),
    ('Split the following sentence into two declarative sentences: "The book is interesting but the cover is '
     'dull".', "", "The book is interesting.\nThe cover is dull.", None),
    ("Is Children's National Medical Center or MedStar Washington Hospital Center the largest private hospital "
     "in Washington, D.C.?", "", "MedStar Washington Hospital Center", None),
    ("Name the capital city of France.", "", "Paris", None),
    ("Rewrite the sentence in the passive voice.", "The cat chased the mouse.", "The mouse was chased by the cat.",
     None),
])
def test_output_echoes_instruction(instruction, inp, output, reason):
    assert instance_reason(inp, output, instruction) == reason


def test_filter_names_the_reader_rules():
    rows = [row for row in (
        {"instruction": "Ana's pet could not fly because she had to have its pet control system in place. "
                        "Write the 13th task.", "input": "", "output": "Ana's pet has to be in a cage, so it can fly."},
        {"instruction": "On the same day, a group of students made a poster of a famous person's name in a "
                        "special classroom.", "input": "", "output": "I'm so proud of you!"},
        {"instruction": "Write a simple Java program that asks the user to enter their name.", "input": "",
         "output": "I'm going to be a doctor."},
        {"instruction": "In Rust, write a function that reverses the order of the words in a sentence.",
         "input": "", "output": "The words are reversed."},
        {"instruction": "Summarize the main causes of the French Revolution.", "input": "",
         "output": "My favourite colour is green."},
        {"instruction": "Summarize the main causes of the French Revolution in one sentence.", "input": "",
         "output": "Debt, famine and a rigid class system."})]
    kept, rejected, stats = filter_records(rows, progress=False, threshold=1.0)
    assert [r["reason"] for r in rejected] == ["scaffolding", "not_a_task", "write_a_program", "no_code",
                                               "unrelated_output"]
    assert [r["output"] for r in kept] == ["Debt, famine and a rigid class system."]


def test_task_reason_names_the_rule():
    from collections import Counter

    from selfinstruct.data.filters import task_reason
    assert task_reason(Counter({"no_code": 2})) == "no_code"
    assert task_reason(Counter({"empty_output": 1, "unrelated_output": 1})) == "unrelated_output"
    assert task_reason(Counter({"empty_output": 1})) == task_reason(Counter()) == "no_instances"


def test_generate_rejects_by_the_reader_rules(tmp_path):
    from collections import Counter

    from test_generate import FakeTeacher, assert_consistent, make_run

    def blocks(p, n):
        return (f" Write a poem about the sea w{n}a\n4. Input:\n<noinput>\n4. Output:\nWaves roll in.\n###\n"
                f"5. Instruction: The owner was cleaning up the garage w{n}b. Write the 12th task.\n5. Input:\n"
                f"<noinput>\n5. Output:\nThe owner was tired.\n###\n"
                f"6. Instruction: In Rust, write a function that reverses a list w{n}c\n6. Input:\n<noinput>\n"
                f"6. Output:\nThe list is reversed.\n###\n"
                f"7. Instruction: Summarize the main causes of the French Revolution w{n}d\n7. Input:\n<noinput>\n"
                f"7. Output:\nI'm going to be a doctor.", "stop")

    make_run(tmp_path, FakeTeacher({"alpaca": blocks}), rounds=1, prompts_per_round=1, style="alpaca")
    tasks, data, rejected, stats = assert_consistent(tmp_path)
    assert Counter(r["reason"] for r in rejected) == {"scaffolding": 1, "no_code": 1, "unrelated_output": 1}
    assert [t["instruction"] for t in tasks] == ["Write a poem about the sea w1a"]
    assert stats["total"]["instances_dropped"] == {"no_code": 1, "unrelated_output": 1}


def test_scaffolding_mid_text():
    assert instruction_reason("Name three rivers in Spain. Task 13: Write a haiku about rain.") == "scaffolding"
    assert instruction_reason("Sort these numbers from small to large. Input: 3, 1, 2") == "scaffolding"
    assert instruction_reason("Give the opposite of each word. Output:") == "scaffolding"
    assert instruction_reason("Explain what the input of a neural network is.") is None
    assert instruction_reason("Seed task 0: describe the amber in plain words.") is None   # not at a sentence start
