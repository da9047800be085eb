"""Record -> (prompt, completion) text. One place, used by `train` and `eval`.

Step one of two (torchtune style): this module turns a record into text;
``training/examples.py`` turns text into tokens and labels.
"""
from __future__ import annotations

PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
# Headers a model may echo after its answer; generation is cut at the first one.
HEADERS = ("### Instruction:", "### Input:", "### Response:", "Below is an instruction that describes a task")
TEMPLATES = ("alpaca", "chat")


class TemplateError(ValueError):
    """The chosen template cannot be used with this tokenizer."""


def alpaca_prompt(instruction: str, input: str = "") -> str:
    template = PROMPT_INPUT if input.strip() else PROMPT_NO_INPUT
    return template.format(instruction=instruction, input=input)


def to_messages(row: dict) -> list[dict]:
    """Chat messages for a row: its own ``messages``, or one user turn (+ the answer)."""
    if "messages" in row:
        return row["messages"]
    user = row["instruction"] if not row.get("input", "").strip() else f"{row['instruction']}\n\n{row['input']}"
    msgs = [{"role": "user", "content": user}]
    if "output" in row:
        msgs.append({"role": "assistant", "content": row["output"]})
    return msgs


def check_template(template: str, tokenizer=None, model: str | None = None) -> None:
    """``model``: the name the user knows the tokenizer's model by, for the error."""
    if template not in TEMPLATES:
        raise TemplateError(f"unknown template '{template}' (choose from {', '.join(TEMPLATES)})")
    if template == "chat" and not getattr(tokenizer, "chat_template", None):
        whose = f"the model {model} (--model picks another)" if model else "this model"
        raise TemplateError(f"--template chat: {whose} has no chat template in its tokenizer; use a chat model "
                            "or --template alpaca")


def format_prompt(row: dict, template: str = "alpaca", tokenizer=None) -> str:
    """The text a model sees before its answer (at training and at inference)."""
    if "prompt" in row and "completion" in row:  # a prompt-completion row: already rendered
        return row["prompt"]
    check_template(template, tokenizer)
    if template == "alpaca":
        return alpaca_prompt(row["instruction"], row.get("input", ""))
    msgs = to_messages(row)
    if msgs and msgs[-1]["role"] == "assistant":
        msgs = msgs[:-1]
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def adds_special_tokens(tokenizer, prompt: str, template: str = "alpaca") -> bool:
    """Whether tokenising ``prompt`` adds the tokenizer's special tokens (its BOS): yes for Alpaca text,
    no for a chat template's (it writes its own), and no for a text that already starts with the BOS
    text (a prompt-completion row exported with ``--template chat``), which would get two."""
    bos = getattr(tokenizer, "bos_token", None)
    return template != "chat" and not (bos and prompt.startswith(bos))


def format_example(row: dict, template: str = "alpaca", tokenizer=None) -> tuple[str, str]:
    """(prompt, completion): the loss falls on the completion only (EOS is added with tokens)."""
    prompt = format_prompt(row, template, tokenizer)
    if "prompt" in row and "completion" in row:
        return prompt, row["completion"]
    if template == "alpaca":
        return prompt, row["output"]
    full = tokenizer.apply_chat_template(to_messages(row), tokenize=False)
    if not full.startswith(prompt):  # templates that rewrite earlier turns: fall back to the raw answer
        return prompt, to_messages(row)[-1]["content"]
    completion = full[len(prompt):]
    eos = tokenizer.eos_token or ""
    # the EOS token is appended at tokenisation; drop the template's own copy and trailing newline
    completion = completion.rstrip("\n")
    if eos and completion.endswith(eos):
        completion = completion[: -len(eos)]
    return prompt, completion


def has_header(text: str) -> bool:
    """Does a generated text hold a template header (the model began the next turn)?"""
    return any(h in text for h in HEADERS)


def cut_at_header(text: str) -> str:
    """Cut a generated answer at the first echoed template header."""
    cut = len(text)
    for h in HEADERS:
        i = text.find(h)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()


def joined_ids(prompt: str, completion: str, tokenizer, max_length: int,
               add_special_tokens: bool = True) -> tuple[list[int], int] | None:
    """``(ids, n_prompt)``: the prompt and the completion tokenised apart and joined, with one EOS after the
    completion, cut to ``max_length`` (a cut response loses its EOS); None when the cut leaves no response.
    Training labels and selection scores are both built on these ids."""
    prompt_ids = tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]
    response_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is not None and (not response_ids or response_ids[-1] != eos):
        response_ids = response_ids + [eos]
    ids = (prompt_ids + response_ids)[:max_length]
    n_prompt = len(prompt_ids)
    return None if n_prompt >= len(ids) else (ids, n_prompt)
