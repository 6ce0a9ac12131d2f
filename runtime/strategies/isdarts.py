"""IS-DARTS: shrink the supernet by the information of each candidate's output.

No architecture parameters: a mask per cell type, shared by its instances. Weights train on the
whole training set with the live candidates summed and scaled by 1/|candidate set|. At the shrink
epochs, the Fisher information F of every live candidate's output is measured on a fixed number
of training images, and inside every comparison subset the candidates with the largest F (the
least informative, most noise-like outputs) are discarded, on a schedule that leaves exactly k.
Which images F is measured on is a protocol (`measure_on`; see `Searcher.measurement_batches`).
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import TYPE_CHECKING

import attrs
import torch
from torch import nn

from nasc.dsl import Genotype, NascUsageError, SpaceIR
from nasc.dsl.ir import BLOCK_EDGE
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


def most_useful_steps(space: SpaceIR) -> tuple[int, str]:
    """The most shrink steps that each discard something, and why: while steps <= |S| - k for
    some subset S, `discard_count` drops at least one of its candidates at every step, so the
    subset that drops the most sets the number; a further step finds every subset at k.

    Returns:
        (the most steps, the subset that sets it, in words); (0, "") without choices.
    """
    drops = [
        (len(subset.members) - subset.k, cell.name, subset)
        for cell in space.used_cells()
        for subset in cell.subsets
    ]
    if not drops:
        return 0, ""
    most, cell, subset = max(drops, key=lambda drop: drop[0])
    return most, (
        f"its largest comparison subset, {subset.label} of cell `{cell}`, keeps {subset.k} of "
        f"{len(subset.members)} candidates"
    )


# Elementwise activations: a candidate that ends in them is measured on the tensor before them.
ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.Sigmoid,
    nn.Tanh,
    nn.GELU,
    nn.Hardswish,
    nn.SiLU,
    nn.Hardsigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
    nn.Softplus,
)


def measured_module(module: nn.Module) -> nn.Module:
    """The module whose output is a candidate's measured output: the candidate itself, or, when
    its chain ends in elementwise activations, the step before them (recursively, through nested
    sequences).

    The paper's F models a pixel's channels as Gaussian samples; a rectified or squashed tensor
    is not (a ReLU puts a point mass at 0, so a pixel's spread is often exactly 0, and a sigmoid
    shrinks the spread to a quarter); the linear or normalised tensor before the activation is.
    An op that does not end in an activation (every NB201 and DARTS candidate: they end in a BN,
    a pooling or the identity) is measured on its own output, as in the paper. docs/isdarts.md
    has the experiment behind this rule.
    """
    inner = _before_activation(module)
    return module if inner is None else inner


def _before_activation(module: nn.Module) -> nn.Module | None:
    if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
        return None  # not a plain chain (a residual, a head, a plugin): its own output
    steps = list(module)
    end = len(steps)
    while end and isinstance(steps[end - 1], ACTIVATIONS):
        end -= 1
    if end == 0:
        return None  # activations only: nothing before them inside the op
    deeper = _before_activation(steps[end - 1])
    if deeper is not None:
        return deeper
    return steps[end - 1] if end < len(steps) else None


def information_sums(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: the sum of the paper's per-pixel F over the pixels whose channels are not all
    equal, and the number of those pixels.

    A pixel's F is 3 (C - 1) / C / sigma^4 (the paper's 3 (x - mu)^2 / sigma^6 summed over the
    channels and divided by C; see `information`). A pixel with all channels equal has no spread
    to measure; the paper's formula gives it NaN, taken as +inf, so that one such pixel made the
    whole sample infinite. Here it is left out, and a candidate is infinite only when none of its
    pixels has a spread (a constant output, e.g. `none`). Where no pixel is constant, the sums
    over a batch divided by the counts are the mean of `information` over the samples (up to
    rounding).
    """
    x = output.detach().float()
    # (B, C, pixels), for any number of spatial axes; a recurrent cell's op gives one step's
    # state vectors (B, C), each a pixel, so its calls over the steps add up like pixels.
    x = x.unsqueeze(-1) if x.dim() == 2 else x.flatten(2)
    channels = x.shape[1]
    centred = x - x.sum(dim=1, keepdim=True) / channels
    squares = (centred * centred).sum(dim=1) - centred.sum(dim=1).pow(2) / channels
    variance = squares / max(channels - 1, 1)
    spread = (x.amax(dim=1) > x.amin(dim=1)) & (variance > 0)  # never with one channel
    terms = torch.where(spread, 3.0 * (channels - 1) / channels / variance.pow(2), 0.0)
    return terms.sum(dim=1).double(), spread.sum(dim=1)


