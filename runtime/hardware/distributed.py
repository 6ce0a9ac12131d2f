"""Data-parallel runs under `torchrun`, on torch.distributed and DDP.

A process started by `torchrun` (which sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK` and the rendezvous
variables) joins the process group: NCCL on CUDA, gloo on CPU. Each rank trains on its own shard
of every batch order (the effective batch is the per-rank batch times the world size), DDP
averages the weight gradients, and rank 0 alone writes the run directory and prints progress.
"""

from __future__ import annotations

import datetime
import gc
import os
import time

import attrs
import torch
import torch.distributed as dist

from nasc.dsl import NascError, NascUsageError

TIMEOUT = datetime.timedelta(minutes=float(os.environ.get("NASC_DIST_TIMEOUT_MIN", "10")))


class RankMismatch(NascError):
    """Ranks disagree on something that must be identical (the architecture)."""


@attrs.frozen
class Dist:
    """This process's place in the job."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True when started by torchrun (or another launcher that sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def setup(device_name: str, timeout_s: float | None = None) -> tuple[Dist | None, str]:
    """Join the process group when launched by torchrun.

    Args:
        timeout_s: how long a collective waits for a silent rank (`--dist-timeout`); default
            `NASC_DIST_TIMEOUT_MIN` minutes (10).

    Returns:
        (the rank's Dist or None for a plain run, the device name to use).
    """
    if not launched():
        return None, device_name
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if device_name == "cuda" and not torch.cuda.is_available():
        raise NascUsageError("--device cuda: no CUDA device is available", hint="use --device cpu")
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        timeout = TIMEOUT if timeout_s is None else datetime.timedelta(seconds=timeout_s)
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout)
    return Dist(rank=rank, world=world, local_rank=local), (f"cuda:{local}" if cuda else "cpu")


def shutdown(finished: bool = False) -> None:
    """Leave the process group.

    Args:
        finished: every rank reached the end normally; they then wait for each other before
            tearing down, so no rank closes its connections while a peer still talks on them.
    """
    if not dist.is_initialized():
        return
    # DDP reducers (and the gloo work they hold) kept alive by reference cycles would otherwise be
    # destroyed during interpreter shutdown, after the group, which aborts the process.
    gc.collect()
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def broadcast(value, dist_: Dist | None):
    """Rank 0's value, on every rank."""
    if dist_ is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value, dist_: Dist | None) -> list:
    """Every rank's value, in rank order."""
    if dist_ is None:
        return [value]
    values = [None] * dist_.world
    dist.all_gather_object(values, value)
    return values


def sum_tensor(tensor: torch.Tensor, dist_: Dist | None) -> torch.Tensor:
    """The element-wise sum over ranks (in place; returned for chaining)."""
    if dist_ is not None:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def average_gradients(parameters, dist_: Dist | None) -> None:
    """Average the gradients of a few parameters (architecture parameters) across ranks."""
    if dist_ is None:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad /= dist_.world


def check_same(value: str, what: str, dist_: Dist | None) -> None:
    """Fail loudly when ranks hold different values of something that must agree.

    Raises:
        RankMismatch: naming each rank's value.
    """
    values = gather(value, dist_)
    if len(set(values)) > 1:
        detail = ", ".join(f"rank {rank}: {v}" for rank, v in enumerate(values))
        raise RankMismatch(
            f"the ranks disagree on {what} ({detail})",
            hint="every rank must run the same nasc, data and seed; a nondeterministic kernel "
            "may also cause this; the last checkpoint precedes the mismatch",
        )


class RankLost(NascError):
    """A rank stopped answering (stopped, hung or dead) and the process-group timeout ran out."""


def silent_ranks(dist_: Dist, grace_s: float = 10.0) -> list[int]:
    """After a failed collective: the ranks that do not report, asked through the rendezvous
    store (which does not depend on the broken process group). Survivors report themselves and
    wait up to `grace_s` for each other; ranks that never report are the silent ones."""
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(f"nasc/alive/{dist_.rank}", "1")
        silent = list(range(dist_.world))
        deadline = time.monotonic() + grace_s
        while True:
            silent = [
                rank for rank in range(dist_.world) if store.check([f"nasc/alive/{rank}"]) is False
            ]
            if not silent or time.monotonic() > deadline:
                return silent
            time.sleep(0.2)
    except Exception:  # noqa: BLE001 - the store went with the job: nothing more to learn
        return []


def collective_failed(error: BaseException) -> bool:
    """Whether an error is the process group's (a timeout, a closed connection), not the
    rank's own computation."""
    text = str(error)
    return isinstance(error, dist.DistError) or any(
        word in text for word in ("gloo", "NCCL", "Timed out", "Connection closed", "timeout")
    )


def rank_lost(dist_: Dist, error: Exception, timeout_s: float | None, resume: str) -> RankLost:
    """The error a surviving rank exits with when a collective failed: naming the silent rank
    and how to resume."""
    silent = silent_ranks(dist_)
    who = (
        f"rank {', '.join(map(str, silent))} stopped answering"
        if silent
        else "a collective operation failed (every other rank still answers)"
    )
    limit = timeout_s if timeout_s is not None else TIMEOUT.total_seconds()
    cause = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return RankLost(
        f"{who} (rank {dist_.rank} gave up after the {limit:g} s process-group timeout, "
        f"--dist-timeout): {cause}",
        hint=f"the last checkpoint is intact; resume with torchrun --nproc-per-node "
        f"{dist_.world} -m nasc.runtime search --resume {resume}",
    )
