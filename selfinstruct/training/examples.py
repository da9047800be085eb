"""Training data: read rows, split, tokenise with response-only labels, pack or pad.

Labels are built once, at tokenisation (TRL style): the prompt and the
completion are tokenised separately and concatenated with one EOS, and the
prompt part of the labels is set to ``IGNORE_INDEX``. The collator only pads or packs; it
never derives labels from pad ids (so a pad id equal to EOS is harmless).
"""
from __future__ import annotations

import hashlib
import json

from ..data.formatting import adds_special_tokens, format_example, joined_ids

IGNORE_INDEX = -100


# --------------------------------------------------------------------------- rows


def task_key(row: dict) -> str:
    """What makes a row's task: its instruction (chat rows: every turn before the last answer)."""
    if "messages" in row:
        msgs = row["messages"]
        if msgs and msgs[-1].get("role") == "assistant":
            msgs = msgs[:-1]
        return json.dumps(msgs, sort_keys=True, ensure_ascii=False)
    if "prompt" in row and "completion" in row:  # a prompt-completion row: its rendered prompt
        return row["prompt"]
    return row["instruction"]


def split_rows(rows: list[dict], val_fraction: float, seed: int = 42) -> tuple[list[dict], list[dict]]:
    """Deterministic split by task: the tasks with the smallest sha256(seed, instruction) go to validation.

    All instances of a task (rows with the same instruction) land on one side, so
    validation never sees a task that training saw. Independent of file order.
    Whole tasks are taken until about ``val_fraction`` of the rows are held out; at
    least one task when ``val_fraction > 0`` and there are two tasks or more.
    """
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(task_key(row), []).append(i)
    if val_fraction <= 0 or len(groups) < 2:
        return list(rows), []
    target = max(1, round(len(rows) * val_fraction))

    def key(task: str) -> str:
        return hashlib.sha256(f"{seed}\0{task}".encode()).hexdigest()

    val_idx: set[int] = set()
    for task in sorted(groups, key=key)[: len(groups) - 1]:  # at least one task stays in training
        if len(val_idx) >= target:
            break
        val_idx.update(groups[task])
    return ([r for i, r in enumerate(rows) if i not in val_idx],
            [r for i, r in enumerate(rows) if i in val_idx])


# --------------------------------------------------------------------------- tokens


def encode_example(prompt: str, completion: str, tokenizer, max_length: int,
                   add_special_tokens: bool = True) -> dict | None:
    """``{input_ids, labels}`` with the prompt masked; None if truncation cut the whole response.

    The prompt and the completion are tokenised separately and concatenated (as TRL
    does), so the boundary is exact: a merge such as Gemma's ``:\n`` + ``\n...`` into
    one ``\n\n`` token cannot hide the response's first token inside the prompt, and
    the prompt ids are exactly the ones the model gets at inference. Truncation keeps
    the start (the prompt) and cuts the response; a cut response loses its EOS too, so
    the model never learns to stop mid-answer.
    """
    joined = joined_ids(prompt, completion, tokenizer, max_length, add_special_tokens)
    if joined is None:
        return None
    ids, n_prompt = joined
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * n_prompt + ids[n_prompt:]}


def encode_rows(rows: list[dict], tokenizer, template: str = "alpaca",
                max_length: int = 1024) -> tuple[list[dict], int]:
    """Tokenise rows; returns (examples, how many were dropped because the response was cut entirely)."""
    out, dropped = [], 0
    for row in rows:
        prompt, completion = format_example(row, template, tokenizer)
        # a chat template writes its own BOS; the Alpaca text needs the tokenizer's
        ex = encode_example(prompt, completion, tokenizer, max_length,
                            adds_special_tokens(tokenizer, prompt, template))
        if ex is None:
            dropped += 1
        else:
            out.append(ex)
    return out, dropped


# --------------------------------------------------------------------------- batches


class Collator:
    """Pack (padding-free) or pad a list of ``{input_ids, labels}``.

    - ``packing=True``: the batch becomes ONE row ``[1, sum(lengths)]`` with
      ``position_ids`` restarting at 0 for each example and no attention mask.
      transformers reads the restarts: flash-attention-2 runs varlen kernels,
      SDPA/eager build a block-diagonal causal mask (masking_utils
      ``find_packed_sequence_indices``), so attention never crosses examples.
      The first label of each example is forced to IGNORE_INDEX so no example
      is trained to predict the next one's first token. ``use_cache=False`` is
      part of the batch: transformers only looks for packed position ids when
      no KV cache is passed.
    - ``packing=False``: right-pad to the longest row (optionally a multiple of
      ``pad_to_multiple_of``); labels padded with IGNORE_INDEX. No KV cache either
      (training needs none).
    """

    def __init__(self, pad_token_id: int, packing: bool = True, pad_to_multiple_of: int | None = None):
        self.pad_token_id, self.packing, self.multiple = pad_token_id, packing, pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        if features and "examples" in features[0]:  # token-budget batches (see token_batches)
            features = [ex for f in features for ex in f["examples"]]
        return self.pack(features) if self.packing else self.pad(features)

    @staticmethod
    def pack(features: list[dict]) -> dict:
        import torch

        ids, labels, pos = [], [], []
        for f in features:
            ids += list(f["input_ids"])
            labels += [IGNORE_INDEX] + list(f["labels"])[1:]
            pos += range(len(f["input_ids"]))
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([pos]), "use_cache": False}

    def pad(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        ids, labels, mask = [], [], []
        for f in features:
            n = len(f["input_ids"])
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * (width - n))
            labels.append(list(f["labels"]) + [IGNORE_INDEX] * (width - n))
            mask.append([1] * n + [0] * (width - n))
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask), "use_cache": False}


def token_batches(lengths: list[int], max_tokens: int, seed: int = 42, packing: bool = True) -> list[list[int]]:
    """Group example indices into micro-batches of at most ``max_tokens`` tokens (``--max-batch-tokens``).

    Packed: the examples in a seeded random order, each batch filled until the next
    example would not fit. Padded: sorted by length, so that rows x longest row stays
    within the budget, then the batches are shuffled. An example longer than the
    budget is a batch on its own. Deterministic for a seed (resume needs the same batches).
    """
    import random

    order = list(range(len(lengths)))
    rng = random.Random(seed)
    if packing:
        rng.shuffle(order)
    else:
        order.sort(key=lambda i: (lengths[i], i))
    batches, cur, cur_sum, cur_max = [], [], 0, 0
    for i in order:
        n = lengths[i]
        cost = cur_sum + n if packing else (len(cur) + 1) * max(cur_max, n)
        if cur and cost > max_tokens:
            batches.append(cur)
            cur, cur_sum, cur_max = [], 0, 0
        cur.append(i)
        cur_sum, cur_max = cur_sum + n, max(cur_max, n)
    if cur:
        batches.append(cur)
    if not packing:
        rng.shuffle(batches)
    return batches


def group_examples(examples: list[dict], max_tokens: int, seed: int, packing: bool) -> list[dict]:
    """The dataset items of token-budget batching: one item per micro-batch, ``{"examples": [...]}``."""
    batches = token_batches([len(e["input_ids"]) for e in examples], max_tokens, seed, packing)
    return [{"examples": [examples[i] for i in b]} for b in batches]


def count_tokens(examples: list[dict]) -> tuple[int, int]:
    """(all tokens, response tokens that carry loss)."""
    total = sum(len(e["input_ids"]) for e in examples)
    trained = sum(sum(1 for t in e["labels"] if t != IGNORE_INDEX) for e in examples)
    return total, trained
