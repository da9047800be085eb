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


def launch_shortfall(env: Mapping[str, str] = os.environ, cuda: bool = False) -> str | None:
    """Why this run gets less than its launch asked for (one line); None when it gets what it asked.

    - accelerate's single-process launcher (``accelerate launch --cpu``, or a config with ``distributed_type:
      MULTI_CPU`` and no mpirun hostfile) sets ``MASTER_ADDR`` only when ``--num_processes`` or
      ``--num_machines`` is above 1, sets ``ACCELERATE_USE_CPU``, and starts one process without
      ``WORLD_SIZE``. It does not pass the count on, so the line says "several".
    - an FSDP config (``ACCELERATE_USE_FSDP``) without a GPU: accelerate turns FSDP on for GPU-type
      process groups only, so CPU processes train with DDP, each holding the whole model."""
    if "WORLD_SIZE" not in env and "ACCELERATE_USE_CPU" in env and "MASTER_ADDR" in env:
        return ("accelerate launch was asked for several processes but started one (its --cpu launcher runs a "
                "single process): training on 1 process; for N CPU processes use `torchrun --standalone "
                "--nproc_per_node N -m selfinstruct.cli train ...`")
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not cuda:
        return ("the accelerate config asks for FSDP, but accelerate shards only across GPUs: these CPU "
                "processes train with DDP (each holds the whole model and its optimizer state)")
    return None


def process_state(cuda: bool):
    """accelerate's process state (the gloo or NCCL group under a launcher). ``cpu`` must match the
    Trainer's ``use_cpu``: without it accelerate treats torchrun's CPU processes as separate single runs."""
    from accelerate import PartialState

    return PartialState(cpu=not cuda)
