"""`selfinstruct train`: full-parameter SFT with transformers' Trainer.

One flow (:func:`train`): check the output folder and the data (before any
model loads), split, tokenise with response-only labels, load the model, run
``Trainer`` (fused AdamW, cosine + warmup, clipping 1.0, bf16 where the device computes it), save the final
(best-validation) model as a plain checkpoint at the root of ``out``.
Under torchrun or ``accelerate launch`` every process runs this flow; the Trainer shards the batches
and normalises the loss by all ranks' target tokens, and rank 0 alone writes and prints (``processes``).

Layout of ``out``: the model (config, safetensors, tokenizer, generation config),
``checkpoints/`` (Trainer checkpoints: best and last), ``metrics.jsonl``,
``loss.png``, ``val.jsonl`` (held-out rows) and ``train_args.json``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from . import examples as D
from .final import cast_saved, save_dtype, set_prompt_format
from .lora import add_adapters, default_lr, peft_error, save_merged, trainable_line
from ..data.formatting import TemplateError, check_template
from ..models import ModelError, load_error, resolve_model
from ..data.records import InputError
from ..data.sources import data_file, load_rows
from .processes import is_rank_zero, launch_shortfall, process_state
from .sft import (
    attention_candidates, batch_tokens_default, check_disk, report_callbacks, report_to_error, report_to_list,
)
from ..data.writers import (
    JsonlWriter, OutputError, atomic_write_json, check_out_folder, read_jsonl_lenient, write_jsonl,
)
from .progress import make_callbacks

# options that must match when resuming (same data order and LR schedule)
RESUME_KEYS = ("data_sha256", "model", "epochs", "max_steps", "batch_size", "grad_accum", "lr", "warmup_ratio",
               "weight_decay", "max_length", "val_fraction", "template", "packing", "seed", "max_batch_tokens",
               "columns", "lora", "lora_alpha")


@dataclasses.dataclass
class TrainOptions:
    data: str
    out: str
    model: str | None = None
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-5
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_length: int = 1024
    val_fraction: float = 0.05
    template: str = "alpaca"
    packing: bool = True
    gradient_checkpointing: bool = False
    seed: int = 42
    resume: bool = False
    eval_steps: float = 0.1  # < 1: a fraction of the total steps
    save_steps: float | None = None  # default: eval_steps (the best checkpoint needs them aligned)
    logging_steps: int = 10
    skip_invalid: bool = False
    trust_remote_code: bool = False
    max_batch_tokens: int | None = None  # None: 16384 on GPU, 0 (--batch-size examples) on CPU
    attn: str = "auto"
    report_to: str = "none"
    columns: dict | None = None  # the data's column -> ours (data.columns.parse_columns)
    save_total_limit: int = 2  # checkpoints kept: the best and the last (0: all)
    save_dtype: str = "auto"  # the final model's: auto = bfloat16 where trained in bf16, else float32
    lora: int = 0  # LoRA rank; 0 = full fine-tuning (lora.py)
    lora_alpha: int | None = None  # None: 2 * rank


def warn(msg: str) -> None:
    if is_rank_zero():  # once per run, not once per process
        print(f"warning: {msg}", file=sys.stderr)


MIN_ROWS = 32  # below this a full fine-tune memorises rows instead of learning the format (docs: demo)


def small_data_warning(n_train: int) -> str | None:
    if n_train >= MIN_ROWS:
        return None
    return (f"only {n_train} training examples: fewer than {MIN_ROWS} teach a model the rows, not the format "
            "(a 2-row run made the embedded model answer 'Thank you' to everything); generate more data")


def overfit_warning(history: list[dict]) -> str | None:
    """Training loss near 0 while validation loss rose past its best: the model memorised the rows."""
    train = [h["loss"] for h in history if "loss" in h]
    val = [h["eval_loss"] for h in history if "eval_loss" in h]
    if not train or len(val) < 2 or train[-1] > 0.05 or val[-1] <= 1.1 * min(val):
        return None
    return (f"training loss fell to {train[-1]:.3f} while validation loss rose from its best {min(val):.3f} "
            f"to {val[-1]:.3f}: the model memorised its rows; use more data, fewer epochs or a lower --lr")


# --------------------------------------------------------------------------- setup helpers


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_out_dir(opts: TrainOptions, saved_args: dict) -> str | None:
    """Refuse a non-empty folder unless resuming; when resuming return the last checkpoint (or None)."""
    out = check_out_folder(opts.out)
    if not opts.resume:
        if out.exists() and any(out.iterdir()):
            raise OutputError(f"{out}: folder is not empty (use --resume to continue a run, or choose a new --out)")
        return None
    old_path = out / "train_args.json"
    if not old_path.exists():
        raise OutputError(f"{out}: nothing to resume (no train_args.json)")
    if (out / "model.safetensors").exists() or (out / "model.safetensors.index.json").exists():
        raise OutputError(f"{out}: this run already finished (the final model is there)")
    old = json.loads(old_path.read_text(encoding="utf-8"))
    for key in RESUME_KEYS:
        if old.get(key) != saved_args.get(key):
            raise OutputError(f"{out}: --resume with a different {key} ({saved_args.get(key)!r}, "
                              f"the run used {old.get(key)!r})")
    return last_complete_checkpoint(out / "checkpoints")


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` whose trainer_state.json (the Trainer writes it last) reads back;
    a folder half-written by a crash while saving is skipped."""
    import json

    done = []
    for p in folder.glob("checkpoint-*"):
        try:
            step = int(p.name.split("-")[1])
            json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        done.append((step, str(p)))
    return max(done)[1] if done else None


