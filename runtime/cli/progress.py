"""Progress of a search or training run on the command line: a rich progress bar per epoch
with a live line, or plain log lines; it subscribes to the run's callbacks (`RunEvents`)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nasc.runtime.runs.events import RunEvents


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _scores(record: dict) -> str:
    """`train 93.1%  test 91.0%` for an accuracy; a task's other metrics by name."""
    if "train_acc" in record and "test_acc" in record:
        return f"train {record['train_acc']:5.1f}%  test {record['test_acc']:5.1f}%"
    names = [
        key
        for key in record
        if key.startswith(("train_", "test_")) and key not in ("train_loss", "test_loss")
    ]
    return "  ".join(f"{key} {record[key]:.4g}" for key in names)


class Display(RunEvents):
    """Shows epochs, steps and records; `quiet` prints one plain line per epoch and shrink step.
    `finished` prints what a search found (`result_lines`)."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.started = time.perf_counter()
        self.epoch_times: list[float] = []
        self.epochs = 0
        self.epoch = 0
        self.last = ""
        self.progress = None
        self.task = None
        self._open()

    def _open(self) -> None:
        """Start the bars (again, for the next search of `--seeds N`)."""
        if self.quiet or self.progress is not None:
            return
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = None

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        """Show epoch `epoch` of `epochs`; `done` steps of it ran before a resume."""
        self._open()
        self.epoch, self.epochs = epoch, epochs
        self.epoch_started = time.perf_counter()
        self.first_step = done
        if self.progress is not None:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(
                "", total=steps, completed=done, epoch=f"{epoch}/{epochs}", status=self.last
            )

    def step(self, step: int, steps: int, loss: float | None) -> None:
        if self.progress is None:
            return
        fields = {}
        left = self.run_eta(step, steps)
        if loss is not None or (left is not None and not self.epoch_times):
            shown = f"loss {loss:.3f}  " if loss is not None else ""
            run = f"  run ETA {_clock(left)}" if left is not None and not self.epoch_times else ""
            fields["status"] = f"{shown}{self.last}{run}"
        self.progress.update(self.task, completed=step, **fields)

    def run_eta(self, step: int, steps: int) -> float | None:
        """Seconds left in the whole run, from the steps of this epoch so far (and the epochs
        done): known from the first step on, not only after the first epoch."""
        ran = step - getattr(self, "first_step", 0)
        if ran < 1 or not steps:
            return None
        per_step = (time.perf_counter() - self.epoch_started) / ran
        per_epoch = (
            sum(self.epoch_times) / len(self.epoch_times) if self.epoch_times else per_step * steps
        )
        return per_step * (steps - step) + (self.epochs - self.epoch) * per_epoch

    def record(self, record: dict) -> None:
        if record["event"] == "epoch":
            self.epoch_times.append(record["seconds"])
            left = (self.epochs - record["epoch"]) * (sum(self.epoch_times) / len(self.epoch_times))
            live = f"live {record['live']}  " if "live" in record else ""
            self.last = f"{live}{record['images_per_s']:.0f} img/s  ETA {_clock(left)}"
            line = (
                f"epoch {record['epoch']:>3}/{self.epochs}  loss {record['train_loss']:.3f}  "
                f"{_scores(record)}  "
                f"lr {record['lr']:.4f}  {live}{record['images_per_s']:.0f} img/s  "
                f"ETA {_clock(left)}"
            )
        elif record["event"] == "shrink":
            line = (
                f"shrink {record['step']}/{record['steps']} after epoch {record['epoch']}: "
                f"discarded {len(record['discarded'])}, {record['live']} candidates live"
            )
            if "measure_seconds" in record:
                line += (
                    f"  (measured on {record['samples']:,} images, {record['measure_on']}, "
                    f"in {record['measure_seconds']:.1f} s)"
                )
        elif record["event"] == "tie":
            line = (
                f"shrink {record['step']}: F = {record['F']}, tied or not finite, decided "
                f"{record['cell']} {record['subset']}: discarded {', '.join(record['discarded'])}"
                f" of {', '.join(record['candidates'])} (the rule: docs/isdarts.md section 5)"
            )
        elif record["event"] == "latency":
            line = f"expected latency after epoch {record['epoch']}: {record['expected_ms']:.3f} ms"
        elif record["event"] == "prune":
            count = sum(len(gone) for gone in record["pruned"].values())
            line = (
                f"prune after epoch {record['epoch']}: discarded {count}, "
                f"{record['live']} candidates live"
            )
        else:
            line = str(record)
        self.print(line)

    def print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def message(self, text: str) -> None:
        self.print(text)

    def finished(self, result) -> None:
        """What a search found (a `SearchResult`); a training run prints its own line."""
        if hasattr(result, "genotype"):
            for line in result_lines(result):
                self.print(line)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def accuracy_lines(result: dict) -> list[str]:
    """What each accuracy of a search is, labelled: the supernet's (shared weights) before and
    after discretisation, and the found cell's own where a table knows it."""
    lines = []
    label = result.get("metric_label", "accuracy")
    unit = result.get("metric_unit", "%")
    supernet = result.get("supernet_test_acc") or {}
    if supernet.get("before_discretisation") is not None or supernet.get("discretised"):
        parts = []
        if supernet.get("before_discretisation") is not None:
            parts.append(
                f"{supernet['before_discretisation']:.2f}{unit} before discretisation "
                f"(epoch {supernet.get('before_epoch')})"
            )
        if supernet.get("discretised") is not None:
            parts.append(
                f"{supernet['discretised']:.2f}{unit} discretised to the found architecture"
            )
        lines.append(
            f"supernet test {label} (shared weights, not trained from scratch): "
            + ", ".join(parts)
        )
    elif result.get("final_test_acc") is not None:
        lines.append(
            f"supernet test {label} (last epoch): {result['final_test_acc']:.2f}{unit}"
        )
    accuracy = result.get("nb201_accuracy")
    if accuracy:
        ranks = result.get("nb201_rank") or {}
        lines.append(
            "NAS-Bench-201 test accuracy of the found cell (trained from scratch): "
            + ", ".join(
                f"{k} {v:.2f}%" + (f" (rank {ranks[k]:,} of 15,625)" if ranks.get(k) else "")
                for k, v in accuracy.items()
            )
        )
    elif "nb201_accuracy" in result:
        lines.append("NAS-Bench-201: the cell is not in the table")
    return lines


