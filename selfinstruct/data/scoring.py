"""Per-row scores from a small causal LM: IFD, response perplexity, response length (`selfinstruct select`).

For each row (its prompt and completion from ``formatting.format_example``):

- ``loss_cond``: mean cross-entropy of the response tokens given the prompt, the loss `train` puts on the
  row. The tokens follow ``training/examples.encode_example``: prompt and completion tokenised separately,
  one EOS appended to the response, the pair cut to ``max_length`` (a row whose response is cut entirely
  gets no scores, as `train` drops it).
- ``loss_alone``: mean cross-entropy of the same response tokens with no prompt, after only the tokens the
  tokenizer puts before any text (BOS). Without a BOS the first response token has no context, so it is left
  out of both losses.
- ``ifd``: ``loss_cond / loss_alone``, the instruction-following difficulty of Li et al. 2023 ("From Quantity
  to Quality", arXiv:2308.12032); below 1 the instruction makes the response easier to predict.
- ``ppl``: ``exp(loss_cond)``; ``response_tokens``: how many tokens the losses average over.

Rows are scored in batches: one forward pass for the batch's prompt + response sequences and one for its
response-alone sequences, right-padded with an attention mask. Only response positions reach the LM head, a
chunk at a time (Gemma's head has 262,144 outputs). bf16 autocast runs where the CPU computes bf16.
"""
from __future__ import annotations

import math

from .formatting import adds_special_tokens, format_example, joined_ids

CHUNK_ELEMENTS = 1 << 24  # logits per head chunk (64 MB in fp32)


def encode_pair(prompt: str, completion: str, tokenizer, max_length: int,
                add_special_tokens: bool = True) -> dict | None:
    """The two sequences of one row: ``cond`` (prompt + response) and ``alone`` (prefix + response), each with
    ``start``, the index of its first scored token; None when ``max_length`` cuts the whole response."""
    joined = joined_ids(prompt, completion, tokenizer, max_length, add_special_tokens)
    if joined is None:
        return None
    ids, n_prompt = joined
    response = ids[n_prompt:]
    bos = tokenizer.bos_token_id
    prefix = [t for t in tokenizer("", add_special_tokens=True)["input_ids"] if t == bos][:1]
    skip = 0 if prefix else 1  # no context at all for the first response token: score neither pass on it
    if len(response) <= skip:
        return None
    return {"cond": ids, "cond_start": n_prompt + skip, "alone": prefix + response, "alone_start": len(prefix) + skip}


def head_parts(model, bf16: bool = False):
    """(decoder, head weight, final-logit softcap) of a plain decoder + bias-free linear head, else None;
    the weight cast to bf16 once when ``bf16``."""
    import torch

    from ..models import decoder_and_head

    parts = decoder_and_head(model)
    if parts is None:
        return None
    decoder, head, softcap = parts
    weight = head.weight.detach()
    return decoder, weight.to(torch.bfloat16) if bf16 else weight, softcap


