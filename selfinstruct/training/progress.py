"""The training run's callbacks: the metrics journal (``metrics.jsonl``) and the progress bar.

Both act on the main process only (``state.is_world_process_zero``); ``tokens`` counts every rank's tokens
(the Trainer gathers ``num_input_tokens_seen``), so ``tokens_per_s`` is the whole run's rate.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..data.writers import JsonlWriter


def make_callbacks(metrics_path: Path):
    """Metrics journal (metrics.jsonl) and a progress bar with loss, tokens/s and ETA."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    class Metrics(TrainerCallback):
        def __init__(self):
            self.writer = None  # opened on first write, on the main process only
            self.busy = 0.0  # seconds spent in training steps (not eval, not saving)
            self.last = (0.0, 0)

        def on_train_begin(self, args, state, control, **kw):
            self.last = (0.0, state.num_input_tokens_seen)

        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.busy += time.perf_counter() - self.t

        def write(self, row: dict) -> None:
            self.writer = self.writer or JsonlWriter(metrics_path)
            self.writer.write(row)

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs:
                return
            if "loss" in logs:
                tokens = state.num_input_tokens_seen
                dt, dn = self.busy - self.last[0], tokens - self.last[1]
                self.last = (self.busy, tokens)
                self.rate = dn / dt if dt > 0 else None
                self.write({"type": "train", "step": state.global_step, "epoch": round(state.epoch or 0, 4),
                                   "loss": logs["loss"], "lr": logs.get("learning_rate"),
                                   "grad_norm": logs.get("grad_norm"), "tokens": tokens,
                                   "tokens_per_s": round(self.rate, 1) if self.rate else None})
            elif "eval_loss" in logs:
                self.write({"type": "eval", "step": state.global_step, "eval_loss": logs["eval_loss"]})

        def on_train_end(self, args, state, control, **kw):
            if self.writer:
                self.writer.close()

    class Progress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or self.training_bar is None or not logs:
                return
            if "loss" in logs:
                rate = getattr(metrics, "rate", None)
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", tok_s=f"{rate:.0f}" if rate else "-")
            elif "eval_loss" in logs:
                self.training_bar.write(f"step {state.global_step}: validation loss {logs['eval_loss']:.4f}")

    metrics = Metrics()
    return metrics, Progress()

