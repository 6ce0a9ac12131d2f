"""IS-DARTS: shrink the supernet by the information of each candidate's output.

No architecture parameters: a mask per cell type, shared by its instances. Weights train on the
whole training set with the live candidates summed and scaled by 1/|candidate set|. At the shrink
epochs, the Fisher information F of every live candidate's output is measured on a fixed number
of training images, and inside every comparison subset the candidates with the largest F (the
least informative, most noise-like outputs) are discarded, on a schedule that leaves exactly k.
Which images F is measured on is a protocol (`measure_on`; see `Searcher.measurement_batches`).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import attrs
import torch

from nasc.dsl import Genotype, NascUsageError
from nasc.runtime.hardware.distributed import check_same, sum_tensor
from nasc.runtime.runs.faults import die_at
from nasc.runtime.strategies.registry import (
    Strategy,
    at_least,
    one_of,
    option,
    options_of,
    refuse,
    register_strategy,
)

if TYPE_CHECKING:
    from nasc.compiler import Supernet
    from nasc.runtime.search.config import SearchConfig
    from nasc.runtime.search.loop import Searcher

# The data the information is measured on (`measure_on`; see `Searcher.measurement_batches`).
MEASURE_PROTOCOLS = ("reference", "paper", "train-sample")


@attrs.frozen(kw_only=True)
class ISDartsOptions:
    """IS-DARTS options (--strategy isdarts)."""

    shrink_steps: int = option(
        4, "IS-DARTS: shrink steps", at_least(1, flag="--shrink-steps/--shrink-interval")
    )
    shrink_interval: int = option(
        2,
        "IS-DARTS: epochs between steps",
        at_least(1, flag="--shrink-steps/--shrink-interval"),
    )
    measure_on: str = option(
        "reference",
        "IS-DARTS: the data the information is measured on: reference (the whole training "
        "split, augmented, in dataset order, as the reference code does), paper "
        "(--measure-samples held-out images, as the paper says) or train-sample "
        "(--measure-samples training images, not augmented)",
        one_of(*MEASURE_PROTOCOLS),
    )
    measure_samples: int = option(
        200, "IS-DARTS: images per measurement for --measure-on paper|train-sample", at_least(2)
    )
    mixing: str = option(
        "mean",
        "IS-DARTS mixing: mean (1/|candidates|, the reference) or live_mean",
        one_of("mean", "live_mean", what="must be mean or live_mean"),
    )


# The DARTS family's options that IS-DARTS refuses, with their off value: it measures each
# candidate's output over all of an edge's channels and has no architecture loss.
REFUSED = (("partial_channels", 1), ("edge_normalisation", False), ("latency_weight", 0.0))


def information(output: torch.Tensor) -> torch.Tensor:
    """Per-sample Fisher information F of a feature map (B, C, H, W).

    The paper's definition: per pixel, mu and the unbiased sigma across channels; per element
    3 (x - mu)^2 / sigma^6, NaN (a constant output, e.g. `none`) taken as +inf; the mean over
    (C, H, W). Per pixel the channels' (x - mu)^2 sum to (C - 1) sigma^2, so F is exactly
    3 (C - 1) / C times the mean over pixels of 1 / sigma^4, which needs one reduction over
    channels instead of several full-size passes. The variance is taken about the mean with
    the corrected two-pass formula (Chan, Golub and LeVeque 1983): the float32 mean of large
    values is off by an ulp, which on a pixel of tiny spread moved F by 3e-4 of itself, and
    subtracting the centred values' own mean squared removes that error.
    """
    x = output.detach().float()
    channels = x.shape[1]
    centred = x - x.sum(dim=1, keepdim=True) / channels
    squares = (centred * centred).sum(dim=1) - centred.sum(dim=1).pow(2) / channels
    variance = squares / (channels - 1)  # NaN for one channel, as std
    f = 3.0 * (channels - 1) / channels * variance.pow(-2).mean(dim=(1, 2))  # sigma = 0: +inf
    return torch.where(torch.isnan(f), math.inf, f)


def shrink_epochs(epochs: int, steps: int, interval: int) -> list[int]:
    """The 1-based epochs after which to shrink: `epochs - steps*interval + interval*i`."""
    return [epochs - steps * interval + interval * i for i in range(steps)]


def discard_count(live: int, k: int, step: int, steps: int) -> int:
    """How many of `live` candidates to discard at step `step` (0-based) of `steps`."""
    return max(0, math.ceil((live - k) / (steps - step)))


def measure(net: Supernet, batches, dist=None) -> dict[str, dict[tuple[str, str], float]]:
    """F of every live candidate of every searched cell type, averaged over samples and instances.

    Args:
        batches: (images, labels) batches; the measurement runs in eval mode without gradients.
        dist: under torchrun, each rank measures its share of the samples, and the sums and
            counts are added over ranks before any average, so every rank ranks alike.

    Returns:
        `{cell type: {(edge, op): F}}`.
    """
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    owners: dict[int, tuple[str, str, str]] = {}
    handles = []

    def hook(module, inputs, output):
        key = id(module)
        values = information(output)
        sums[key] = sums.get(key, 0.0) + values.sum()
        counts[key] = counts.get(key, 0) + values.numel()

    for cell in net.cells():
        table = net.arch.choices.get(cell.cell_type)
        if table is None:
            continue
        for edge in table.edges:
            for op in net.arch.live(cell.cell_type, edge):
                module = cell.edges[edge][op]
                owners[id(module)] = (cell.cell_type, edge, op)
                handles.append(module.register_forward_hook(hook))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for images, _ in batches:
                net(images)
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)

    keys = list(owners)  # the same order on every rank: cells, edges, live candidates
    totals = torch.tensor(
        [[float(sums.get(key, 0.0)), float(counts.get(key, 0))] for key in keys],
        dtype=torch.float64,
    ).reshape(-1, 2)
    totals = sum_tensor(totals.to(next(net.parameters()).device), dist).cpu()
    per_instance: dict[str, dict[tuple[str, str], list[float]]] = {}
    for key, (total, count) in zip(keys, totals.tolist()):
        cell, edge, op = owners[key]
        value = total / count if count else math.inf
        per_instance.setdefault(cell, {}).setdefault((edge, op), []).append(value)
    return {
        cell: {member: sum(values) / len(values) for member, values in members.items()}
        for cell, members in per_instance.items()
    }


def shrink(
    net: Supernet, scores: dict[str, dict[tuple[str, str], float]], step: int, steps: int
) -> list[dict]:
    """Discard, inside every comparison subset, the candidates with the largest F.

    Returns:
        per subset: its cell, label, k, and every live candidate with F, IIM (1/F) and whether
        it was discarded.
    """
    records = []
    for cell, table in net.arch.choices.items():
        live = set()
        for edge in table.edges:
            live.update((edge, op) for op in net.arch.live(cell, edge))
        discarded = []
        for (k, members), label in zip(table.subsets, table.labels):
            names = [(table.edges[r], table.candidates[r][c]) for r, c in members]
            alive = [m for m in names if m in live]
            count = discard_count(len(alive), k, step, steps)
            ranked = sorted(alive, key=lambda m: -scores[cell][m])  # stable: ties keep order
            chosen = set(ranked[:count])
            discarded.extend(chosen)
            records.append(
                {
                    "cell": cell,
                    "subset": label,
                    "k": k,
                    "candidates": [
                        {
                            "edge": edge,
                            "op": op,
                            "F": _json_float(scores[cell][(edge, op)]),
                            "IIM": _json_float(_iim(scores[cell][(edge, op)])),
                            "discarded": (edge, op) in chosen,
                        }
                        for edge, op in alive
                    ],
                }
            )
        net.arch.discard(cell, discarded)
    return records


def discarded_names(subsets: list[dict]) -> list[str]:
    """`cell.edge:op` of every candidate a shrink step discarded, from `shrink`'s records."""
    return [
        f"{s['cell']}.{c['edge']}:{c['op']}"
        for s in subsets
        for c in s["candidates"]
        if c["discarded"]
    ]