def device_settings(attn: str = "auto") -> dict:
    """bf16 autocast, fused AdamW and packed-row attention (flash varlen, flex, SDPA) on GPU. On CPU: fused AdamW,
    SDPA, and bf16 autocast where the CPU computes bf16 natively (AVX-512 BF16 or AMX; docs/benchmarks.md "train on
    CPU"), else fp32. ``SELFINSTRUCT_DTYPE=float32`` keeps fp32."""
    import os

    import torch

    from ..models import cpu_has_bf16

    fp32 = os.environ.get("SELFINSTRUCT_DTYPE") == "float32"
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported() and not fp32
        return {"cuda": True, "bf16": bf16, "optim": "adamw_torch_fused",
                "attn": attention_candidates(attn, True, bf16)}
    warn("no GPU: full fine-tuning on CPU is slow (minutes per 100 steps for a 270M model); "
         "use it for small checks, train real runs on a GPU")
    return {"cuda": False, "bf16": cpu_has_bf16() and not fp32, "optim": "adamw_torch_fused",
            "attn": attention_candidates(attn, False, False)}


def load_model(path: str, attn: list[str], trust_remote_code: bool):
    """The model with the first attention kernel in ``attn`` that this model and install accept."""
    import torch
    from transformers import AutoModelForCausalLM

    for i, impl in enumerate(attn):
        try:  # fp32 master weights; bf16 runs as autocast (TrainingArguments.bf16)
            return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=impl,
                                                        use_safetensors=True, trust_remote_code=trust_remote_code)
        except (ValueError, ImportError) as e:
            if i + 1 < len(attn) and ("attn" in str(e).lower() or "attention" in str(e).lower()):
                warn(f"attention {impl} unavailable ({str(e).splitlines()[0][:120]}); trying {attn[i + 1]}")
                continue
            raise load_error(path, e) from e
        except OSError as e:
            raise load_error(path, e) from e


def steps_value(x: float | None):
    """TrainingArguments takes an int step count or a float fraction (< 1) of the total."""
    if x is None:
        return None
    return float(x) if x < 1 else int(x)


def steps_error(eval_steps: float, save_steps: float | None, val_fraction: float) -> str | None:
    """Why --save-steps cannot go with --eval-steps, or None: the best checkpoint (by validation loss) is
    kept only if every save falls on an evaluation, so a save must be a whole multiple of an evaluation
    (both step counts, or both fractions of the run), as TrainingArguments demands after loading."""
    if save_steps is None or val_fraction <= 0:
        return None
    big = 1_000_000  # fractions: compare in millionths, as transformers does
    if (eval_steps < 1) != (save_steps < 1) or round(save_steps * big) % round(eval_steps * big):
        return (f"{save_steps:g} is not a multiple of --eval-steps {eval_steps:g} (both step counts or both "
                "fractions): the best checkpoint needs every save on an evaluation")
    return None


