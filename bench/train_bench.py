"""Fine-tuning throughput: `selfinstruct train` vs the tutorial recipe vs TRL's SFTTrainer, same data and model.

- **baseline** (the common tutorial): HF Trainer, text = Alpaca prompt + response + EOS,
  ``padding="max_length"`` at 512, labels = input ids with the padding set to -100
  (so it also trains on the prompt), batch 4.
- **ours**: `selfinstruct.training.train.train` (response-only labels, padding-free packing, chunked
  LM-head loss; on GPU, batches of ``--max-batch-tokens`` tokens, 16,384 by default).
- **trl** (when ``trl`` imports): ``SFTTrainer`` on prompt/completion rows, completion-only
  loss, padding-free; with a token budget, packing (BFD) into one row of that many tokens a step
  (as ours), else ``--batch-size`` examples a step; the same attention kernel as ours.

Each side runs in its own subprocess and reports real (non-pad) tokens per second, over the
whole run and in steady state (after the first steps, which include compilation), peak memory,
and on CUDA the MFU: tokens/s x (6 N + 12 L H Q T) / the device's dense bf16 peak, N = the
matmul parameters (LM head included), T = the mean example length (512 for the padded baseline).
Our head computes only response tokens, so by this standard formula our MFU counts work skipped.

    python bench/train_bench.py                          # CPU row (small random Llama)
    python bench/train_bench.py --device cuda --out f.json   # Qwen2.5-0.5B-shaped random model, bf16

Data: the first ``--examples`` rows of ../shared/data/instruction-data.json (Alpaca-style), or,
where that file is absent, the package's seed tasks repeated with numbered variants. The tokenizer
is a byte-level BPE (--vocab) trained offline on the same texts.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
DATA = next((p for p in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if p.exists()), None)
# dense bf16 FLOP/s by device name (no sparsity)
PEAKS = [("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12)]


def bench_rows(n: int) -> list[dict]:
    if DATA is not None and (DATA / "instruction-data.json").exists():
        return json.loads((DATA / "instruction-data.json").read_text())[:n]
    from selfinstruct.data.records import read_examples

    seeds = [{k: r[k] for k in ("instruction", "input", "output")}
             for r in read_examples(ROOT / "seeds" / "seed_tasks.jsonl")]
    return [{**seeds[i % len(seeds)], "instruction": f"{seeds[i % len(seeds)]['instruction']} (variant {i})"}
            for i in range(n)]


def build_model_dir(path: Path, device: str, vocab: int, rows: list[dict]) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    from tiny import make_tokenizer, tiny_config

    texts = [f"{r['instruction']}\n{r.get('input', '')}\n{r['output']}" for r in rows]
    tok = make_tokenizer(vocab_size=vocab, corpus=texts, chat_template=False)
    if device == "cuda":  # Qwen2.5-0.5B shape
        cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                          num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                          tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    else:
        cfg = tiny_config(len(tok), hidden=256, layers=4, heads=4, kv_heads=4, intermediate=1024)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- the sides (child processes)


def clock():
    """A Trainer callback: (seconds, tokens seen) at the end of every optimizer step."""
    import torch
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_train_begin(self, args, state, control, **kw):
            self.marks.append((time.perf_counter(), 0))

        def on_step_end(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    return Clock()


def summary(marks: list, real_tokens: int, train_s: float) -> dict:
    import torch

    steps = len(marks) - 1
    warm = 3 if steps >= 8 else 1 if steps >= 3 else 0
    (t0, n0), (t1, n1) = marks[warm], marks[-1]
    out = {"real_tokens": real_tokens, "train_s": round(train_s, 2), "steps": steps,
           "tokens_per_s": round(real_tokens / train_s, 1),
           "steady_tokens_per_s": round((n1 - n0) / (t1 - t0), 1) if t1 > t0 and n1 > n0 else None,
           "steady_after_steps": warm}
    if torch.cuda.is_available():
        out["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    else:
        out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def run_ours(a) -> dict:
    from selfinstruct.training.train import TrainOptions, train

    c = clock()
    t = time.perf_counter()
    s = train(TrainOptions(data=a.data, model=a.model_dir, out=a.out, epochs=1, batch_size=a.batch_size,
                           max_batch_tokens=a.max_batch_tokens, attn=a.attn, lr=2e-5, max_length=512,
                           val_fraction=0.0, save_steps=10**9, logging_steps=10**6, seed=42),
              callbacks=[c], echo=lambda *m: print(*m, file=sys.stderr))
    return summary(c.marks, s["train_tokens"], time.perf_counter() - t)


def run_baseline(a) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, default_data_collator

    from selfinstruct.data.formatting import format_example
    from selfinstruct.data.records import read_examples

    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    rows = read_examples(a.data)
    texts = ["".join(format_example(r)) + tok.eos_token for r in rows]
    enc = tok(texts, padding="max_length", max_length=512, truncation=True)
    data = []
    for ids, mask in zip(enc["input_ids"], enc["attention_mask"]):
        labels = [i if m else -100 for i, m in zip(ids, mask)]
        data.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
    args = TrainingArguments(output_dir=a.out, num_train_epochs=1, per_device_train_batch_size=a.batch_size,
                             max_steps=a.baseline_steps or -1, learning_rate=2e-5, lr_scheduler_type="cosine",
                             warmup_steps=0.03, bf16=cuda, save_strategy="no", report_to="none",
                             logging_steps=10**6, seed=42, disable_tqdm=True,
                             include_num_input_tokens_seen="non_padding")
    c = clock()
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator,
                      callbacks=[c])
    trainer.train()
    trainer.save_model(a.out)
    return summary(c.marks, trainer.state.num_input_tokens_seen, time.perf_counter() - t)


def run_trl(a) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from selfinstruct.data.formatting import format_example
    from selfinstruct.data.records import read_examples
    from selfinstruct.training.sft import attention_candidates

    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    rows = [dict(zip(("prompt", "completion"), format_example(r))) for r in read_examples(a.data)]
    cuda = torch.cuda.is_available()
    attn = a.attn if a.attn != "auto" else attention_candidates("auto", cuda, cuda)[0]
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32, attn_implementation=attn)
    # token budget: packed rows of max_batch_tokens, one per step (as ours); else batch_size examples a step
    by_tokens = bool(a.max_batch_tokens)
    cfg = SFTConfig(output_dir=a.out, num_train_epochs=1, per_device_train_batch_size=1 if by_tokens
                    else a.batch_size, learning_rate=2e-5, lr_scheduler_type="cosine", warmup_steps=0.03,
                    bf16=cuda, save_strategy="no", report_to="none", logging_steps=10**6, seed=42,
                    disable_tqdm=True, packing=by_tokens, padding_free=True,
                    max_length=a.max_batch_tokens if by_tokens else 512,
                    completion_only_loss=True, include_num_input_tokens_seen="non_padding")
    c = clock()
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         callbacks=[c])
    trainer.train()
    trainer.save_model(a.out)
    out = summary(c.marks, trainer.state.num_input_tokens_seen, time.perf_counter() - t)
    return {**out, "attn": attn, "trl_version": __import__("trl").__version__}


# --------------------------------------------------------------------------- driver


def matmul_params(model_dir: str) -> int:
    """Parameters that take part in a matmul per token: every linear layer, and the LM head once."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def device_peak() -> tuple[str, float | None]:
    import torch

    name = torch.cuda.get_device_name()
    return name, next((peak for key, peak in PEAKS if key in name), None)


