"""What a task is: the parts of a search or a training run that depend on the kind of problem.

The loops (`Searcher`, `Trainer`) know batches, a loss to minimise and named sums to add up;
a task says what they are. Image classification (`classification.py`) is the first. A new
task (segmentation, a sequence, a circuit) is a `Task` subclass registered with
`@register_task("name")`; nothing in the loops changes (docs/python.md, "Tasks").
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch

from nasc.dsl import NascError, NascUsageError, SpaceIR

# The network parameters a task may bind from its data, and how an error names each.
DATA_PARAMS = {"channels": "input channels", "size": "input size", "classes": "outputs"}


class Task:
    """The hooks the loops call; subclasses fill them.

    Attributes:
        name: the registered name (set by `register_task`).
        metric: the metric that reports call accuracy: records carry `train_<metric>` and
            `test_<metric>`, result.json's `final_test_acc` is its last `test_<metric>` (and,
            for a metric other than `acc`, `final_test_<metric>` too, with `metric` naming
            it), and the best epoch of a training run is the one where it is largest (or
            smallest, where `higher_is_better` is False).
        metric_label: how reports and the command line name the metric ("accuracy", "mIoU").
        sums: the names of the per-batch sums that `batch_sums` returns and `metrics` reads
            (a checkpoint taken inside an epoch keeps them). A sum is a tensor of any fixed
            shape: a 0-d count, or a K x K confusion matrix.
    """

    name: ClassVar[str] = "base"
    metric: ClassVar[str] = "acc"
    metric_label: ClassVar[str] = "accuracy"
    metric_unit: ClassVar[str] = "%"  # written after the metric's values ("" for perplexity)
    higher_is_better: ClassVar[bool] = True  # False: the best epoch has the least (perplexity)
    sums: ClassVar[tuple[str, ...]] = ()
    words: ClassVar[dict[str, str]] = DATA_PARAMS  # how errors name each of `facts`

    # --- data -------------------------------------------------------------------------------------

    def load(self, spec: str, cache_dir: str | None = None, image_size: int | None = None) -> Any:
        """The data named by `spec` (`--data`); it has a `name` and `subset(count, seed)`."""
        raise NotImplementedError

    def examples(self, data: Any, split: str) -> int:
        """How many examples the split (`train` or `test`) holds."""
        raise NotImplementedError

    def batches(
        self,
        data: Any,
        split: str,
        batch_size: int,
        device: torch.device,
        *,
        indices: torch.Tensor | None = None,
        augment: bool = False,
        drop_last: bool = False,
        cutout: int = 0,
        shard: tuple[int, int] = (0, 1),
    ):
        """Batches of the split (the examples at `indices`, in that order, when given): an
        object with `len()` and `epoch(seed, start=0, shuffle=True)` yielding (inputs, targets),
        as `data.images.Batches`."""
        raise NotImplementedError

    def subset(self, data: Any, count: int, seed: int = 0) -> Any:
        """`count` training examples of the data (`--subset`), drawn with `seed`, as the data's
        own `subset` draws them (image data: and a quarter as many test examples).

        Raises:
            NascUsageError: more examples than the data holds (a run would record the count
                asked for while it trained on fewer).
        """
        have = self.examples(data, "train")
        if count > have:
            raise NascUsageError(
                f"--subset {count}: {data.name} has only {have} training examples",
                hint=f"pass --subset {have} or less, or leave --subset out to use them all",
            )
        return data.subset(count, seed=seed)

    def mix(self, data: Any, seed: int) -> Any:
        """The data in the fixed order a search reads it in, made from `seed` and the examples
        alone, so no batch sees the order the source was stored in (the default keeps it)."""
        return data

    def facts(self, data: Any) -> dict[str, int]:
        """What the data fixes of the network: `channels`, `size` and `classes` (the head's
        width), where the task has them."""
        return {}

    # --- the head contract ------------------------------------------------------------------------

    def bind(self, space: SpaceIR, defines: dict[str, int], data: Any) -> dict[str, int]:
        """The -D values with what the data fixes (`facts`) bound to the network's parameters.

        A network that declares `channels`, `size` or `classes` takes them from the data; a -D
        that contradicts the data, or a network whose fixed input or head does not fit it, is
        refused.

        Raises:
            NascUsageError: naming the mismatch and what to change.
        """
        from nasc.compiler import catalog
        from nasc.dsl.macro import instantiate

        facts = self.facts(data)
        bound = dict(defines)
        for name, have in facts.items():
            if name not in space.network.param_names:
                continue
            if name in defines and defines[name] != have:
                raise NascUsageError(
                    f"-D {name}={defines[name]} contradicts the data: {data.name} has "
                    f"{have} {self.words[name]}",
                    hint=f"drop -D {name}; nasc takes it from the data",
                )
            bound[name] = have
        plan = instantiate(space, bound, catalog())
        head = next(stage for stage in plan.stages if stage.kind == "head")
        built = {"channels": plan.channels, "size": plan.size, "classes": head.width}
        for name, want in facts.items():
            if built[name] != want:
                raise NascUsageError(
                    f"the space `{space.name}` expects {built[name]} {self.words[name]} but "
                    f"{data.name} has {want}",
                    hint=f"declare a `{name}` parameter in the network header and use it "
                    f"({'input(channels, size)' if name != 'classes' else 'head ...(classes)'}), "
                    "so nasc can bind it to the data",
                )
        return bound

    def check_network(self, net: torch.nn.Module, data: Any, device: torch.device) -> None:
        """Run two test examples through `net` once, as a run would (in eval mode, without
        gradients, leaving the network's mode and the random state as they were), so a network
        that cannot run on the data is refused before a run directory is made.

        Raises:
            NascUsageError: the forward pass failed (most often an op, a plugin's perhaps, that
                gives another channel count or map size than its place needs), or the output
                does not fit the targets (`check_output`).
        """
        count = min(2, self.examples(data, "test"))
        if count == 0:
            return
        batches = self.batches(data, "test", count, device, indices=torch.arange(count))
        inputs, targets = next(iter(batches.epoch(None)))
        training = net.training
        cuda = [device] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda), torch.no_grad():
                net.eval()
                output = net(inputs)
        except NascError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the network raised, said plainly
            raise NascUsageError(
                f"the network cannot run on {data.name}: {type(error).__name__}: {error}",
                hint="an op gives another channel count or map size than its place needs "
                "(an op registered in Python must return C_out channels at ceil(size / "
                "stride)); `nasc show FILE --code` prints the generated forward",
            ) from None
        finally:
            net.train(training)
        self.check_output(output[0] if isinstance(output, tuple) else output, targets)

    def check_output(self, output: torch.Tensor, targets: torch.Tensor) -> None:
        """Refuse a network output that the loss cannot take for these targets (checked on the
        first batch a run trains on).

        Raises:
            NascUsageError: naming the shapes and what the head must produce.
        """

    def metric_fields(self, final: float | None, best: float | None = None) -> dict:
        """What result.json says of the metric: the task, the metric's key and label, and,
        for a metric other than `acc`, the final (and best) value under its own name
        (`final_test_miou`); `final_test_acc` and `best_test_acc` hold them for every task."""
        fields = {"task": self.name, "metric": self.metric, "metric_label": self.metric_label}
        fields["metric_unit"] = self.metric_unit
        if self.metric != "acc":
            fields[f"final_test_{self.metric}"] = final
            if best is not None:
                fields[f"best_test_{self.metric}"] = best
        return fields

    # --- loss, metrics, predictions -----------------------------------------------------------

    def loss(
        self, output: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0
    ) -> torch.Tensor:
        """The mean loss of a batch; `smoothing` is the training run's label smoothing."""
        raise NotImplementedError

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """The prediction the network's output draws (a class, a value, a mask)."""
        raise NotImplementedError

    def batch_sums(self, output: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch's contribution to each of `sums` (summed over the batch): tensors of a
        fixed shape each, 0-d for a count; integer sums are added up exactly."""
        raise NotImplementedError

    def metrics(self, sums: dict[str, float | torch.Tensor], seen: int) -> dict[str, float]:
        """The metrics of a pass from its `sums` over `seen` examples: `{metric: value, ...}`.
        A 0-d sum comes as a float, any other as a CPU tensor (`read_sums`)."""
        raise NotImplementedError

    def chance_loss(self, data: Any) -> float:
        """The loss of an uninformed guess: an epoch whose training loss is more than twice it
        is not healthy (how a diverged run finds a safe learning rate)."""
        raise NotImplementedError


def zero_sums(names) -> dict[str, torch.Tensor]:
    """The running sums of a pass before its first batch: 0-d int64 zeros, which take each
    batch sum's shape and dtype as `add_sums` adds to them (integer counts stay exact)."""
    return {name: torch.zeros((), dtype=torch.int64) for name in names}


def add_sums(running: dict, batch: dict[str, torch.Tensor]) -> None:
    """Add a batch's `batch_sums` into the running sums, in place (on the batch's device)."""
    for name, value in batch.items():
        have = running[name]
        running[name] = (have.to(value.device) if torch.is_tensor(have) else have) + value


def read_sums(sums: dict) -> dict[str, float | torch.Tensor]:
    """The sums as `Task.metrics` reads them: a 0-d sum (or a number) as a float, any other
    as a CPU tensor."""
    return {
        name: value.detach().cpu() if torch.is_tensor(value) and value.dim() else float(value)
        for name, value in sums.items()
    }


@attrs.frozen
class TaskLoss:
    """A task's loss as the loops call it, `criterion(output, targets)`, with a training run's
    label smoothing."""

    task: Task
    label_smoothing: float = 0.0

    def __call__(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.task.loss(output, targets, self.label_smoothing)
