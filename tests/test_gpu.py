"""The GPU path of `train`: packed-row attention kernels, the chunked loss under bf16, memory at the defaults.

Marked ``gpu`` and skipped without CUDA; ``bench/gpu_check.sh`` runs them on a GPU machine.
"""
import json

import pytest
import torch
from click.testing import CliRunner

from selfinstruct.training.examples import Collator, encode_rows
from selfinstruct.training.loss import use_chunked_loss
from selfinstruct.training.sft import attention_candidates
from tiny import make_tiny_model_dir, make_tokenizer, tiny_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

ROWS = [{"instruction": "What is the capital of France?", "input": "", "output": "Paris."},
        {"instruction": "List primes.", "input": "up to 11", "output": "2, 3, 5, 7, 11"},
        {"instruction": "Translate to Spanish.", "input": "Hello, how are you?", "output": "Hola, como estas?"},
        {"instruction": "Give three tips for staying healthy.", "input": "",
         "output": "Eat a balanced diet, exercise regularly and sleep well."}]


def kernels():
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return attention_candidates("auto", torch.cuda.is_available(), bf16) if torch.cuda.is_available() else []


@pytest.mark.parametrize("attn", ["flash_attention_2", "flex_attention", "sdpa"])
def test_packed_rows_do_not_attend_across_examples(attn):
    from transformers import AutoModelForCausalLM

    if attn not in kernels():
        pytest.skip(f"{attn} is not available here")
    tok = make_tokenizer()
    torch.manual_seed(0)
    dtype = torch.bfloat16 if attn == "flash_attention_2" else torch.float32
    config = tiny_config(len(tok), hidden=128, heads=4, kv_heads=2, intermediate=256)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn, dtype=dtype).cuda().eval()
    examples, _ = encode_rows(ROWS * 8, tok)  # 32 examples in one packed row
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in Collator(0, packing=True)(examples).items()}
    tol = 3e-2 if dtype == torch.bfloat16 else 1e-4
    with torch.no_grad():
        packed = model(**batch)
        total, n, start = 0.0, 0, 0
        for ex in examples:
            ids = torch.tensor([ex["input_ids"]], device="cuda")
            solo = model(input_ids=ids, labels=torch.tensor([ex["labels"]], device="cuda"), use_cache=False)
            m = len(ex["input_ids"])
            assert torch.allclose(packed.logits[0, start:start + m].float(), solo.logits[0].float(),
                                  atol=tol, rtol=tol), f"example at {start} sees another example ({attn})"
            k = sum(t != -100 for t in ex["labels"][1:])
            total, n, start = total + solo.loss.item() * k, n + k, start + m
    assert packed.loss.item() == pytest.approx(total / n, abs=tol)


def test_chunked_loss_matches_plain_loss_under_bf16_autocast():
    import copy

    from transformers import AutoModelForCausalLM

    tok = make_tokenizer()
    torch.manual_seed(0)
    ref = AutoModelForCausalLM.from_config(tiny_config(len(tok), hidden=128, intermediate=256),
                                           attn_implementation="sdpa").cuda()
    model = copy.deepcopy(ref)
    assert use_chunked_loss(model)
    examples, _ = encode_rows(ROWS * 4, tok)
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in Collator(0, packing=True)(examples).items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        a, b = ref(**batch).loss, model(**batch).loss
    a.backward()
    b.backward()
    assert b.item() == pytest.approx(a.item(), rel=1e-2)
    grads = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        cos = torch.nn.functional.cosine_similarity(p.grad.flatten().float(), grads[name].grad.flatten().float(), 0)
        assert cos > 0.99, name


def test_no_logits_tensor_at_16k_tokens_with_gemma_vocabulary():
    """The default GPU batch (16,384 tokens) with Gemma's 262,144-token vocabulary: fp32 logits alone would be
    17 GB (and as much again for their gradient); the chunked loss keeps the step to a few GB."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_config(262144, hidden=640, layers=2, heads=4, kv_heads=1, intermediate=1024)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=kernels()[0]).cuda()
    assert use_chunked_loss(model)
    lengths = [64] * 256  # 16,384 tokens, 256 examples
    ids = torch.randint(4, 262144, (1, sum(lengths)), device="cuda")
    pos = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0).cuda()
    labels = ids.clone()
    labels[pos < 32] = -100  # prompts
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, position_ids=pos, labels=labels, use_cache=False).loss
    loss.backward()
    peak = torch.cuda.max_memory_allocated() - base
    assert torch.isfinite(loss) and peak < 8 * 2**30, f"peak {peak / 2**30:.1f} GiB over the weights"


def test_train_on_gpu_defaults(tmp_path):
    from selfinstruct.cli import main

    base = make_tiny_model_dir(tmp_path / "base")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({**r, "output": r["output"] + f" ({i})"}) + "\n"
                            for i, r in enumerate(ROWS * 10)))
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(base), "--out", str(out),
                                    "--max-steps", "3", "--val-fraction", "0.1", "--eval-steps", "3"])
    assert res.exit_code == 0, res.output
    assert f"attention: {kernels()[0]}" in res.output and "batches: up to 16384 tokens" in res.output
    assert (out / "model.safetensors").is_file()