def token_losses(hidden, weight, targets, softcap=None):
    """Cross-entropy of each ``targets[i]`` under ``softcap(hidden[i] @ weight.T)``, a chunk of rows at a time,
    in ``weight``'s dtype (autocast off: the caller casts the head once, not once a chunk)."""
    import torch

    chunk = max(1, CHUNK_ELEMENTS // weight.shape[0])
    out = []
    with torch.autocast(hidden.device.type, enabled=False):
        h = hidden.to(weight.dtype)
        for s in range(0, h.shape[0], chunk):
            z = (h[s:s + chunk] @ weight.T).float()
            if softcap:
                z = torch.tanh(z / softcap) * softcap
            y = targets[s:s + chunk]
            out.append(torch.logsumexp(z, dim=-1) - z.gather(1, y[:, None]).squeeze(1))
    return torch.cat(out) if out else torch.zeros(0)


def mean_losses(model, seqs: list[tuple[list[int], int]], pad_id: int, *, bf16: bool = False,
                head=None) -> list[float]:
    """Mean cross-entropy of tokens ``ids[start:]`` of each ``(ids, start)``, in one forward pass (right-padded).
    ``head``: :func:`head_parts` computed once for many calls (else computed here)."""
    import torch

    device = next(model.parameters()).device
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    rows, pos = [], []
    for b, (ids, start) in enumerate(seqs):
        input_ids[b, :len(ids)] = torch.tensor(ids)
        mask[b, :len(ids)] = 1
        rows += [b] * (len(ids) - start)
        pos += range(start - 1, len(ids) - 1)  # the hidden state at t-1 predicts token t
    rows_t, pos_t = torch.tensor(rows), torch.tensor(pos)
    targets = input_ids[rows_t, pos_t + 1].to(device)
    input_ids, mask = input_ids.to(device), mask.to(device)
    parts = head or head_parts(model, bf16)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if parts is None:  # an unusual head: the model's own logits
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
            z = logits[rows_t.to(device), pos_t.to(device)].float()
            losses = torch.logsumexp(z, dim=-1) - z.gather(1, targets[:, None]).squeeze(1)
        else:
            decoder, weight, softcap = parts
            hidden = decoder(input_ids=input_ids, attention_mask=mask, use_cache=False)[0]
            losses = token_losses(hidden[rows_t.to(device), pos_t.to(device)], weight, targets, softcap)
    sums = torch.zeros(len(seqs), dtype=torch.float64).index_add_(0, rows_t, losses.double().cpu())
    counts = torch.bincount(rows_t, minlength=len(seqs)).double()
    return (sums / counts).tolist()


def row_scores(loss_cond: float, loss_alone: float, n_tokens: int) -> dict:
    ifd = loss_cond / loss_alone if loss_alone > 0 else None
    return {"ifd": ifd, "ppl": math.exp(min(loss_cond, 700.0)), "response_tokens": n_tokens,
            "loss_cond": loss_cond, "loss_alone": loss_alone}


def score_rows(rows: list[dict], model, tokenizer, *, template: str = "alpaca", max_length: int = 1024,
               batch_size: int = 16, bf16: bool = False, progress: bool = False) -> list[dict | None]:
    """One scores dict per row (None: the response was cut entirely by ``max_length``), in row order.

    Rows are batched longest first (little padding, and the largest batch comes first)."""
    from ..teachers.base import progress_bar

    def pair(row):  # special tokens as in training: none for a chat template or a prompt that holds BOS
        prompt, completion = format_example(row, template, tokenizer)
        return encode_pair(prompt, completion, tokenizer, max_length,
                           adds_special_tokens(tokenizer, prompt, template))

    pairs = [pair(r) for r in rows]
    order = sorted((i for i, p in enumerate(pairs) if p is not None), key=lambda i: -len(pairs[i]["cond"]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    out: list[dict | None] = [None] * len(rows)
    head = head_parts(model, bf16)
    with progress_bar(len(order), "scoring" if progress else None, unit="row") as bar:
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            cond = mean_losses(model, [(pairs[i]["cond"], pairs[i]["cond_start"]) for i in idx], pad, bf16=bf16,
                               head=head)
            alone = mean_losses(model, [(pairs[i]["alone"], pairs[i]["alone_start"]) for i in idx], pad, bf16=bf16,
                                head=head)
            for i, lc, la in zip(idx, cond, alone):
                out[i] = row_scores(lc, la, len(pairs[i]["cond"]) - pairs[i]["cond_start"])
            bar.update(len(idx))
    return out


def load_scorer(spec: str | None, *, fp32: bool = False):
    """(model, tokenizer, bf16): the model as `train` loads it (fp32 weights; bf16 autocast where the device
    computes bf16, unless ``fp32``), on the GPU when there is one."""
    import torch

    from ..models import cpu_has_bf16, load_model_and_tokenizer

    cuda = torch.cuda.is_available()
    model, tokenizer = load_model_and_tokenizer(spec, dtype=torch.float32, device="cuda" if cuda else "cpu")
    model.eval()
    bf16 = not fp32 and (torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16())
    return model, tokenizer, bf16
