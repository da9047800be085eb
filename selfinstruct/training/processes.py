"""Training on several processes (torchrun, accelerate launch): who writes and prints, and launches that
started fewer processes than were asked for.

Every process runs the whole of `train`; the Trainer shards the batches and sums the loss over all ranks'
target tokens. Rank 0 alone writes the run's files and prints. The rank is read from the ``RANK`` variable
that torchrun and accelerate set, so it is known before the process group exists (input errors, warnings).
"""
from __future__ import annotations

import os
from collections.abc import Mapping


def is_rank_zero(env: Mapping[str, str] = os.environ) -> bool:
    """True on the process that prints (``RANK`` 0, or no launcher at all)."""
    return env.get("RANK", "0") == "0"


def launch_shortfall(env: Mapping[str, str] = os.environ) -> str | None:
    """Why this process trains alone although its launcher was asked for several; None when it was not.

    accelerate's single-process launcher (``accelerate launch --cpu``, or a config with ``distributed_type:
    MULTI_CPU`` and no mpirun hostfile) sets ``MASTER_ADDR`` only when ``--num_processes`` or
    ``--num_machines`` is above 1, sets ``ACCELERATE_USE_CPU``, and starts one process without ``WORLD_SIZE``.
    accelerate does not pass the count it was given on, so the line says "several"."""
    if "WORLD_SIZE" in env or "ACCELERATE_USE_CPU" not in env or "MASTER_ADDR" not in env:
        return None
    return ("accelerate launch was asked for several processes but started one (its --cpu launcher runs a "
            "single process): training on 1 process; for N CPU processes use `torchrun --nproc_per_node N "
            "-m selfinstruct.cli train ...` or `accelerate launch --multi_gpu --num_processes N ...`")


def process_state(cuda: bool):
    """accelerate's process state (the gloo or NCCL group under a launcher). ``cpu`` must match the
    Trainer's ``use_cpu``: without it accelerate treats torchrun's CPU processes as separate single runs."""
    from accelerate import PartialState

    return PartialState(cpu=not cuda)