class Shrinker:
    """IS-DARTS' shrink steps, for a supernet trained inside any loop.

    The supernet is a plain `nn.Module`: train its weights (`net.weights()`) however the task
    needs, and call `step` at the times you choose, `steps` times in all (`shrink_epochs` gives
    the paper's schedule); each step measures the information F of every live candidate on the
    given inputs and discards, in every comparison subset, the largest-F ones, so that exactly k
    remain after the last step. `ISDarts` runs the same `measure` and `shrink` at epoch ends.

        net = compile_space(space, options=CompileOptions(track_running_stats=False))
        shrinker = Shrinker(net, steps=4)          # IS-DARTS mixing: 1/|candidate set|
        for update in range(updates):
            ...                                    # any loss through net(x), any optimizer
            if update + 1 in shrink_epochs(updates, 4, interval):
                shrinker.step([observations])      # tensors, or (inputs, labels) pairs
        genotype = shrinker.genotype()             # what survives; export_network(...) builds it

    Args:
        net: the compiled supernet.
        steps: how many shrink steps the search makes.
        mixing: `mean` (the IS-DARTS reference) or `live_mean`; see `MIXING_MODES`.
        dist: under torchrun, the `Dist` whose ranks measure together and agree on the masks.
    """

    def __init__(self, net: Supernet, steps: int, *, mixing: str = "mean", dist=None):
        if steps < 1:
            raise NascUsageError(f"{steps} shrink steps: need at least 1")
        self.net, self.steps, self.dist = net, steps, dist
        self.done_steps = 0
        self.history: list[dict] = []
        net.arch.set_mixing(mixing)

    @property
    def done(self) -> bool:
        """Every step is made: each subset keeps exactly k live candidates."""
        return self.done_steps >= self.steps

    def step(self, batches) -> dict:
        """Measure F on `batches` (tensors, or (inputs, labels) pairs; eval mode, no gradient)
        and shrink once.

        Returns:
            the step's record: step, discarded candidates, live count, and per subset every
            candidate's F and IIM (as `ISDarts` records them in `importance.json`).

        Raises:
            NascUsageError: every step was already made.
        """
        if self.done:
            raise NascUsageError(
                f"all {self.steps} shrink steps are made",
                hint="read the result with genotype(); make a new Shrinker to search again",
            )
        pairs = [(b, None) if torch.is_tensor(b) else b for b in batches]
        scores = measure(self.net, pairs, self.dist)
        subsets = shrink(self.net, scores, self.done_steps, self.steps)
        check_same(
            self.net.arch.fingerprint(),
            f"the masks after shrink step {self.done_steps + 1}",
            self.dist,
        )
        self.done_steps += 1
        record = {
            "step": self.done_steps,
            "steps": self.steps,
            "discarded": discarded_names(subsets),
            "live": self.net.arch.live_count(),
            "subsets": subsets,
        }
        self.history.append(record)
        return record

    def genotype(self) -> Genotype:
        """The live candidates: the found architecture once `done`."""
        return self.net.arch.genotype()

    def state_dict(self) -> dict:
        """What to checkpoint next to the supernet's own state_dict (which holds the masks)."""
        return {"done_steps": self.done_steps, "steps": self.steps, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.done_steps, self.steps = state["done_steps"], state["steps"]
        self.history = list(state.get("history", []))


def _iim(f: float) -> float:
    return 0.0 if math.isinf(f) else (math.inf if f == 0 else 1.0 / f)


def _json_float(value: float):
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


@register_strategy("isdarts")
class ISDarts(Strategy):
    """Information-based shrinking (IS-DARTS, AAAI 2024)."""

    Options = ISDartsOptions
    preset_family = "isdarts"

    def __init__(self, config):
        super().__init__(config)
        options = self.options
        self.schedule = shrink_epochs(config.epochs, options.shrink_steps, options.shrink_interval)
        self.history: list[dict] = []

    @classmethod
    def check(cls, config: SearchConfig) -> None:
        """The options, a schedule that fits in the epochs, and none of the DARTS family's
        options (IS-DARTS ranks candidates by the information of their full-channel outputs)."""
        options = options_of(cls.Options, config)
        steps, interval, epochs = options.shrink_steps, options.shrink_interval, config.epochs
        if steps * interval >= epochs:
            # The first shrink follows epoch `epochs - steps * interval`, which must be >= 1.
            fits = (epochs - 1) // interval
            hint = f"pass --epochs {steps * interval + 1} (or more)"
            if fits >= 1:
                hint += f", or --shrink-steps {fits} (the most that fit in {epochs} epochs)"
            elif epochs > 1:
                hint += f", or --shrink-steps {epochs - 1} --shrink-interval 1"
            raise refuse(
                "shrink_steps",
                f"{steps} steps every {interval} epochs need at least "
                f"{steps * interval + 1} epochs, not {epochs}",
                hint,
            )
        for name, off in REFUSED:
            if getattr(config, name, off) != off:  # NaN too
                raise refuse(
                    name,
                    "is a DARTS-family option: IS-DARTS ranks candidates by the information "
                    "of their full-channel outputs and has no architecture loss",
                    "use it with --strategy darts-1st, darts-2nd or single-darts",
                )

    def setup(self, net: Supernet) -> None:
        net.arch.set_mixing(self.options.mixing)

    def end_of_epoch(self, searcher: Searcher, epoch: int) -> list[dict]:
        if epoch not in self.schedule:
            return []
        step = self.schedule.index(epoch)
        started = time.perf_counter()
        samples, batches = searcher.measurement_batches(step)
        scores = measure(searcher.net, batches, searcher.dist)
        seconds = time.perf_counter() - started
        die_at("shrink", epoch)
        subsets = shrink(searcher.net, scores, step, len(self.schedule))
        check_same(
            searcher.net.arch.fingerprint(),
            f"the masks after shrink step {step + 1}",
            searcher.dist,
        )
        record = {
            "event": "shrink",
            "epoch": epoch,
            "step": step + 1,
            "steps": len(self.schedule),
            "measure_on": self.options.measure_on,
            "samples": samples,
            "measure_seconds": seconds,
            "discarded": discarded_names(subsets),
            "live": searcher.net.arch.live_count(),
        }
        self.history.append({**record, "subsets": subsets})
        return [record]

    def derive(self, net: Supernet) -> Genotype:
        return net.arch.genotype()

    def scalars(self, net: Supernet, epoch: int) -> dict[str, float]:
        """After a shrink step: the information F of every candidate it compared, as
        `information/<cell>.<edge>:<op>` (larger: closer to noise; see importance.json)."""
        if not self.history or self.history[-1]["epoch"] != epoch:
            return {}
        return {
            f"information/{subset['cell']}.{c['edge']}:{c['op']}": float(c["F"])  # "inf" too
            for subset in self.history[-1]["subsets"]
            for c in subset["candidates"]
        }

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state.get("history", []))
