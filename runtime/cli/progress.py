"""Progress of a search: a rich progress bar per epoch with a live line, or plain log lines."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Display:
    """Shows epochs, steps and records; `quiet` prints one plain line per epoch and shrink step."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.started = time.perf_counter()
        self.epoch_times: list[float] = []
        self.epochs = 0
        self.epoch = 0
        self.last = ""
        self.progress = None
        if not quiet:
            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=console,
                transient=True,
            )
            self.progress.start()
            self.task = None

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        """Show epoch `epoch` of `epochs`; `done` steps of it ran before a resume."""
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
                f"train {record['train_acc']:5.1f}%  test {record['test_acc']:5.1f}%  "
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

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