def measure(net: Supernet, batches, dist=None) -> dict[str, dict[tuple[str, str], float]]:
    """F of every live candidate of every searched cell type, averaged over samples and instances.

    Each candidate is measured on `measured_module`'s output, with `information_sums`: the mean
    over its pixels with a spread, over all samples; +inf when it has none (`none`, a pruned op).

    Args:
        batches: (images, labels) batches; the measurement runs in eval mode without gradients.
        dist: under torchrun, each rank measures its share of the samples, and the sums and
            counts are added over ranks before any average, so every rank ranks alike.

    Returns:
        `{cell type: {(edge, op): F}}`.
    """
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, torch.Tensor] = {}
    owners: dict[int, tuple[str, str, str]] = {}
    handles = []

    def hook(module, inputs, output):
        key = id(module)
        total, count = information_sums(output)
        sums[key] = sums.get(key, 0.0) + total.sum()
        counts[key] = counts.get(key, 0) + count.sum()

    for cell in net.cells():
        table = net.arch.choices.get(cell.cell_type)
        if table is None:
            continue
        for edge in table.edges:
            for op in net.arch.live(cell.cell_type, edge):
                module = measured_module(cell.edges[edge][op])
                owners[id(module)] = (cell.cell_type, edge, op)
                handles.append(module.register_forward_hook(hook))
    handles += _width_hooks(net, sums, counts, owners)
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
        value = total / count if count else math.inf  # no pixel with a spread: constant
        per_instance.setdefault(cell, {}).setdefault((edge, op), []).append(value)
    return {
        cell: {member: sum(values) / len(values) for member, values in members.items()}
        for cell, members in per_instance.items()
    }


def _width_hooks(net: Supernet, sums: dict, counts: dict, owners: dict) -> list:
    """Hooks that measure the widths of every choice among widths with more than one live: a
    width's F is that of the channel group it adds over the next smaller live width, on the
    output of every stage the choice sizes (`nasc.compiler.widths.channel_groups`), divided by
    the weight the mixture gives the group. Owners are keyed by (stage, width) pairs."""
    if net.widths is None:
        return []
    from nasc.compiler.widths import channel_groups

    net.widths.set_weights()
    handles = []
    for choice in net.widths.choices:
        for index, groups in channel_groups(net, choice.label).items():
            for width, start, end, scale in groups:
                key = (choice.label, index, width)
                owners[key] = (choice.label, BLOCK_EDGE, width)

                def hook(module, inputs, output, key=key, start=start, end=end, scale=scale):
                    total, count = information_sums(output[:, start:end] / max(scale, 1e-12))
                    sums[key] = sums.get(key, 0.0) + total.sum()
                    counts[key] = counts.get(key, 0) + count.sum()

                handles.append(net.stages[index].register_forward_hook(hook))
    return handles


# The reference code's candidate lists (NB201's and DARTS', which agree on their common ops),
# merged: the first part of the canonical op order that breaks exact ties (see `tie_key`).
REFERENCE_ORDER = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)
TIE_RULE = (
    "equal F: the source node earlier in the cell first (inputs in signature order, then nodes "
    "as defined), then the target, then the op in the reference code's order (none, "
    "skip_connect, nor_conv_1x1, nor_conv_3x3, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, "
    "dil_conv_5x5, avg_pool_3x3, max_pool_3x3), then any other op by a BLAKE2b hash of its name; "
    "the order in which a set lists its candidates plays no part"
)


def op_rank(op: str) -> tuple:
    """An op's place in the canonical tie order: the reference's ops first, in its order, then
    the others by a hash of their names (fixed, and unrelated to where a set lists them)."""
    if op in REFERENCE_ORDER:
        return (0, REFERENCE_ORDER.index(op), "")
    return (1, hashlib.blake2b(op.encode(), digest_size=8).hexdigest(), op)