def result_lines(found) -> list[str]:
    """What a search found (a `SearchResult`), as the command line prints it; long strings stay
    on one line so they can be copied."""
    result, run = found.result, found.run_dir
    lines = [f"found by {result['strategy']} in {result['search_seconds']:.0f} s of search"]
    for key in ("blocks", "nb201", "darts"):
        if key in result:
            lines.append(f"  {key}: {result[key]}")
    decided = {pair.split("=")[0] for pair in result.get("blocks", "").split()}
    if "nb201" not in result and "darts" not in result:
        for cell, edges in result["genotype"].items():
            if cell in decided:
                continue  # the blocks string above names it
            chosen = ", ".join(f"{e}:{'+'.join(ops) or '-'}" for e, ops in edges.items())
            lines.append(f"  {cell}: {chosen}")
    lines.extend(f"  {line}" for line in accuracy_lines(result))
    kept = result.get("single_stage")
    if kept is not None:
        lines.append(
            f"  single-stage: the supernet, its architecture frozen from epoch "
            f"{kept['frozen_from_epoch']}, is the found network ({kept['network']}, no "
            "retraining); the architecture above is what a two-stage search would derive"
        )
    if result.get("measure_seconds") is not None and result["search_seconds"] > 0:
        share = 100.0 * result["measure_seconds"] / result["search_seconds"]
        lines.append(
            f"  information measured on `{result['measure_on']}` data: "
            f"{result['measure_seconds']:.0f} s, {share:.0f}% of the search"
        )
    if run is not None:
        lines.append(f"  run directory: {run} (arch.nas, genotype.json, result.json)")
    if found.report:
        lines.append(f"  report: {found.report}")
    elif found.report_error:
        lines.append(f"  no report ({found.report_error}); try: nasc report {run}")
    return lines
