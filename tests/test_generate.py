"""The generate loop with a scripted fake teacher (no model)."""
import json
import re
from collections import Counter

import pytest
from click.testing import CliRunner

from selfinstruct import cli, teachers
from selfinstruct.generation.bootstrap import GenerateConfig, clean_instances, run
BASE_SAMPLES = 3
from selfinstruct.data.formatting import to_messages
from selfinstruct.generation.journal import RunState
from selfinstruct.data.writers import OutputError, read_jsonl_lenient
from selfinstruct.teachers import Completion, Usage

WORDS = ("amber basalt cobalt dune ember fjord glacier harbor islet jungle karst lagoon mesa nebula oasis prairie "
         "quarry reef savanna tundra upland valley wetland xeric yardang zephyr atoll bayou canyon delta estuary "
         "fen geyser hollow inlet jetty knoll ledge moor notch").split()


def seed_tasks(n=12):
    tasks = [{"id": f"s{i}", "instruction": f"Seed task {i}: describe the {WORDS[i]} in plain words.",
              "instances": [{"input": f"{WORDS[i]} example", "output": f"A {WORDS[i]} is a landform."}],
              "is_classification": False} for i in range(n)]
    tasks[0]["is_classification"] = tasks[1]["is_classification"] = True
    return tasks


def text_of(prompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


def kind_of(prompt) -> str:
    text = text_of(prompt)
    if "Classification:" in text or "classification task? Answer" in text:
        return "classify"
    if "Come up with examples" in text or "Class label:" in text or '{"examples":' in text:
        return "instances"
    if "Instruction:" in text:
        return "alpaca"
    return "instructions"


class FakeTeacher:
    """Implements the Teacher protocol; ``script[kind](prompt, n)`` gives (text, finish_reason)."""

    def __init__(self, script=None, *, is_chat=False, crash_on=None):
        self.name, self.is_chat, self.usage = "fake", is_chat, Usage()
        self.script = {**DEFAULT_SCRIPT, **(script or {})}
        self.prompts = []  # (kind, prompt)
        self.calls = Counter()
        self.crash_on = crash_on  # (kind, call number) -> raise KeyboardInterrupt at that call

    def complete(self, prompts, **kw):
        return [c for _, c in self.stream(prompts, **kw)]

    def stream(self, prompts, *, max_tokens=512, temperature=0.7, top_p=0.5, stop=None, progress=None):
        for i, p in enumerate(prompts):
            kind = kind_of(p)
            self.calls[kind] += 1
            if self.crash_on == (kind, self.calls[kind]):
                raise KeyboardInterrupt
            self.prompts.append((kind, p))
            text, finish = self.script[kind](p, self.calls[kind])
            self.usage.requests += 1
            self.usage.prompt_tokens += len(text_of(p).split())
            self.usage.completion_tokens += len(text.split())
            yield i, Completion(text, len(text_of(p).split()), len(text.split()), finish)

    def close(self):
        pass


def unique_tasks(p, n):
    """Two fresh instructions per prompt, made of words no other call uses, then a truncated third."""
    a, b, c = (f"w{n}x{j}" for j in range(3))
    return (f" Explain {a} {b} {c} alpha{n}.\n10. Summarize {c} {a} beta{n} gamma{n}.\n11. Rank the",
            "length")


def instances_for(p, n):
    if text_of(p).rstrip().endswith("Class label:") or "Class label" in text_of(p).split("Task:")[-1]:
        return " Good\nInput: I liked it\nClass label: Bad\nInput: I hated it", "stop"
    return f" in{n}a\nOutput: out{n}a\nExample 2\nInput: in{n}b\nOutput: out{n}b", "stop"


DEFAULT_SCRIPT = {
    "instructions": unique_tasks,
    "classify": lambda p, n: (" Yes" if "Classify" in text_of(p).split("Task:")[-1] else " No", "stop"),
    "instances": instances_for,
    "alpaca": lambda p, n: ("", "stop"),
}


def make_run(tmp_path, teacher, **kw):
    cfg = GenerateConfig(**{"rounds": 2, "prompts_per_round": 2, "classify": "teacher", **kw})
    state = RunState(tmp_path / "run", cfg.run_json(), seed_tasks())
    stats = run(teacher, cfg, state, echo=lambda m: None)
    return stats, state


def files(tmp_path):
    out = tmp_path / "run"
    return (read_jsonl_lenient(out / "tasks.jsonl"), read_jsonl_lenient(out / "data.jsonl"),
            read_jsonl_lenient(out / "rejected.jsonl"), json.loads((out / "stats.json").read_text()))


def assert_consistent(tmp_path):
    tasks, data, rejected, stats = files(tmp_path)
    assert len({t["id"] for t in tasks}) == len(tasks)
    assert len({t["instruction"] for t in tasks}) == len(tasks)
    assert data == [{"instruction": t["instruction"], **i} for t in tasks for i in t["instances"]]
    msgs = read_jsonl_lenient(tmp_path / "run" / "data.messages.jsonl")
    assert msgs == [{"messages": to_messages(row)} for row in data]
    for r in stats["rounds"]:
        n = r["round"]
        assert r["kept"] == sum(t["round"] == n for t in tasks)
        assert r["instances"] == sum(len(t["instances"]) for t in tasks if t["round"] == n)
        assert r["rejected"] == dict(Counter(x["reason"] for x in rejected if x["round"] == n))
        assert r["candidates"] == r["kept"] + sum(r["rejected"].values())
    for key in ("kept", "instances", "candidates", "requests", "prompt_tokens", "completion_tokens"):
        assert stats["total"][key] == sum(r[key] for r in stats["rounds"])
    return tasks, data, rejected, stats


def test_pool_grows_and_machine_tasks_join_later_prompts(tmp_path):
    teacher = FakeTeacher()
    stats, _ = make_run(tmp_path, teacher, rounds=3)
    tasks, data, rejected, stats = assert_consistent(tmp_path)
    assert [r["kept"] for r in stats["rounds"]] == [4, 4, 4]
    assert [r["instances"] for r in stats["rounds"]] == [8, 8, 8]
    assert [t["id"] for t in tasks] == [f"machine_task_{i}" for i in range(12)]
    assert tasks[0]["instruction"] == "Explain w1x0 w1x1 w1x2 alpha1."
    assert tasks[0]["instances"] == [{"input": "in1a", "output": "out1a"}, {"input": "in1b", "output": "out1b"}]
    assert tasks[0]["teacher"] == "fake" and tasks[0]["round"] == 1 and tasks[0]["is_classification"] is False
    assert tasks[0]["similarity"] == 0.0 and tasks[0]["most_similar"] is None  # no shared word
    assert tasks[1]["similarity"] == 0.2 and tasks[1]["most_similar"] == tasks[0]["instruction"]
    # every round: the third item of each completion is cut off at the token limit
    assert [r["rejected"] for r in stats["rounds"]] == [{"truncated": 2}] * 3
    instr = [p for k, p in teacher.prompts if k == "instructions"]
    assert len(instr) == 6
    for i, prompt in enumerate(instr):
        listed = re.findall(r"^\d+\. (.*)$", prompt, re.M)
        assert len(listed) == 8 and prompt.endswith("\n9.")
        earlier = {t["instruction"] for t in tasks if t["round"] <= i // 2}
        assert sum(s in earlier for s in listed) == (0 if i < 2 else 2)
    assert stats["teacher"] == "fake" and stats["seeds"] == 12
    assert stats["rounds"][0]["requests"] == 2 + 4 + 4  # instructions, classify, instances
    assert stats["total"]["cost_usd"] is None


def test_rejections_carry_reasons(tmp_path):
    picked = {}

    def script(p, n):
        if n > 1:
            return "", "stop"
        shown = [t["instruction"] for t in seed_tasks() if t["instruction"] in text_of(p)]
        unseen = [t["instruction"] for t in seed_tasks() if t["instruction"] not in text_of(p)]
        picked.update(shown=shown[0], unseen=unseen[0])
        return (f" {unseen[0]}\n10. Hi there\n11. Draw a picture of a cat please"
                "\n12. Write a program that adds numbers.\n13. Classify the mood of this text as happy or sad.\n"
                "14. Tell me something about nothing at all.\n15. Tell me something about nothing at all.\n"
                f"16. Tell me something about nothing at all\n17. {shown[0].upper()}", "stop")

    def inst(p, n):
        if "nothing at all" in text_of(p):
            return " same\nOutput: same\nExample 2\nInput: x\nOutput:", "stop"
        return instances_for(p, n)

    make_run(tmp_path, FakeTeacher({"instructions": script, "instances": inst}), rounds=1)
    tasks, _, rejected, stats = assert_consistent(tmp_path)
    reasons = sorted((r["instruction"], r["reason"]) for r in rejected)
    assert reasons == sorted([  # a seed it was shown is a copy; one it was not shown is merely similar
        (picked["unseen"], "similar"), (picked["shown"].upper(), "copied_example"), ("Hi there", "too_short"),
        ("Draw a picture of a cat please", "blacklist:draw"), ("Write a program that adds numbers.", "write_a_program"),
        ("Tell me something about nothing at all.", "repeated_in_response"),
        ("Tell me something about nothing at all", "similar"),
        ("Tell me something about nothing at all.", "no_instances"), ("", "empty_response")])
    similar = next(r for r in rejected if r["reason"] == "similar")
    assert similar["similarity"] == 1.0 and similar["most_similar"] == picked["unseen"]
    [task] = tasks
    assert task["is_classification"] is True  # classification goes output-first
    assert task["instances"] == [{"input": "I liked it", "output": "Good"}, {"input": "I hated it", "output": "Bad"}]
    assert stats["rounds"][0]["instances_dropped"] == {"empty_output": 1, "output_equals_input": 1}


def test_classification_prompts_are_output_first(tmp_path):
    teacher = FakeTeacher({"instructions": lambda p, n: (f" Classify the tone of letter w{n}a w{n}b w{n}c.", "stop")})
    make_run(tmp_path, teacher, rounds=1)
    inst = [p for k, p in teacher.prompts if k == "instances"]
    assert len(inst) == 2 and all(p.endswith("Class label:") for p in inst)
    # the demos shown are the seed classification tasks
    assert all("Task: Seed task 0" in p or "Task: Seed task 1" in p for p in inst)


def test_clean_instances_rules():
    insts = [{"input": "a", "output": "1"}, {"input": "a", "output": "1"}, {"input": "b", "output": ""},
             {"input": "c", "output": "c"}, {"input": "d", "output": "x"}, {"input": "d", "output": "y"},
             {"input": "", "output": "first"}, {"input": "", "output": "second"}, {"input": "e", "output": "5"},
             {"input": "f", "output": "6"}, {"input": "g", "output": "7"}, {"input": "h", "output": "8"}]
    kept, dropped = clean_instances(insts, 5)
    assert kept == [{"input": "a", "output": "1"}, {"input": "", "output": "first"}, {"input": "e", "output": "5"},
                    {"input": "f", "output": "6"}, {"input": "g", "output": "7"}]
    assert dropped == {"duplicate_instance": 1, "empty_output": 1, "output_equals_input": 1,
                       "conflicting_outputs": 3, "over_limit": 1}


def test_chat_teacher_gets_messages(tmp_path):
    def chat_list(p, n):
        assert isinstance(p, list) and p[0]["role"] == "system"
        return f"Sure, here you go:\n1. Describe w{n}a w{n}b landforms.\n2. List w{n}c w{n}d w{n}e items.", "stop"

    def chat_inst(p, n):
        return f"Example 1\nInput: q{n}\nOutput: r{n}", "stop"

    teacher = FakeTeacher({"instructions": chat_list, "instances": chat_inst}, is_chat=True)
    make_run(tmp_path, teacher, rounds=1)
    tasks, *_ = assert_consistent(tmp_path)
    assert [t["instruction"] for t in tasks] == ["Describe w1a w1b landforms.", "List w1c w1d w1e items.",
                                                 "Describe w2a w2b landforms.", "List w2c w2d w2e items."]
    assert tasks[0]["instances"] == [{"input": "q1", "output": "r1"}]


def test_resume_after_crash_mid_round_never_duplicates(tmp_path):
    # round 2 dies at its 3rd instance request: the 2 tasks answered before are written, the rest is lost
    with pytest.raises(KeyboardInterrupt):
        make_run(tmp_path, FakeTeacher(crash_on=("instances", 7)), rounds=3)
    tasks, _, _, stats = files(tmp_path)
    assert len(stats["rounds"]) == 1 and len(tasks) == 6 and stats["in_progress"]["round"] == 2
    # instructions + classify + the 2 instance requests answered before the crash (saved as it stopped)
    assert stats["in_progress"]["requests"] == 2 + 4 + 2
    # a torn last line and a data.jsonl left behind by the crash
    with open(tmp_path / "run" / "tasks.jsonl", "a") as f:
        f.write('{"id": "machine_task_6", "instruction": "Torn')
    data = (tmp_path / "run" / "data.jsonl").read_text().splitlines(True)
    (tmp_path / "run" / "data.jsonl").write_text("".join(data[:-3]))
    msgs = (tmp_path / "run" / "data.messages.jsonl").read_text().splitlines(True)
    (tmp_path / "run" / "data.messages.jsonl").write_text("".join(msgs[:-2]) + msgs[-2][:9])
    # a new process: the fake's counter restarts, so round 2 gets the texts round 1 already kept back
    make_run(tmp_path, FakeTeacher(), rounds=3)
    tasks, data, rejected, stats = assert_consistent(tmp_path)
    assert [r["round"] for r in stats["rounds"]] == [1, 2, 3] and "in_progress" not in stats
    assert [t["id"] for t in tasks] == [f"machine_task_{i}" for i in range(len(tasks))]
    r2 = stats["rounds"][1]
    assert r2["requests"] == 8 + 2  # the crashed attempt's usage is carried; nothing new passed screening
    # one of round 1's texts is also shown in its prompt (the pool joins the prompts): a copy, not a duplicate
    assert r2["kept"] == 2 and r2["rejected"] == {"copied_example": 1, "exact_duplicate": 3, "truncated": 4}
    assert Counter(t["round"] for t in tasks) == {1: 4, 2: 2, 3: 2}
    assert len(data) == 16


def test_resume_refuses_incompatible_options(tmp_path):
    make_run(tmp_path, FakeTeacher(), rounds=1)
    with pytest.raises(OutputError, match=r"cannot resume, it was generated with --threshold 0.7 \(this run: 0.5\)"):
        RunState(tmp_path / "run", GenerateConfig(threshold=0.5).run_json(), seed_tasks())
    with pytest.raises(OutputError, match="--seeds"):
        RunState(tmp_path / "run", GenerateConfig().run_json(), seed_tasks(13))
    # compatible changes (more rounds, other prompts per round) resume
    stats, _ = make_run(tmp_path, FakeTeacher(), rounds=2, prompts_per_round=1)
    assert len(stats["rounds"]) == 2


def test_out_dir_checks(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="holds no generate run"):
        RunState(tmp_path / "busy", GenerateConfig().run_json(), seed_tasks())
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        RunState(tmp_path / "afile", GenerateConfig().run_json(), seed_tasks())


def test_alpaca_style(tmp_path):
    def blocks(p, n):
        assert p.endswith("4. Instruction:")
        return (f" Name w{n}a w{n}b w{n}c fruit\n4. Input:\n<noinput>\n4. Output:\nApple\n###\n"
                f"5. Instruction: Add w{n}d w{n}e w{n}f numbers\n5. Input:\n1, 2\n5. Output:\n3\n###\n"
                f"6. Instruction: Echo w{n}g w{n}h w{n}i input\n6. Input:\nsame\n6. Output:\nsame\n###\n"
                "7. Instruction: Cut", "length")

    teacher = FakeTeacher({"alpaca": blocks})
    make_run(tmp_path, teacher, rounds=2, style="alpaca")
    tasks, data, rejected, stats = assert_consistent(tmp_path)
    assert len(tasks) == 8 and all(len(t["instances"]) == 1 for t in tasks)
    assert tasks[0]["instruction"] == "Name w1a w1b w1c fruit"
    assert data[0] == {"instruction": "Name w1a w1b w1c fruit", "input": "", "output": "Apple"}
    assert Counter(r["reason"] for r in rejected) == {"truncated": 4, "no_instances": 4}
    assert set(teacher.calls) == {"alpaca"}  # one pass: no classify or instance requests
    later = [p for k, p in teacher.prompts][2:]
    assert all(sum(t["instruction"] in p for t in tasks[:4]) == 1 for p in later)  # 2 seeds + 1 pool demo


def test_cli_generate_with_fake_teacher(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(teachers, "make_teacher", lambda *a, **k: made.append(k) or FakeTeacher())
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(t) + "\n" for t in seed_tasks()))
    args = ["generate", "--rounds", "1", "--seeds", str(seeds), "--out", str(tmp_path / "run"),
            "--prompts-per-round", "2", "--instance-samples", "1", "--price-in", "1", "--price-out", "2",
            "--api-key", "sk-secret-123"]
    res = CliRunner().invoke(cli.main, args)
    assert res.exit_code == 0, res.output
    assert "4 tasks ->" in res.output and "8 training rows ->" in res.output
    assert re.search(r"^\s+all\s+6\s+4\s+8\s", res.output, re.M)  # the totals row of the summary
    assert made[0]["api_key"] == "sk-secret-123"
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    r = stats["rounds"][0]
    assert r["cost_usd"] == pytest.approx(r["prompt_tokens"] / 1e6 + 2 * r["completion_tokens"] / 1e6)
    for f in (tmp_path / "run").iterdir():
        assert "sk-secret-123" not in f.read_text()
    res = CliRunner().invoke(cli.main, args)  # nothing left to do: no model is loaded
    assert res.exit_code == 0 and len(made) == 1 and "already done" in res.output
    res = CliRunner().invoke(cli.main, args[:-2] + ["--threshold", "0.5"])
    assert res.exit_code == 2 and "cannot resume" in res.output and "Traceback" not in res.output


def test_cli_checks_inputs_before_loading_a_model(tmp_path, monkeypatch):
    monkeypatch.setattr(teachers, "make_teacher", lambda *a, **k: pytest.fail("model loaded"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "instances": []}\n')
    res = CliRunner().invoke(cli.main, ["generate", "--seeds", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.startswith(f"error: {bad}:1:")
    res = CliRunner().invoke(cli.main, ["generate", "--seeds", str(tmp_path / "none.jsonl")])
    assert res.exit_code == 2 and "no such file" in res.output
    res = CliRunner().invoke(cli.main, ["generate", "--instances", "6"])
    assert res.exit_code == 2 and "--instances" in res.output
    res = CliRunner().invoke(cli.main, ["generate", "--price-in", "1"])
    assert res.exit_code == 2 and "--price-out" in res.output


def test_cli_teacher_error_is_one_line(tmp_path, monkeypatch):
    def fail(*a, **k):
        raise teachers.TeacherError("OPENAI_API_KEY is not set")

    monkeypatch.setattr(teachers, "make_teacher", fail)
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(t) + "\n" for t in seed_tasks()))
    res = CliRunner().invoke(cli.main, ["generate", "--teacher", "openai:gpt-4o-mini", "--seeds", str(seeds),
                                        "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output == "error: OPENAI_API_KEY is not set\n"


def test_generate_takes_filter_tokenizer_and_blacklist(tmp_path):
    """--tokenizer unicode and --blacklist reach the gate, and a resume must keep them."""
    cfg = GenerateConfig(rounds=1, prompts_per_round=2, blacklist=("explain",), tokenizer="unicode")
    state = RunState(tmp_path / "run", cfg.run_json(), seed_tasks())
    run(FakeTeacher(), cfg, state, echo=lambda m: None)
    tasks, _, rejected, _ = files(tmp_path)
    assert {r["reason"] for r in rejected if r["instruction"].startswith("Explain")} == {"blacklist:explain"}
    assert tasks and not any(t["instruction"].startswith("Explain") for t in tasks)
    again = GenerateConfig(rounds=2, prompts_per_round=2, blacklist=("explain",), tokenizer="unicode")
    RunState(tmp_path / "run", again.run_json(), seed_tasks())  # same options: resumes
    with pytest.raises(OutputError, match="--blacklist"):
        RunState(tmp_path / "run", GenerateConfig(rounds=2, prompts_per_round=2, tokenizer="unicode").run_json(),
                 seed_tasks())


def test_each_row_names_the_raw_teacher_answers_it_came_from(tmp_path):
    make_run(tmp_path, FakeTeacher(), rounds=2)
    tasks, _, rejected, _ = files(tmp_path)
    responses = {r["id"]: r for r in read_jsonl_lenient(tmp_path / "run" / "responses.jsonl")}
    assert tasks and len(responses) == len(set(responses))
    for t in tasks:
        src = t["responses"]
        assert t["instruction"].split()[1] in responses[src["instructions"]]["text"]  # the list it was in
        assert responses[src["instructions"]]["stage"] == "instructions"
        assert t["instances"][0]["input"] in responses[src["instances"]]["text"]
        assert responses[src["instances"]]["round"] == t["round"]
    truncated = [r for r in rejected if r["reason"] == "truncated"]
    assert truncated and all(r["responses"]["instructions"] in responses for r in truncated)
    # a resumed run goes on numbering, never reusing an id
    make_run(tmp_path, FakeTeacher(), rounds=3)
    ids = [r["id"] for r in read_jsonl_lenient(tmp_path / "run" / "responses.jsonl")]
    assert len(ids) == len(set(ids)) > len(responses)


def test_an_instruction_without_instances_blocks_nothing_later(tmp_path):
    """The gate holds kept tasks only: a candidate the teacher gave no usable instances can come back."""
    def same(p, n):
        return " Describe the quiet amber lagoon at dawn for a child.", "stop"

    def inst(p, n):
        return ("I cannot help." if n == 1 else f" q{n}\nOutput: r{n}"), "stop"

    make_run(tmp_path, FakeTeacher({"instructions": same, "instances": inst}), rounds=2, prompts_per_round=1)
    tasks, _, rejected, _ = files(tmp_path)
    assert [(r["round"], r["reason"]) for r in rejected] == [(1, "no_instances")]
    assert [(t["round"], t["instruction"]) for t in tasks] == [(2, "Describe the quiet amber lagoon at dawn for a child.")]


def test_local_teachers_classify_by_rule_and_ask_the_teacher_nothing(tmp_path):
    assert GenerateConfig().classify == "rules" and GenerateConfig(teacher="openai:gpt-4o-mini").classify == "teacher"
    names = {1: "Tell whether the review w1a w1b is positive or negative.", 2: "Describe the w2a w2b w2c landform."}
    teacher = FakeTeacher({"instructions": lambda p, n: (f" {names[n]}", "stop")})
    stats, _ = make_run(tmp_path, teacher, rounds=1, classify="rules")
    assert not [p for k, p in teacher.prompts if k == "classify"]
    inst = {text_of(p).split("Task:")[-1].split("\n")[0].strip(): text_of(p) for k, p in teacher.prompts
            if k == "instances"}
    assert inst[names[1]].endswith("Class label:") and inst[names[2]].endswith("Input:")
    assert stats["rounds"][0]["requests"] == 2 + 2  # instructions, instances: no classify requests


def test_instances_are_drawn_with_their_own_sampling(tmp_path):
    """Instructions at --temperature/--top-p; instances at --instance-*; a teacher with a repeat penalty
    (llama.cpp) has the instance penalty set for that stage only."""
    seen = []

    class Recording(FakeTeacher):
        repeat_penalty = 1.0

        def stream(self, prompts, **kw):
            for i, c in super().stream(prompts, **kw):
                seen.append((self.prompts[-1][0], kw["temperature"], kw["top_p"], self.repeat_penalty))
                yield i, c

    teacher = Recording()
    make_run(tmp_path, teacher, rounds=1, temperature=1.0, top_p=0.9, instance_temperature=0.3, instance_top_p=0.4,
             instance_repeat_penalty=1.3)
    stages = {kind: (t, p, r) for kind, t, p, r in seen}
    assert stages["instructions"] == (1.0, 0.9, 1.0) and stages["instances"] == (0.3, 0.4, 1.3)
    assert teacher.repeat_penalty == 1.0
    local = GenerateConfig()
    assert (local.instance_temperature, local.instance_top_p, local.instance_repeat_penalty) == (0.7, 0.5, 1.2)


def test_instance_prompts_of_a_kind_share_their_demos_within_a_round(tmp_path):
    teacher = FakeTeacher()
    make_run(tmp_path, teacher, rounds=1, prompts_per_round=3)
    heads = {text_of(p).rsplit("Task:", 1)[0] for k, p in teacher.prompts if k == "instances"
             and text_of(p).endswith("Input:")}
    tails = [text_of(p).rsplit("Task:", 1)[1] for k, p in teacher.prompts if k == "instances"
             and text_of(p).endswith("Input:")]
    assert len(tails) >= 2 and len(set(tails)) == len(tails) and len(heads) == 1  # one opening, many tasks


def test_num_instructions_stops_at_the_target_and_resumes_to_a_larger_one(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(teachers, "make_teacher", lambda *a, **k: made.append(k) or FakeTeacher())
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(t) + "\n" for t in seed_tasks()))
    args = ["generate", "--rounds", "10", "--seeds", str(seeds), "--out", str(tmp_path / "run"),
            "--prompts-per-round", "2"]
    res = CliRunner().invoke(cli.main, [*args, "--num-instructions", "6"])  # 4 kept a round: 2 rounds
    assert res.exit_code == 0, res.output
    assert "8 tasks kept: --num-instructions 6 reached" in res.output
    tasks, _, _, stats = assert_consistent(tmp_path)
    assert len(stats["rounds"]) == 2 and len(tasks) == 8
    res = CliRunner().invoke(cli.main, [*args, "--num-instructions", "6"])  # nothing left: no model loads
    assert res.exit_code == 0 and len(made) == 1 and "already holds 8 tasks" in res.output
    res = CliRunner().invoke(cli.main, [*args, "--num-instructions", "10"])  # resumes for one more round
    assert res.exit_code == 0 and "12 tasks kept: --num-instructions 10 reached" in res.output, res.output
    kept = [r["kept"] for r in assert_consistent(tmp_path)[3]["rounds"]]
    assert sum(kept[:-1]) < 10 <= sum(kept) and len(kept) < 10  # stopped after the round that reached it
    res = CliRunner().invoke(cli.main, [*args[:2], str(len(kept) + 1), *args[3:], "--num-instructions", "100"])
    assert res.exit_code == 0 and f"of --num-instructions 100 tasks kept after {len(kept) + 1} round(s)" in res.output


def one_example(p, n):
    """What the embedded base model does: one example, then it starts a new task (cut at the stop)."""
    return f" input {n}\nOutput: the answer to input {n}.\n", "stop"


def test_instance_samples_ask_several_answers_a_task_and_pool_their_examples(tmp_path):
    teacher = FakeTeacher({"instances": one_example})
    cfg = GenerateConfig(rounds=1, prompts_per_round=1, classify="rules", instance_samples=BASE_SAMPLES)
    state = RunState(tmp_path / "run", cfg.run_json(), seed_tasks())
    run(teacher, cfg, state, echo=lambda m: None)
    tasks, data, _, _ = assert_consistent(tmp_path)
    asked = [p for k, p in teacher.prompts if k == "instances"]
    assert len(tasks) == 2 and len(asked) == 2 * BASE_SAMPLES and len(set(asked)) == 2
    assert [len(t["instances"]) for t in tasks] == [BASE_SAMPLES] * 2
    assert {i["input"] for t in tasks for i in t["instances"]} == {f"input {n}" for n in range(1, 7)}
    responses = {r["id"]: r for r in read_jsonl_lenient(tmp_path / "run" / "responses.jsonl")}
    for t in tasks:  # every answer pooled into a task is named
        assert len(t["responses"]["instances"]) == BASE_SAMPLES
        texts = " ".join(responses[i]["text"] for i in t["responses"]["instances"])
        assert all(i["input"] in texts for i in t["instances"])
    # by default every teacher is asked once a task
    chat = FakeTeacher({"instances": one_example}, is_chat=True)
    run(chat, GenerateConfig(rounds=1, prompts_per_round=1), RunState(tmp_path / "c", cfg.run_json(), seed_tasks()),
        echo=lambda m: None)
    chat_asked = [text_of(p) for k, p in chat.prompts if k == "instances"]
    assert len(chat_asked) == len(set(chat_asked)) >= 1
    two = FakeTeacher({"instances": one_example})
    run(two, GenerateConfig(rounds=1, prompts_per_round=1, classify="rules", instance_samples=2),
        RunState(tmp_path / "two", cfg.run_json(), seed_tasks()), echo=lambda m: None)
    assert sum(k == "instances" for k, _ in two.prompts) == 4


def test_similar_instance_demos_are_the_seed_tasks_nearest_the_task(tmp_path):
    def tasks_about_seeds(p, n):  # near seed 7 and seed 9 (the words they alone share)
        return " Describe the harbor in plain words for a child.\n10. Describe the jungle at dawn in words.", "stop"

    teacher = FakeTeacher({"instructions": tasks_about_seeds})
    cfg = GenerateConfig(rounds=1, prompts_per_round=1, classify="rules", threshold=0.95, instance_demos="similar")
    run(teacher, cfg, RunState(tmp_path / "run", cfg.run_json(), seed_tasks()), echo=lambda m: None)
    asked = {text_of(p).rsplit("Task:", 1)[1]: text_of(p) for k, p in teacher.prompts if k == "instances"}
    harbor = asked[" Describe the harbor in plain words for a child.\nExample 1\nInput:"]
    jungle = asked[" Describe the jungle at dawn in words.\nExample 1\nInput:"]
    # the nearest seed is the last demo, just before the task
    assert harbor.rsplit("Task:", 2)[1].startswith(" Seed task 7: describe the harbor")
    assert jungle.rsplit("Task:", 2)[1].startswith(" Seed task 9: describe the jungle")
    # the template's opening stays one shared prefix
    assert harbor.split("Task: Seed")[0] == jungle.split("Task: Seed")[0]
