"""The chunked LM-head loss equals transformers' plain loss: value and every gradient (CPU, tiny models)."""
import copy

import pytest
import torch
from transformers.loss.loss_utils import ForCausalLMLoss

from selfinstruct.training.examples import Collator, encode_rows
from selfinstruct.training.loss import causal_lm_loss, use_chunked_loss
from tiny import make_tokenizer, tiny_config

ROWS = [{"instruction": "What is the capital of France?", "input": "", "output": "Paris."},
        {"instruction": "List primes.", "input": "up to 11", "output": "2, 3, 5, 7, 11"},
        {"instruction": "Translate to Spanish.", "input": "Hello, how are you?", "output": "Hola, como estas?"}]


def plain(hidden, weight, labels, n=None, softcap=None):
    logits = hidden @ weight.T
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return ForCausalLMLoss(logits, labels, weight.shape[0], num_items_in_batch=n)


@pytest.mark.parametrize("softcap", [None, 5.0])
@pytest.mark.parametrize("n_items", [None, 37])
@pytest.mark.parametrize("chunk", [1, 7, None])
def test_loss_and_gradients_equal_the_plain_loss(softcap, n_items, chunk):
    torch.manual_seed(0)
    hidden = torch.randn(3, 20, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    labels = torch.randint(0, 50, (3, 20))
    labels[0, :5] = -100  # a prompt
    labels[2, 12:] = -100  # padding
    ref = plain(hidden, weight, labels, n_items, softcap)
    ref_gh, ref_gw = torch.autograd.grad(ref, (hidden, weight))
    got = causal_lm_loss(hidden, weight, labels, n_items, softcap, chunk)
    gh, gw = torch.autograd.grad(got * 1.0, (hidden, weight))
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-6)
    assert torch.allclose(gh, ref_gh, atol=1e-6) and torch.allclose(gw, ref_gw, atol=1e-6)
    assert gh[0, :4].abs().sum() == 0  # positions with no target get no gradient
    with torch.no_grad():  # evaluation path
        assert torch.allclose(causal_lm_loss(hidden, weight, labels, n_items, softcap, chunk), ref, atol=1e-5)


def test_gradient_scales_with_the_outer_graph():
    torch.manual_seed(1)
    hidden = torch.randn(1, 9, 8, requires_grad=True)
    weight = torch.randn(30, 8, requires_grad=True)
    labels = torch.randint(0, 30, (1, 9))
    (g1,) = torch.autograd.grad(3.0 * plain(hidden, weight, labels), hidden)
    (g2,) = torch.autograd.grad(3.0 * causal_lm_loss(hidden, weight, labels, chunk=4), hidden)
    assert torch.allclose(g1, g2, atol=1e-6)


def gemma3_config(vocab_size, softcap):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=1, head_dim=8, sliding_window=6,
                            layer_types=["sliding_attention", "full_attention"], pad_token_id=0,
                            final_logit_softcapping=softcap)


@pytest.mark.parametrize("arch", ["llama", "gemma3-softcap"])
@pytest.mark.parametrize("packing", [True, False])
def test_model_with_chunked_loss_equals_the_plain_model(arch, packing):
    from transformers import AutoModelForCausalLM

    tok = make_tokenizer()
    torch.manual_seed(0)
    config = tiny_config(len(tok)) if arch == "llama" else gemma3_config(len(tok), 30.0)
    ref = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = copy.deepcopy(ref)
    assert use_chunked_loss(model)
    examples, _ = encode_rows(ROWS, tok)
    batch = Collator(0, packing=packing)(examples)
    n_items = (batch["labels"][:, 1:] != -100).sum()
    out_ref = ref(**batch, num_items_in_batch=n_items)
    out = model(**batch, num_items_in_batch=n_items)
    assert out.logits is None and out_ref.logits.shape[-1] == len(tok)  # no tokens x vocab tensor
    assert torch.allclose(out.loss, out_ref.loss, atol=1e-6)
    out_ref.loss.backward()
    out.loss.backward()
    grads = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        assert torch.allclose(grads[name].grad, p.grad, atol=1e-6, rtol=1e-4), name
    # without labels the model's own forward runs (generation, eval scoring)
    with torch.no_grad():
        assert torch.equal(model(input_ids=batch["input_ids"][:, :5]).logits,
                           ref(input_ids=batch["input_ids"][:, :5]).logits)
