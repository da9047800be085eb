"""LoRA (`train --lora R`): PEFT adapters on the decoder's linear layers, merged into the base model at the end.

Full fine-tuning stays the default. With LoRA the data, the masks, the packing and the chunked loss are
the same (only the trainable parameters change); the checkpoints hold the adapter (megabytes, not the
model and its AdamW state); the final folder holds the merged model, which loads in transformers and
vLLM like any other, and the adapter in ``adapter/`` (``peft.PeftModel.from_pretrained(base, OUT/adapter)``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

LORA_LR = 2e-4  # LoRA's usual rate: the adapters start at zero and learn from there
FULL_LR = 2e-5


def default_lr(lora: int) -> float:
    return LORA_LR if lora else FULL_LR


def peft_error(lora: int) -> str | None:
    """Why --lora cannot run (PEFT missing), checked before any model loads; None if fine."""
    if lora and importlib.util.find_spec("peft") is None:
        return "--lora needs PEFT: pip install 'selfinstruct[lora]' (or pip install peft)"
    return None


def add_adapters(model, rank: int, alpha: int | None):
    """``model`` with LoRA adapters of ``rank`` on every linear layer but the LM head (PEFT's
    ``all-linear``: the layers come from the model, whatever its architecture); alpha defaults to 2 * rank."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=0.0, target_modules="all-linear",
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def trainable_line(model) -> str:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"LoRA: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f}%)"


def save_merged(trainer, out: Path, tokenizer) -> None:
    """The adapter to ``out/adapter``, then the base model with the adapter merged in at the root of ``out``."""
    trainer.save_model(str(out / "adapter"))
    if not trainer.is_world_process_zero():
        return
    (out / "adapter" / "training_args.bin").unlink(missing_ok=True)  # a pickle, as at the root
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
