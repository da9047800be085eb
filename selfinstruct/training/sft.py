"""Device-dependent training choices and the small Trainer subclass `train` uses.

- :func:`batch_tokens_default`: tokens per micro-batch when ``--max-batch-tokens`` is not given.
- :func:`attention_candidates`: the attention kernels to try for packed rows, best first.
- :func:`check_disk`: refuse (or warn about) an output disk too small for a full fine-tune's checkpoints.
- :func:`trainer_class`: transformers' ``Trainer`` that reloads tied weights quietly.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

GPU_BATCH_TOKENS = 16384  # a GPU step: 16K tokens (~250 examples of our mean 65 tokens)
CPU_BATCH_TOKENS = 0  # on CPU: --batch-size examples per step (thousands of tokens would take minutes a step)
ATTENTION = ("auto", "flash_attention_2", "flex_attention", "sdpa", "eager")


def batch_tokens_default(cuda: bool) -> int:
    return GPU_BATCH_TOKENS if cuda else CPU_BATCH_TOKENS


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def attention_candidates(requested: str, cuda: bool, bf16: bool) -> list[str]:
    """Kernels for padding-free packed rows (position ids restart per example), best first.

    - ``flash_attention_2``: varlen kernels over the example boundaries (needs ``flash_attn``, bf16 GPU);
    - ``flex_attention``: PyTorch's flex attention with a document mask (transformers builds it from the
      position ids); blocks that cross examples are skipped, not computed;
    - ``sdpa``: a block-diagonal causal mask (every pair is computed, then masked; the CPU default).
    """
    if requested != "auto":
        return [requested]
    if not cuda:
        return ["sdpa"]
    out = []
    if bf16 and importlib.util.find_spec("flash_attn") is not None:
        out.append("flash_attention_2")
    if flex_available():
        out.append("flex_attention")
    return out + ["sdpa"]


REPORT_TO = ("none", "tensorboard", "wandb", "mlflow", "trackio")


def report_to_error(report_to: str) -> str | None:
    """Why --report-to cannot work (unknown, or not installed), checked before any model loads; None if fine."""
    needs = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
             "trackio": ("trackio",)}
    for name in report_to.split(","):
        if name not in REPORT_TO:
            return f"--report-to: unknown integration '{name}' (choose from {', '.join(REPORT_TO)})"
        if name in needs and not any(importlib.util.find_spec(m) for m in needs[name]):
            return f"--report-to {name}: `pip install {needs[name][0]}` first"
    return None


def report_to_list(report_to: str) -> list[str] | str:
    """TrainingArguments.report_to: the integrations other than TensorBoard (see report_callbacks)."""
    return [r for r in report_to.split(",") if r not in ("tensorboard", "none")] or "none"


def report_callbacks(report_to: str, out) -> list:
    """TensorBoard events go to ``out/tensorboard`` (not under checkpoints/)."""
    if "tensorboard" not in report_to.split(","):
        return []
    from transformers.integrations import TensorBoardCallback

    cb = TensorBoardCallback()
    cb.logging_dir = str(Path(out) / "tensorboard")
    return [cb]


def parameter_count(folder) -> int | None:
    """Parameters in a model folder's safetensors files (read from their headers: no weights load);
    None for a hub id or a folder without safetensors."""
    files = list(Path(folder).glob("*.safetensors")) if Path(folder).is_dir() else []
    if not files:
        return None
    from safetensors import safe_open

    total = 0
    for f in files:
        with safe_open(str(f), "pt") as st:
            total += sum(math.prod(st.get_slice(key).get_shape()) for key in st.keys())
    return total


def disk_needed(n_params: int) -> tuple[int, int]:
    """(bytes one checkpoint and the final model need, bytes the whole run can hold at once).

    A checkpoint is the fp32 model and AdamW's two fp32 moments (12 bytes a parameter); the Trainer keeps two
    (best and last) and writes a third before it deletes the older one; the final model is 4 bytes a parameter."""
    checkpoint, final = 12 * n_params, 4 * n_params
    return checkpoint + final, 3 * checkpoint + final


def tied_parameter_names(model) -> set[str]:
    """Names under which a parameter appears a second time (e.g. ``lm_head.weight`` tied to the embeddings)."""
    first = {name for name, _ in model.named_parameters()}
    return {name for name, _ in model.named_parameters(remove_duplicate=False)} - first


def trainer_class():
    from transformers import Trainer

    class SFTTrainer(Trainer):
        """``Trainer`` whose checkpoint reloads (resume, best model at the end) do not report a tied
        ``lm_head.weight`` as missing: safetensors stores a tied tensor once, under the embeddings' name."""

        def _issue_warnings_after_load(self, load_result):
            tied = tied_parameter_names(self.model)
            missing = [k for k in load_result.missing_keys if k not in tied]
            if len(missing) < len(load_result.missing_keys):
                self.model.tie_weights()
                load_result = load_result._replace(missing_keys=missing)
            return super()._issue_warnings_after_load(load_result)

    return SFTTrainer


def check_disk(out, model_path: str) -> str | None:
    """Refuse (OutputError) a run whose first checkpoint and final model cannot fit on ``out``'s disk;
    a warning when the whole run may not (a full disk stops training mid-save)."""
    import shutil

    from ..data.writers import OutputError, nearest_existing

    n = parameter_count(model_path)
    if n is None:
        return None
    free = shutil.disk_usage(nearest_existing(Path(out).resolve())).free
    least, full = disk_needed(n)
    gb = lambda b: f"{b / 1e9:.1f} GB"  # noqa: E731
    what = f"a full fine-tune of this model ({n / 1e6:.0f}M parameters)"
    if free < least:
        raise OutputError(f"{out}: {gb(free)} free on its disk; {what} writes at least {gb(least)} "
                          "(one checkpoint with optimizer state, and the final model)")
    if free < full:
        return (f"{gb(free)} free on the disk of {out}; {what} can hold up to {gb(full)} at once "
                "(three checkpoints while the oldest rotates out, and the final model)")
    return None
