"""Several processes (``accelerate launch``, ``torchrun``): who does what.

A command started by a launcher runs once per process (one per GPU; ``WORLD_SIZE`` of them). Every rank
takes part in every forward pass — under DeepSpeed ZeRO-3 each holds a shard of the weights, and a rank
that skips a forward leaves the others waiting for it forever — while only the main process prepares
outputs, writes files and logs. The vocabulary is accelerate's ``PartialState``; this module adds the
few things the stages do with it:

- :func:`on_main`: a step done once, by the main process (claiming an output, reading a file it will
  rewrite), its result or its error handed to every rank, so no rank waits on a main process that failed;
- :func:`share` / :func:`gather`: each rank takes its contiguous share of a list of work items, and the
  results come back in the list's order on every rank (the teacher's requests, held-out validation,
  the preflight sample);
- :func:`strategy`: how the launch shards the model (``ddp``, ``zero2``, ``zero3``, ``fsdp``), read from the
  launcher's environment, so a config can refuse what does not work under it before anything runs.

Without a launcher (``WORLD_SIZE`` unset or 1) every function is the one-process identity and nothing
initialises ``torch.distributed``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

from reasrm.errors import ReasrmError

T = TypeVar("T")

# The trainers' own default (transformers' ``ddp_timeout``): the longest a rank waits at a collective.
TIMEOUT = timedelta(seconds=1800)


def world_size() -> int:
    """Processes in this launch (1 without a launcher). Reads the environment only: no torch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    return world_size() > 1


def strategy() -> str:
    """How the launch shards the model, from the launcher's environment: ``single`` (one process),
    ``ddp``, ``zero1``/``zero2``/``zero3`` (DeepSpeed) or ``fsdp``."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return f"zero{os.environ.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '2')}"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    return "ddp" if launched() else "single"


STRATEGY_NAMES = {
    "single": "one process",
    "ddp": "DDP",
    "zero1": "DeepSpeed ZeRO-1",
    "zero2": "DeepSpeed ZeRO-2",
    "zero3": "DeepSpeed ZeRO-3",
    "fsdp": "FSDP",
}


def state():
    """accelerate's ``PartialState`` of this process: on a machine without CUDA, gloo ranks on the CPU
    (``PartialState()`` alone would leave each rank a lone process there)."""
    from accelerate import PartialState

    if not launched():
        return PartialState()
    import torch

    return PartialState(cpu=not torch.cuda.is_available(), timeout=TIMEOUT)


def is_main() -> bool:
    """Whether this is the main process (rank 0, as the launcher numbers it: no collective needed)."""
    return rank() == 0


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if launched() else 0


def device() -> str:
    """This process's device: ``cuda:<local rank>`` on a GPU node, else ``cpu``."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{state().local_process_index}" if launched() else "cuda"


def barrier() -> None:
    if launched():
        state().wait_for_everyone()


def close() -> None:
    """Destroy this rank's process group, if the command opened one, before the interpreter exits: a gloo
    rank that exits with its group alive can abort in teardown (``terminate called without an active
    exception``, SIGABRT) after its work is done. Local to the rank: no collective."""
    if not launched():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class ReportedOnMain(ReasrmError):
    """The main process's step failed and it reported why; the other ranks stop quietly."""


def on_main(step: Callable[[], T]) -> T:
    """``step()`` on the main process; its result (or its error, raised on every rank) on every rank.
    A user error raised on the main process is printed there once; the others raise :class:`ReportedOnMain`."""
    if not launched():
        return step()
    if not is_main():
        kind, value = broadcast(None)
        if kind == "ok":
            return value
        raise ReportedOnMain(value) if kind == "user error" else RuntimeError(f"the main process failed: {value}")
    try:
        value = step()
    except ReasrmError as e:
        broadcast(("user error", str(e)))
        raise
    except BaseException as e:
        broadcast(("error", f"{type(e).__name__}: {e}"))
        raise
    broadcast(("ok", value))
    return value


def share(items: list[T]) -> list[T]:
    """This rank's contiguous share of ``items`` (the first ranks take one more when it does not divide)."""
    n, size, k = len(items), world_size(), rank()
    if size == 1:
        return list(items)
    base, extra = divmod(n, size)
    start = k * base + min(k, extra)
    return list(items[start : start + base + (k < extra)])


def gather(mine: list[T]) -> list[T]:
    """Every rank's list, concatenated in rank order, on every rank (the inverse of :func:`share`)."""
    if not launched():
        return list(mine)
    from accelerate.utils import gather_object

    state()  # the process group, before its first collective
    return list(gather_object(list(mine)))


def broadcast(value: T) -> T:
    """The main process's ``value`` on every rank."""
    if not launched():
        return value
    from accelerate.utils import broadcast_object_list

    state()  # the process group, before its first collective
    holder = [value]
    broadcast_object_list(holder, from_process=0)
    return holder[0]


def quiet_other_ranks() -> None:
    """Log once: the other ranks log warnings and errors only, and show no progress bars (``runs.Progress``,
    and the datasets library's)."""
    if launched() and not is_main():
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("reasrm").setLevel(logging.WARNING)
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"


@contextmanager
def full_weights(model) -> Iterator:
    """``model`` with its whole weights on every rank for the block, so that each rank can generate alone
    (its own share of the calls, each row stopping when it is done). Under ZeRO-3 before the trainer wraps
    the model (a model loaded under ``zero.Init`` holds only its shard), deepspeed gathers them; otherwise
    the weights are whole already. A trainer's model: ``trl.models.unwrap_model_for_generation``."""
    if strategy() != "zero3" or not any(hasattr(p, "ds_id") for p in model.parameters()):
        yield model
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters())):
        yield model


def describe_launch(unit: str, per_device: int, accumulation: int, **per_unit: int) -> dict:
    """The launch and its global batch: ``per_device`` x ``accumulation`` x processes ``unit``s per optimizer
    step, and the same in each of ``per_unit`` (name -> how many units make one)."""
    size = world_size()
    total = per_device * accumulation * size
    batch = {unit: total, **{name: total // k for name, k in per_unit.items()}}
    return {
        "processes": size,
        "strategy": strategy(),
        "per_device": per_device,
        "gradient_accumulation_steps": accumulation,
        "global_batch": batch,
    }


def launch_line(launch: dict) -> str:
    batch = ", ".join(f"{v} {k}" for k, v in launch["global_batch"].items())
    how = "" if launch["strategy"] == "single" else f" ({STRATEGY_NAMES.get(launch['strategy'], launch['strategy'])})"
    plural = "es" if launch["processes"] > 1 else ""
    return (
        f"{launch['processes']} process{plural}{how}; global batch per optimizer step: "
        f"{batch} ({launch['per_device']} per device x {launch['gradient_accumulation_steps']} accumulated x "
        f"{launch['processes']})"
    )
