"""Causal-LM cross-entropy over the LM head in chunks: no tokens x vocabulary logits tensor.

transformers computes ``logits = lm_head(hidden)`` for every token, then the loss:
16K tokens x Gemma's 262,144-token vocabulary is 17 GB of fp32 logits, plus as much
again for their gradient. Here the loss is computed a chunk of tokens at a time and
the gradients of the hidden states and of the head's weight are computed in the
same pass (the approach of Liger's fused linear cross-entropy, in plain PyTorch so
it also runs on CPU). Only positions with a target are computed at all, so prompt and
padding tokens never reach the head. Loss and gradients equal transformers'
``ForCausalLMLoss`` (tests/test_loss.py).

Memory: no tokens x vocabulary tensor, but not free either. Between the forward and
the backward pass the loss keeps the head's weight gradient in fp32 (vocabulary x
hidden: 640 MiB for Gemma 3 270M) and the hidden states' gradient (target tokens x
hidden, growing with the batch); the backward pass scales the first into a second
tensor of that size, the weight's ``.grad``. While the forward runs there is one chunk
of fp32 logits (``CHUNK_ELEMENTS``: 128 MiB; the softmax overwrites it) and a few
temporaries of up to its size (the bf16 matmul result and gradient under autocast, the
softcap's tanh). Under bf16 autocast there is more: a bf16 copy of the head's weight
(320 MiB for Gemma 3 270M) and of the hidden states, made on every forward, and each
chunk's weight gradient is made as a bf16 vocabulary x hidden tensor and an fp32 copy
of it (320 + 640 MiB) before it is added. Measured peaks: docs/benchmarks.md,
"chunked LM-head loss".

:func:`use_chunked_loss` swaps a model's ``forward`` for one that returns this loss
(and no logits) whenever labels are given; without labels the original forward runs.
It runs inside the model's own ``forward`` call, so FSDP's hooks gather the head's
weight as they would for the plain forward.
"""
from __future__ import annotations

import types

import torch

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 1 << 25  # logits per chunk: 32M (128 MB in fp32); 128 tokens of Gemma's vocabulary


def chunk_tokens(vocab_size: int) -> int:
    return max(1, CHUNK_ELEMENTS // vocab_size)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _chunked(hidden, weight, targets, softcap, chunk, want_h: bool, want_w: bool):
    """(sum of the losses, d sum / d hidden, d sum / d weight), one chunk of logits at a time."""
    dt = _compute_dtype(hidden)
    with torch.autocast(hidden.device.type, enabled=False):
        h, w = hidden.to(dt), weight.to(dt)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(h) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
        rows = torch.arange(min(chunk, h.shape[0]), device=h.device)
        for start in range(0, h.shape[0], chunk):
            hc, y = h[start:start + chunk], targets[start:start + chunk]
            r = rows[: len(y)]
            z = (hc @ w.T).float()  # [c, V]
            if softcap:
                t = torch.tanh(z / softcap)
                z = t * softcap
            lse = torch.logsumexp(z, dim=-1)
            total += (lse - z[r, y]).sum()
            if not (want_h or want_w):
                continue
            g = z.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            g[r, y] -= 1
            if softcap:
                g.mul_(1 - t * t)
            g = g.to(dt)
            if want_h:
                grad_h[start:start + chunk] = g @ w
            if want_w:
                grad_w += (g.T @ hc).float()
    return total, grad_h, grad_w


class LinearCrossEntropy(torch.autograd.Function):
    """sum over rows of CE(softcap(hidden @ weight.T), target) / denom, with the gradients computed
    chunk by chunk in the forward pass (so no logits survive it). Every target is a valid class."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, denom, softcap, chunk):
        total, grad_h, grad_w = _chunked(hidden, weight, targets, softcap, chunk,
                                         ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        empty = torch.empty(0)
        ctx.save_for_backward(empty if grad_h is None else grad_h, empty if grad_w is None else grad_w, denom)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total / denom

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w, denom = ctx.saved_tensors
        scale = grad_out / denom
        gh = (grad_h * scale).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        gw = (grad_w * scale).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return gh, gw, None, None, None, None


def causal_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                   num_items_in_batch=None, softcap: float | None = None, chunk: int | None = None) -> torch.Tensor:
    """transformers' ForCausalLMLoss (shift by one, ignore -100, mean or sum / num_items_in_batch)
    from the last hidden states and the head's weight, without materialising the logits."""
    targets = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1)
    keep = (targets != IGNORE_INDEX).nonzero().squeeze(1)
    hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep.to(hidden.device))
    targets = targets[keep].to(hidden.device)
    if num_items_in_batch is None:
        denom = torch.tensor(float(len(keep)), device=hidden.device)
    else:
        denom = torch.as_tensor(num_items_in_batch, device=hidden.device).float()
    chunk = chunk or chunk_tokens(weight.shape[0])
    if not torch.is_grad_enabled():  # evaluation: the loss only
        return _chunked(hidden, weight, targets, softcap, chunk, False, False)[0] / denom
    return LinearCrossEntropy.apply(hidden, weight, targets, denom, softcap or None, chunk)


def use_chunked_loss(model) -> bool:
    """Make ``model(**batch, labels=...)`` return the chunked loss and no logits. False (model unchanged)
    when the model is not a plain decoder + bias-free linear head."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    from ..models import decoder_and_head

    parts = decoder_and_head(model)
    if parts is None:
        return False
    original = model.forward
    softcap = parts[2]

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, labels=None, num_items_in_batch=None,
                **kwargs):
        if labels is None:
            return original(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            **kwargs)
        kwargs.pop("logits_to_keep", None)
        decoder = getattr(self, self.base_model_prefix)
        out = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        loss = causal_lm_loss(out[0], self.get_output_embeddings().weight, labels, num_items_in_batch, softcap)
        return CausalLMOutputWithPast(loss=loss)

    # a bound method, as accelerate expects when it wraps forward for mixed precision
    model.forward = types.MethodType(forward, model)
    return True