def training_arguments(opts: TrainOptions, dev: dict, has_val: bool):
    from transformers import TrainingArguments

    eval_steps = steps_value(opts.eval_steps)
    save_steps = steps_value(opts.save_steps) if opts.save_steps is not None else eval_steps
    batch = 1 if opts.max_batch_tokens else opts.batch_size  # a token-budget batch is one dataset item
    return TrainingArguments(
        output_dir=str(Path(opts.out) / "checkpoints"),
        num_train_epochs=opts.epochs, max_steps=opts.max_steps or -1,
        per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        gradient_accumulation_steps=opts.grad_accum,
        learning_rate=opts.lr, lr_scheduler_type="cosine", warmup_steps=opts.warmup_ratio,
        weight_decay=opts.weight_decay, max_grad_norm=1.0, optim=dev["optim"],
        bf16=dev["bf16"], use_cpu=not dev["cuda"],  # use_cpu: TrainingArguments refuses bf16 on CPU without it
        activation_checkpointing=opts.gradient_checkpointing,  # 5.x name of gradient_checkpointing
        activation_checkpointing_kwargs={"use_reentrant": False} if opts.gradient_checkpointing else None,
        eval_strategy="steps" if has_val else "no", eval_steps=eval_steps if has_val else None,
        save_strategy="steps", save_steps=save_steps, save_total_limit=opts.save_total_limit or None,
        load_best_model_at_end=has_val, metric_for_best_model="eval_loss", greater_is_better=False,
        logging_steps=opts.logging_steps, logging_first_step=True,
        report_to=report_to_list(opts.report_to),
        seed=opts.seed, data_seed=opts.seed, remove_unused_columns=False,
        # the loss of every process is divided by the target tokens of all processes (tests/test_distributed.py)
        average_tokens_across_devices=True,
        train_sampling_strategy="random" if opts.packing or opts.max_batch_tokens else "group_by_length",
        include_num_input_tokens_seen="non_padding", dataloader_pin_memory=dev["cuda"],
    )