def mfu(tokens_per_s: float, model_dir: str, seq: float, peak: float) -> float:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    flops_per_token = 6 * matmul_params(model_dir) + 12 * c.num_hidden_layers * c.num_attention_heads * head_dim * seq
    return tokens_per_s * flops_per_token / peak


def side(name: str, a, model_dir: Path, data: Path, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--side", name, "--model-dir", str(model_dir), "--data", str(data),
           "--out-dir", str(work / name), "--batch-size", str(a.batch_size), "--attn", a.attn,
           "--max-batch-tokens", str(a.max_batch_tokens), "--baseline-steps", str(a.baseline_steps)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.side_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {a.side_timeout} s"}
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        print(f"{name} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{name}: {res}", file=sys.stderr)
    return {**res, "process_s": round(wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--examples", type=int, default=None, help="default: 256 on CPU, 4096 on CUDA")
    p.add_argument("--batch-size", type=int, default=4, help="examples per step (baseline; ours on CPU)")
    p.add_argument("--max-batch-tokens", type=int, default=None,
                   help="ours and TRL: tokens per step (default: 0 = --batch-size examples on CPU, 16384 on CUDA)")
    p.add_argument("--baseline-steps", type=int, default=None, help="cap the baseline's steps (default: 200 on CUDA)")
    p.add_argument("--attn", default="auto", help="ours and TRL: attention kernel (auto = what train picks)")
    p.add_argument("--sides", default="baseline,ours,trl", help="comma-separated; trl is skipped if not installed")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--side-timeout", type=int, default=1800, help="seconds per side")
    p.add_argument("--out", dest="result", default=None, help="also write the JSON result here")
    p.add_argument("--side", choices=["ours", "baseline", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out-dir", dest="out", help=argparse.SUPPRESS)
    a, _ = p.parse_known_args()
    if a.side:  # child process: --out is its work folder
        a.max_batch_tokens = a.max_batch_tokens or 0
        a.baseline_steps = a.baseline_steps or 0
        print(json.dumps({"ours": run_ours, "baseline": run_baseline, "trl": run_trl}[a.side](a)))
        return
    cuda = a.device == "cuda"
    a.examples = a.examples or (4096 if cuda else 256)
    a.max_batch_tokens = a.max_batch_tokens if a.max_batch_tokens is not None else (16384 if cuda else 0)
    a.baseline_steps = a.baseline_steps if a.baseline_steps is not None else (200 if cuda else 0)
    sides = a.sides.split(",")
    if "trl" in sides:
        import importlib.util

        if not (importlib.util.find_spec("trl") and importlib.util.find_spec("datasets")):
            print("trl or datasets not installed: the TRL side is skipped", file=sys.stderr)
            sides.remove("trl")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = bench_rows(a.examples)
        data = work / "data.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        model_dir = build_model_dir(work / "model", a.device, a.vocab, rows)
        result = {"device": a.device, "examples": len(rows), "data": "instruction-data.json" if DATA else "seeds",
                  "batch_size": a.batch_size, "max_batch_tokens": a.max_batch_tokens,
                  "baseline_steps": a.baseline_steps, "vocab": a.vocab, "load_avg": os.getloadavg()}
        if cuda:
            result["device_name"], peak = device_peak()
            result["peak_flops"] = peak
            result["matmul_params"] = matmul_params(str(model_dir))
        for name in sides:
            res = side(name, a, model_dir, data, work)
            if cuda and peak and res.get("steady_tokens_per_s"):
                seq = 512 if name == "baseline" else res["real_tokens"] / max(1, len(rows))
                res["mfu"] = round(mfu(res["steady_tokens_per_s"], str(model_dir), seq, peak), 4)
            result[name] = res
            if a.result:  # written after every side, so a later timeout keeps what was measured
                Path(a.result).write_text(json.dumps(result, indent=2))
        if "tokens_per_s" in result.get("ours", {}) and "tokens_per_s" in result.get("baseline", {}):
            result["tokens_per_s_ratio"] = round(result["ours"]["tokens_per_s"] / result["baseline"]["tokens_per_s"], 2)
        if "steady_tokens_per_s" in result.get("trl", {}) and result.get("ours", {}).get("steady_tokens_per_s"):
            result["ours_vs_trl_steady"] = round(result["ours"]["steady_tokens_per_s"]
                                                 / result["trl"]["steady_tokens_per_s"], 2)
        if a.result:
            Path(a.result).write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