def tie_key(table, edge: str, op: str) -> tuple:
    """Among candidates of equal F, the one with the smaller key is discarded first.

    On the papers' spaces this is the reference code's order (it lists candidates by source node,
    then by op in its candidate list, and a stable sort keeps that order among equal F), so
    discards agree with it even on exact ties; unlike the reference, it never reads the order in
    which a `.nas` file lists a set's candidates.
    """
    source, _, target = edge.partition("->")
    order = {name: index for index, name in enumerate(getattr(table, "sources", ()))}
    last = len(order)
    return (order.get(source, last), order.get(target, last), op_rank(op), edge)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def shrink(
    net: Supernet, scores: dict[str, dict[tuple[str, str], float]], step: int, steps: int
) -> list[dict]:
    """Discard, inside every comparison subset, the candidates with the largest F.

    Exact ties are broken by `tie_key` (`TIE_RULE`), never by listing order. When equal F decides
    which candidates go (equal values straddle the cut), the subset's record says so under
    `ties` (unless only `none` candidates tie: none of them is ever computed, so which goes first
    changes nothing); a discarded candidate other than `none` whose F is not finite is named
    under `non_finite`.

    Returns:
        per subset: its cell, label, k, and every live candidate with F, IIM (1/F) and whether
        it was discarded (and `ties` / `non_finite` when they decided a discard).
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
            # A width choice that sizes no stage's output has nothing measured: +inf each.
            f = {m: math.inf for m in alive} | scores.get(cell, {})
            ranked = sorted(alive, key=lambda m: (-_order_value(f[m]), tie_key(table, *m)))
            chosen = set(ranked[:count])
            discarded.extend(chosen)
            record = {
                "cell": cell,
                "subset": label,
                "k": k,
                "candidates": [
                    {
                        "edge": edge,
                        "op": op,
                        "F": _json_float(f[(edge, op)]),
                        "IIM": _json_float(_iim(f[(edge, op)])),
                        "discarded": (edge, op) in chosen,
                    }
                    for edge, op in alive
                ],
            }
            straddled = 0 < count < len(ranked) and _same(f[ranked[count - 1]], f[ranked[count]])
            cut = f[ranked[count - 1]] if straddled else None
            tied = [m for m in ranked if straddled and _same(f[m], cut)]
            if tied and any(op != "none" for _, op in tied):
                record["ties"] = [
                    {
                        "F": _json_float(cut),
                        "candidates": [f"{e}:{o}" for e, o in tied],
                        "discarded": [f"{e}:{o}" for e, o in tied if (e, o) in chosen],
                        "rule": TIE_RULE,
                    }
                ]
            odd = [m for m in ranked[:count] if not math.isfinite(f[m]) and m[1] != "none"]
            if odd:
                record["non_finite"] = [f"{e}:{o}" for e, o in odd]
            records.append(record)
        net.arch.discard(cell, discarded)
    return records


def _order_value(f: float) -> float:
    return math.inf if math.isnan(f) else f


def tie_records(subsets: list[dict]) -> list[dict]:
    """One metrics record per subset where equal or non-finite F decided a discard."""
    found = []
    for s in subsets:
        for tie in s.get("ties", ()):
            found.append({"event": "tie", "cell": s["cell"], "subset": s["subset"], **tie})
        if s.get("non_finite"):
            found.append(
                {
                    "event": "tie",
                    "cell": s["cell"],
                    "subset": s["subset"],
                    "F": "inf",
                    "candidates": s["non_finite"],
                    "discarded": s["non_finite"],
                    "rule": "non-finite F (no pixel with a spread): discarded as the least "
                    "informative",
                }
            )
    return found


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
        ties = tie_records(subsets)
        if ties:
            record["ties"] = ties
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

    @classmethod
    def fit_space(cls, config: SearchConfig, space: SpaceIR, given) -> tuple[SearchConfig, list]:
        """No more shrink steps than the space can use (`most_useful_steps`): more given
        explicitly are refused; a preset's are lowered to the most, with a note."""
        steps = config.shrink_steps
        most, why = most_useful_steps(space)
        if most < 1 or steps <= most:
            return config, []
        why += f", so a step beyond {most} would discard nothing"
        if "shrink_steps" in given:
            raise refuse(
                "shrink_steps",
                f"{steps}: `{space.name}` can use at most {most} shrink steps ({why})",
                f"pass --shrink-steps {most} (or fewer)",
            )
        note = (
            f"note: the preset's {steps} shrink steps are more than `{space.name}` can use "
            f"({why}): shrinking in {most} shrink steps (--shrink-steps sets them)"
        )
        return attrs.evolve(config, shrink_steps=most), [note]

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
        ties = [{"epoch": epoch, "step": step + 1, **tie} for tie in tie_records(subsets)]
        return [record, *ties]

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
