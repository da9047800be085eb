import random

from selfinstruct.generation import prompts as P
SEEDS = [f"Seed task {i}." for i in range(10)]
POOL = ["Machine task a.", "Machine task b.", "Machine task c."]
TASK = {"instruction": "Sort the numbers:", "instances": [{"input": "3, 1", "output": "1, 3"}],
        "is_classification": False}
CLS = {"instruction": "Is the review positive?", "instances": [{"input": "Great food", "output": "Yes"}],
       "is_classification": True}


def test_sample_context_is_seeded_and_mixes_two_machine_tasks():
    ctx = P.sample_context(random.Random(0), SEEDS, POOL)
    assert ctx == ["Seed task 0.", "Machine task b.", "Seed task 4.", "Seed task 6.", "Seed task 2.",
                   "Machine task c.", "Seed task 7.", "Seed task 3."]
    assert P.sample_context(random.Random(0), SEEDS, POOL) == ctx
    only_seeds = P.sample_context(random.Random(1), SEEDS, [])
    assert len(only_seeds) == 8 and set(only_seeds) <= set(SEEDS) and len(set(only_seeds)) == 8
    one = P.sample_context(random.Random(1), SEEDS, POOL[:1])
    assert sum(s in POOL for s in one) == 1 and len(one) == 8


def test_base_instruction_prompt_exact():
    prompt = P.instruction_prompt(["Write a  poem\nabout rain:", "Add 2 and 3."], chat=False)
    assert prompt == "Come up with a series of tasks:\n1. Write a poem about rain\n2. Add 2 and 3.\n3."
    assert P.instruction_stop(8, chat=False) == ["\n\n", "\n16", "16.", "16 ."]
    assert P.instruction_stop(8, chat=True) is None


def test_chat_instruction_prompt_asks_per_topic_and_shows_examples_inline(monkeypatch):
    context = ["Write a poem.", "Add 2 and 3.", "Name a river.", "Not shown."]
    msgs = P.instruction_prompt(context, chat=True, topics=["cooking", "chess"])
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"] == (
        "Write a numbered list of 2 different instructions for an assistant, one about each of these topics: "
        "cooking, chess. Each instruction is one complete sentence that asks for something.")
    assert P.chat_shown(context) == []  # the measured default: no example to copy
    monkeypatch.setattr(P, "CHAT_SHOWN", 3)
    msgs = P.instruction_prompt(context, chat=True, topics=["cooking", "chess"])
    assert msgs[1]["content"].endswith('The dataset already has these, so do not repeat them: "Write a poem."; '
                                       '"Add 2 and 3."; "Name a river.".')
    assert "\n1." not in msgs[1]["content"]  # shown inline, not as a numbered list to continue
    assert P.chat_shown(context) == context[:3]
    rng = random.Random(0)
    assert P.sample_topics(rng) == P.sample_topics(random.Random(0)) and len(set(P.sample_topics(rng))) == 7
    assert len(P.topics()) >= 100 and len(set(P.topics())) == len(P.topics())
    schema = P.instruction_schema(5)
    assert schema["properties"]["tasks"]["maxItems"] == 5 and schema["required"] == ["tasks"]


def test_topics_hold_no_blacklisted_word():
    from selfinstruct.data.filters import instruction_reason
    assert [t for t in P.topics() if instruction_reason(f"Write one task about {t}.")] == []


def test_classify_prompt():
    base = P.classify_prompt("Tell me if {x} is odd.", chat=False)
    assert base.startswith("Decide whether each task is a classification task")
    assert base.endswith("Task: Write a short story about a lost key.\nClassification: No\n\n"
                         "Task: Tell me if {x} is odd.\nClassification:")
    assert base.count("Classification: Yes") == 3 and base.count("Classification: No") == 6
    chat = P.classify_prompt("Tell me if it is odd.", chat=True)
    assert chat[1]["content"].endswith("Task: Tell me if it is odd.\n\n"
                                       "Is the last task a classification task? Answer Yes or No.")


