"""`train`: the training stage's command."""
from __future__ import annotations

import click

from .options import columns_option

@click.command("train")
@click.option("--data", required=True, type=click.Path(),
              help="Training rows (JSON, JSONL, .gz or Parquet): Alpaca, Self-Instruct tasks, chat 'messages', "
                   "ShareGPT 'conversations' or {prompt, completion} rows; or a `generate` folder or an "
                   "`export --format hf` folder.")
@click.option("--model", default=None,
              help="Base model: embedded (default, Gemma 3 270M), smollm2, a local folder or a cached hub id.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder (must be empty unless --resume): final model, checkpoints/, metrics, plot.")
@click.option("--epochs", default=3.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Passes over the training rows.")
@click.option("--max-steps", default=None, type=click.IntRange(min=1),
              help="Stop after this many optimizer steps (overrides --epochs).")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Examples per process (per GPU) per micro-batch (packed into one row with --packing); "
                   "the optimizer step sees batch-size x processes x grad-accum examples.")
@click.option("--max-batch-tokens", default=None, type=click.IntRange(min=0),
              help="Batch by tokens: up to N tokens per process per micro-batch (default 16384 on GPU; "
                   "0 = --batch-size examples, the CPU default).")
@click.option("--grad-accum", default=1, show_default=True, type=click.IntRange(min=1),
              help="Micro-batches per optimizer step.")
@click.option("--lr", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate (AdamW, cosine decay). Default: 2e-5, or 2e-4 with --lora.")
@click.option("--warmup-ratio", default=0.03, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Fraction of the steps with linear warmup.")
@click.option("--weight-decay", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="AdamW weight decay.")
@click.option("--max-length", default=1024, show_default=True, type=click.IntRange(min=8),
              help="Tokens per example; the response is cut first, rows with no response left are dropped.")
@click.option("--val-fraction", default=0.05, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Held-out rows for validation loss (deterministic hash split; 0 = none).")
@click.option("--template", default="alpaca", show_default=True, type=click.Choice(["alpaca", "chat"]),
              help="Prompt format: the Alpaca template, or the model's own chat template.")
@click.option("--packing/--no-packing", default=True, show_default=True,
              help="Pack each batch padding-free (position ids restart per example; attention never crosses "
                   "examples); --no-packing pads length-grouped batches.")
@click.option("--lora", default=0, show_default=True, type=click.IntRange(min=0), metavar="R",
              help="Train LoRA adapters of rank R on every linear layer but the LM head (PEFT: pip install "
                   "'selfinstruct[lora]') and save the merged model; 0 = full fine-tuning.")
@click.option("--lora-alpha", default=None, type=click.IntRange(min=1), help="LoRA alpha. Default: 2 * R.")
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations to save memory.")
@click.option("--seed", default=42, show_default=True, type=int, help="Seed for init, data order and the split.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint (same command, same options).")
@click.option("--eval-steps", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Validate every N steps (a value < 1 is a fraction of all steps); the best checkpoint is kept.")
@click.option("--save-steps", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Checkpoint every N steps (< 1: fraction); default: --eval-steps.")
@click.option("--save-total-limit", default=2, show_default=True, type=click.IntRange(min=0),
              help="Checkpoints kept in OUT/checkpoints; the best by validation loss is always among them "
                   "(2: the best and the last; 0: all).")
@click.option("--save-dtype", default="auto", show_default=True, type=click.Choice(["auto", "bfloat16", "float32"]),
              help="The final model's weights: auto = bfloat16 where training ran in bf16 (half the size), "
                   "else float32; float32 keeps the fp32 master weights.")
@click.option("--logging-steps", default=10, show_default=True, type=click.IntRange(min=1),
              help="Log loss, learning rate and tokens/s every N steps (metrics.jsonl).")
@click.option("--skip-invalid", is_flag=True, help="Skip (and report) invalid rows instead of stopping.")
@columns_option
@click.option("--trust-remote-code", is_flag=True, help="Allow custom model code from the model folder.")
@click.option("--attn", default="auto", show_default=True,
              type=click.Choice(["auto", "flash_attention_2", "flex_attention", "sdpa", "eager"]),
              help="Attention kernel; auto: flash-attention varlen if installed, else flex attention "
                   "(GPU), else SDPA with a block-diagonal mask. The choice is printed.")
@click.option("--report-to", default="none", show_default=True,
              help="Also log to: tensorboard (events in OUT/tensorboard), wandb, mlflow or trackio; "
                   "comma-separated; none = only metrics.jsonl and loss.png.")
def train_cmd(**kw):
    """Fine-tune every parameter of a causal LM on instruction data (loss on responses only)."""
    from ..training.processes import is_rank_zero
    from ..training.train import TrainOptions, train

    s = train(TrainOptions(**kw))
    if not is_rank_zero():  # under torchrun / accelerate launch: rank 0 reports the run
        return
    best = f", best validation loss {s['best_eval_loss']:.4f}" if s["best_eval_loss"] is not None else ""
    click.echo(f"trained {s['step']} steps, train loss {s['train_loss']:.4f}{best}; "
               f"dropped {s['dropped_truncated_train'] + s['dropped_truncated_val']} truncated rows, "
               f"skipped {s['skipped_invalid']} invalid; model in {s['out']}")
