"""`selfinstruct train` with the CLI's options that raises at a given step, on every process.

tests/test_distributed.py starts it under torchrun to leave a run to ``--resume``:
``python tests/train_crash.py STEP --data ... --out ...``.
"""
import sys

from transformers import TrainerCallback

from selfinstruct.cli import main
from selfinstruct.training.train import TrainOptions, train


class Crash(Exception):
    pass


class CrashAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            raise Crash(f"crashed at step {self.step}")


if __name__ == "__main__":
    step, cli = int(sys.argv[1]), sys.argv[2:]
    train(TrainOptions(**main.commands["train"].make_context("train", cli).params), callbacks=[CrashAt(step)])