def test_instance_prompts_exact_tail():
    base = P.instance_prompt("Add two numbers.", [TASK], classification=False, chat=False, count=3)
    assert "Write up to 3 different examples" in base
    assert base.endswith("Task: Sort the numbers\nExample 1\nInput: 3, 1\nOutput: 1, 3\n\n"
                         "Task: Add two numbers.\nExample 1\nInput:")
    cls = P.instance_prompt("Is it spam?", [CLS], classification=True, chat=False)
    assert cls.endswith("Task: Is the review positive?\nClass label: Yes\nInput: Great food\n\n"
                        "Task: Is it spam?\nClass label:")
    chat = P.instance_prompt("Is it spam?", [CLS], classification=True, chat=True)
    assert chat[1]["content"].startswith('Example reply for another task ("Is the review positive?"):\n'
                                         '{"examples": [{"label": "Yes", "input": "Great food"}]}\n\n'
                                         "Task: Is it spam?\n\nThis is a classification task.")
    assert chat[1]["content"].endswith('Reply in JSON: {"examples": [{"label": "...", "input": "..."}]}')
    plain = P.instance_prompt("Add two numbers.", [TASK], classification=False, chat=True, count=3)
    assert '{"examples": [{"input": "3, 1", "output": "1, 3"}]}' in plain[1]["content"]
    assert "Write up to 3 different examples" in plain[1]["content"]
    assert list(P.instance_schema(True)["properties"]["examples"]["items"]["properties"]) == ["label", "input"]
    assert list(P.instance_schema(False, 3)["properties"]["examples"]["items"]["properties"]) == ["input", "output"]
    assert P.instance_schema(False, 3)["properties"]["examples"]["maxItems"] == 3
    noinput = {"instruction": "Tell a joke.", "instances": [{"input": "", "output": "Knock knock."}]}
    assert P.format_demo(noinput, classification=False) == \
        "Task: Tell a joke.\nExample 1\nInput: <noinput>\nOutput: Knock knock.\n\n"


def test_pick_demos_prefers_the_same_kind():
    rng = random.Random(0)
    seeds = [TASK, CLS, {**CLS, "instruction": "Is it sarcasm?"}, {"instruction": "x", "instances": []}]
    assert all(t["is_classification"] for t in P.pick_demos(rng, seeds, classification=True))
    picked = P.pick_demos(rng, seeds, classification=False)  # one plain task only: fall back to any with instances
    assert len(picked) == 2 and all(t["instances"] for t in picked)


def test_similar_demos_are_the_nearest_seeds_of_the_kind_most_similar_last():
    from selfinstruct.generation.instances import seed_index

    seeds = [{"instruction": t, "instances": [{"input": "", "output": "x"}], "is_classification": c}
             for t, c in [("Write a poem about the sea.", False), ("Sort the numbers in a list.", False),
                          ("Write a short poem about the sea at night.", False), ("Is the poem about the sea?", True),
                          ("Translate the sentence to French.", False)]]
    seeds.append({"instruction": "Write a poem about the sea in winter.", "instances": [], "is_classification": False})
    index = seed_index(seeds)
    picked = P.similar_demos(index, seeds, "Write a poem about the sea in spring.", classification=False)
    assert [t["instruction"] for t in picked] == ["Write a short poem about the sea at night.",
                                                  "Write a poem about the sea."]  # no instances: never shown
    cls = P.similar_demos(index, seeds, "Is the poem sad?", classification=True, k=1)
    assert [t["instruction"] for t in cls] == ["Is the poem about the sea?"]
    few = P.similar_demos(index, seeds, "Is the poem sad?", classification=True)  # one of the kind: any kind
    assert len(few) == 2 and few[-1]["instruction"] == "Is the poem about the sea?"
    nothing = P.similar_demos(index, seeds, "zzz qqq", classification=False)  # no word shared: seed order
    assert [t["instruction"] for t in nothing] == ["Sort the numbers in a list.", "Write a poem about the sea."]


def test_alpaca_prompt_exact_tail():
    prompt = P.alpaca_prompt([TASK], chat=False)
    assert prompt.startswith("You are asked to come up with a set of 20 diverse task instructions")
    assert prompt.endswith("List of 20 tasks:\n\n###\n1. Instruction: Sort the numbers\n1. Input:\n3, 1\n"
                           "1. Output:\n1, 3\n###\n2. Instruction:")
    assert P.alpaca_stop(chat=False) == ["\n21.", "21. Instruction:"]


def test_templates_are_package_resources_and_fill_is_single_pass():
    assert P.template("instructions_base") == "Come up with a series of tasks:\n"
    assert P.fill("{a} and {b}", a="{b}", b="x") == "{b} and x"