def trim_metrics(path: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint we continue from (they are replayed)."""
    rows = [r for r in read_jsonl_lenient(path)
            if r.get("type") in ("data", "train", "eval") and r.get("step", 0) <= step]
    write_jsonl(path, rows)


# --------------------------------------------------------------------------- the flow


def train(opts: TrainOptions, callbacks=(), echo=print) -> dict:
    """Run (or resume) a fine-tuning run; returns a summary dict (on every process)."""
    out = Path(opts.out)
    import torch

    echo = echo if is_rank_zero() else (lambda *a, **k: None)
    if shortfall := launch_shortfall(cuda=torch.cuda.is_available()):
        warn(shortfall)
    # 1. inputs first: data, template name, output folder; no model is loaded yet
    skipped: list[InputError] = []
    if opts.template not in ("alpaca", "chat"):
        raise ModelError(f"unknown template '{opts.template}' (choose alpaca or chat)")
    rows = load_rows(opts.data, opts.template, skip_invalid=opts.skip_invalid, skipped=skipped,
                     columns=opts.columns)
    for err in skipped:
        warn(f"skipped {err}")
    if report_to_error(opts.report_to) or peft_error(opts.lora):
        raise ModelError(report_to_error(opts.report_to) or peft_error(opts.lora))
    if bad_steps := steps_error(opts.eval_steps, opts.save_steps, opts.val_fraction):
        raise InputError("--save-steps", None, bad_steps)
    if opts.lr is None:  # the CLI's default: full fine-tuning's rate, or LoRA's
        opts = dataclasses.replace(opts, lr=default_lr(opts.lora))
    if opts.max_batch_tokens is None:  # the device's default, saved so that --resume compares it
        opts = dataclasses.replace(opts, max_batch_tokens=batch_tokens_default(torch.cuda.is_available()))
    saved_args = {**dataclasses.asdict(opts), "data_sha256": sha256_file(data_file(opts.data))}
    last_ckpt = check_out_dir(opts, saved_args)

    # 2. tokenizer (cheap) and template check, then the split and the tokens
    from transformers import AutoTokenizer

    model_path = resolve_model(opts.model)
    if not opts.resume and not opts.lora and (low := check_disk(opts.out, model_path)):
        warn(low)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=opts.trust_remote_code)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(opts.model or "embedded", e) from e
    try:
        check_template(opts.template, tokenizer, model=opts.model or "embedded")
    except TemplateError as e:
        raise ModelError(str(e)) from None
    if tokenizer.pad_token_id is None:  # safe: labels never come from pad ids
        tokenizer.pad_token = tokenizer.eos_token
    set_prompt_format(tokenizer, opts.template)  # saved with every checkpoint and the final model
    train_rows, val_rows = D.split_rows(rows, opts.val_fraction, opts.seed)
    train_ex, dropped_train = D.encode_rows(train_rows, tokenizer, opts.template, opts.max_length)
    val_ex, dropped_val = D.encode_rows(val_rows, tokenizer, opts.template, opts.max_length)
    if not train_ex:
        raise InputError(data_file(opts.data), None,
                         f"no training row left: every response is cut by --max-length {opts.max_length}")
    n_tokens, n_trained = D.count_tokens(train_ex)
    state = process_state(torch.cuda.is_available())  # under torchrun / accelerate launch: the process group
    data_info = {"type": "data", "step": 0, "processes": state.num_processes, "rows": len(rows),
                 "skipped_invalid": len(skipped),
                 "train_examples": len(train_ex), "val_examples": len(val_ex),
                 "dropped_truncated_train": dropped_train, "dropped_truncated_val": dropped_val,
                 "train_tokens": n_tokens, "train_response_tokens": n_trained}
    echo(f"data: {len(train_ex)} train / {len(val_ex)} validation examples, {n_tokens} tokens "
         f"({n_trained} trained); dropped {dropped_train + dropped_val} whose response --max-length cut entirely")
    if small_data_warning(len(train_ex)):
        warn(small_data_warning(len(train_ex)))

    metrics_path = out / "metrics.jsonl"
    state.wait_for_everyone()  # one writer (rank 0), after every rank checked the folder
    if state.is_main_process:
        if not opts.resume:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / "train_args.json", saved_args)
            write_jsonl(out / "val.jsonl", val_rows)
            write_jsonl(metrics_path, [data_info])
        else:
            trim_metrics(metrics_path, int(Path(last_ckpt).name.split("-")[-1]) if last_ckpt else 0)
            echo(f"resuming from {last_ckpt or 'the start (no checkpoint yet)'}")

    # 3. model and Trainer
    from transformers.trainer_callback import ProgressCallback

    from .loss import use_chunked_loss
    from .sft import trainer_class

    dev = device_settings(opts.attn)
    model = load_model(model_path, dev["attn"], opts.trust_remote_code)
    chunked = use_chunked_loss(model)
    if opts.lora:  # after the loss swap: the adapters wrap the same forward
        model = add_adapters(model, opts.lora, opts.lora_alpha)
        echo(trainable_line(model))
    collator = D.Collator(tokenizer.pad_token_id, packing=opts.packing,
                          pad_to_multiple_of=8 if dev["cuda"] and not opts.packing else None)
    train_ds, val_ds = train_ex, val_ex
    if opts.max_batch_tokens:
        train_ds = D.group_examples(train_ex, opts.max_batch_tokens, opts.seed, opts.packing)
        val_ds = D.group_examples(val_ex, opts.max_batch_tokens, opts.seed, opts.packing)
    metrics_cb, progress_cb = make_callbacks(metrics_path)
    trainer = trainer_class()(model=model, args=training_arguments(opts, dev, bool(val_ex)), data_collator=collator,
                              train_dataset=train_ds, eval_dataset=val_ds or None, processing_class=tokenizer,
                              callbacks=[metrics_cb, *report_callbacks(opts.report_to, opts.out), *callbacks])
    processes = (f" per process, {state.num_processes} processes ({'FSDP' if trainer.is_fsdp_enabled else 'DDP'})"
                 if state.num_processes > 1 else "")
    echo(f"attention: {model.config._attn_implementation}; {'bf16 autocast' if dev['bf16'] else 'fp32'}; loss: "
         f"{'chunked LM head (no logits tensor)' if chunked else 'plain (logits for every token)'}; batches: "
         f"{f'up to {opts.max_batch_tokens} tokens' if opts.max_batch_tokens else f'{opts.batch_size} examples'}"
         f"{processes}")
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(progress_cb)
    result = trainer.train(resume_from_checkpoint=last_ckpt)

    # 4. final model (the best by validation loss when there is validation) at the root
    save_merged(trainer, out, tokenizer) if opts.lora else trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; train_args.json holds the run's args
        cast_saved(out, save_dtype(opts.save_dtype, dev["bf16"]))
        gen = trainer.model.generation_config
        if gen is not None and (gen.eos_token_id is None or gen.pad_token_id is None):
            gen.eos_token_id = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
            gen.pad_token_id = gen.pad_token_id if gen.pad_token_id is not None else tokenizer.pad_token_id
            gen.save_pretrained(out)
    if overfit_warning(trainer.state.log_history):
        warn(overfit_warning(trainer.state.log_history))
    summary = {**data_info, "type": "summary", "step": trainer.state.global_step,
               "train_loss": result.training_loss, "best_eval_loss": trainer.state.best_metric,
               "best_checkpoint": trainer.state.best_model_checkpoint, "out": str(out)}
    if trainer.is_world_process_zero():
        with JsonlWriter(metrics_path) as w:
            w.write(summary)
        from ..plots import plot_losses
        plot_losses(read_jsonl_lenient(metrics_path), out / "loss.png")
    return summary
