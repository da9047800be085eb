import pytest

from selfinstruct.data.formatting import (
    TemplateError, alpaca_prompt, check_template, cut_at_header, format_example, format_prompt, to_messages,
)


def test_alpaca_prompt_with_and_without_input():
    assert alpaca_prompt("Add the numbers.", "2, 3") == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nAdd the numbers.\n\n### Input:\n2, 3\n\n### Response:\n")
    assert alpaca_prompt("Say hi.", "  ") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nSay hi.\n\n### Response:\n")


def test_format_example_splits_prompt_and_completion():
    prompt, completion = format_example({"instruction": "Say hi.", "input": "", "output": "Hi!"})
    assert prompt.endswith("### Response:\n") and completion == "Hi!"


def test_to_messages_joins_input():
    assert to_messages({"instruction": "Translate.", "input": "chat", "output": "cat"}) == [
        {"role": "user", "content": "Translate.\n\nchat"}, {"role": "assistant", "content": "cat"}]


class ChatTok:
    chat_template = "x"
    eos_token = "<|end|>"

    def apply_chat_template(self, msgs, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<|{m['role']}|>{m['content']}<|end|>\n" for m in msgs)
        return text + ("<|assistant|>" if add_generation_prompt else "")


def test_chat_template_completion_is_the_answer_without_eos():
    row = {"instruction": "Say hi.", "input": "", "output": "Hi!"}
    prompt, completion = format_example(row, "chat", ChatTok())
    assert prompt == "<|user|>Say hi.<|end|>\n<|assistant|>"
    assert completion == "Hi!"


def test_chat_template_refused_without_one():
    class NoChat:
        chat_template = None
    with pytest.raises(TemplateError, match="no chat template"):
        format_prompt({"instruction": "a", "output": "b"}, "chat", NoChat())
    with pytest.raises(TemplateError, match="unknown template"):
        check_template("vicuna")


def test_cut_at_header():
    assert cut_at_header("Paris.\n\n### Instruction:\nName a city") == "Paris."
    assert cut_at_header("  plain answer ") == "plain answer"
