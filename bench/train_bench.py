"""Fine-tuning throughput: `selfinstruct train` vs the tutorial recipe, same data/model/examples.

Baseline (the common tutorial): HF Trainer, text = Alpaca prompt + response + EOS,
``padding="max_length"`` at 512, labels = input ids with the padding set to -100
(so it also trains on the prompt). Ours: `selfinstruct.train.train` (response-only
labels, padding-free packing). Each side runs in its own subprocess; we report
real (non-pad) tokens per second of training and the whole-process wall time.

    python bench/train_bench.py                      # CPU row (small random Llama)
    python bench/train_bench.py --device cuda        # H100 row (0.5B Qwen2-shaped random model, bf16, MFU)

The model is random-init from a config with the tokenizer's vocabulary: a byte-level
BPE (--vocab, default 32,000) trained offline on the Alpaca and T0 prompts in
../shared/data. Both sides see the same 256 examples, 1 epoch, batch 4.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
DATA = ROOT.parent / "shared" / "data"
PEAK = {"sxm": 989e12, "pcie": 756e12}  # H100 dense bf16 FLOP/s


def corpus(limit: int = 20000) -> list[str]:
    rows = json.loads((DATA / "instruction-data.json").read_text())
    texts = [f"{r['instruction']}\n{r.get('input', '')}\n{r['output']}" for r in rows]
    with gzip.open(DATA / "t0_prompts.jsonl.gz", "rt") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            texts.append(json.loads(line)["instruction"])
    return texts


def build_model_dir(path: Path, device: str, vocab: int) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    from tiny import make_tokenizer, tiny_config

    tok = make_tokenizer(vocab_size=vocab, corpus=corpus(), chat_template=False)
    if device == "cuda":  # Qwen2.5-0.5B shape
        cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                          num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                          tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    else:
        cfg = tiny_config(len(tok), hidden=256, layers=4, heads=4, kv_heads=4, intermediate=1024)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- the two sides (child processes)


def run_ours(a) -> dict:
    from selfinstruct.train import TrainOptions, train

    t = time.perf_counter()
    s = train(TrainOptions(data=a.data, model=a.model_dir, out=a.out, epochs=1, batch_size=a.batch_size,
                           lr=2e-5, max_length=512, val_fraction=0.0, save_steps=10**9, logging_steps=10**6,
                           seed=42), echo=lambda *_: None)
    train_s = time.perf_counter() - t
    return {"real_tokens": s["train_tokens"], "train_s": train_s, "steps": s["step"]}


def run_baseline(a) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, default_data_collator

    from selfinstruct.formatting import format_example
    from selfinstruct.records import read_examples

    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    rows = read_examples(a.data)
    texts = ["".join(format_example(r)) + tok.eos_token for r in rows]
    enc = tok(texts, padding="max_length", max_length=512, truncation=True)
    data = []
    for ids, mask in zip(enc["input_ids"], enc["attention_mask"]):
        labels = [i if m else -100 for i, m in zip(ids, mask)]
        data.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    real = sum(sum(d["attention_mask"]) for d in data)
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
    args = TrainingArguments(output_dir=a.out, num_train_epochs=1, per_device_train_batch_size=a.batch_size,
                             learning_rate=2e-5, lr_scheduler_type="cosine", warmup_steps=0.03,
                             bf16=cuda, save_strategy="no", report_to="none", logging_steps=10**6,
                             seed=42, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator)
    trainer.train()
    trainer.save_model(a.out)
    return {"real_tokens": real, "train_s": time.perf_counter() - t, "steps": trainer.state.global_step}


# --------------------------------------------------------------------------- driver


def mfu(tokens_per_s: float, model_dir: str, seq: float) -> float:
    import torch
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    n = (c.vocab_size * c.hidden_size + c.num_hidden_layers * (
        4 * c.hidden_size * c.hidden_size + 3 * c.hidden_size * c.intermediate_size))  # approx N
    head_dim = c.hidden_size // c.num_attention_heads
    flops_per_token = 6 * n + 12 * c.num_hidden_layers * c.num_attention_heads * head_dim * seq
    peak = PEAK["pcie"] if "PCIe" in torch.cuda.get_device_name() else PEAK["sxm"]
    return tokens_per_s * flops_per_token / peak


def side(name: str, a, model_dir: Path, data: Path, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--side", name, "--model-dir", str(model_dir), "--data", str(data),
           "--out", str(work / name), "--batch-size", str(a.batch_size)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**res, "process_s": round(wall, 1), "tokens_per_s": round(res["real_tokens"] / res["train_s"], 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--examples", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--side", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.side:  # child process
        print(json.dumps((run_ours if a.side == "ours" else run_baseline)(a)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = json.loads((DATA / "instruction-data.json").read_text())[: a.examples]
        data = work / "data.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        model_dir = build_model_dir(work / "model", a.device, a.vocab)
        base = side("baseline", a, model_dir, data, work)
        ours = side("ours", a, model_dir, data, work)
        result = {"device": a.device, "examples": a.examples, "batch_size": a.batch_size, "vocab": a.vocab,
                  "baseline": base, "ours": ours,
                  "tokens_per_s_ratio": round(ours["tokens_per_s"] / base["tokens_per_s"], 2),
                  "process_time_ratio": round(base["process_s"] / ours["process_s"], 2)}
        if a.device == "cuda":
            seq = ours["real_tokens"] / a.examples
            result["mfu_ours"] = round(mfu(ours["tokens_per_s"], str(model_dir), seq), 4)
            result["mfu_baseline"] = round(mfu(base["tokens_per_s"], str(model_dir), 512), 4)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
