"""End-to-end tests of the search: every strategy on every reference space, resume, run files."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from tiny_search import TINY_SEARCH

from nasc.compiler import catalog
from nasc.dsl import NascUsageError, load_space
from nasc.dsl.genotype import check_genotype
from nasc.runtime.cli import main
from nasc.runtime.data.images import load_digits
from nasc.runtime.search.config import make_config
from nasc.runtime.search.loop import Searcher
from nasc.runtime.tasks import bind_data

SMALL = {
    "nb201": {"C": 4, "N": 1},
    "darts": {"C": 4, "layers": 3},
    "darts_original": {"C": 4, "layers": 3},
    "tricell": {"C": 4, "N": 1},
    "macro_choice": {"C": 4, "N": 1},
    "proxyless": {"C": 4, "D": 1},
    "gated": {"C": 4, "N": 1},
}
STRATEGIES = [
    "isdarts", "darts-1st", "darts-2nd", "single-darts", "gdas", "drnas", "ms-darts", "dqas",
]  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    """A small slice of the embedded digits."""
    return load_digits().subset(96, seed=0)


def _searcher(name, strategy, data, epochs=3, run=None, **overrides):
    space = load_space(name, catalog=catalog())
    defines = bind_data(space, SMALL[name], data)
    values = dict(
        epochs=epochs,
        batch_size=16,
        shrink_steps=2,
        shrink_interval=1,
        measure_samples=16,
        device="cpu",
        seed=0,
    )
    values.update(overrides)
    config = make_config(space.preset, strategy, values)
    # A space's genotypes are those of its searched values (block choices decide per instance).
    return space.for_values(defines), Searcher(
        space, defines, config, data, torch.device("cpu"), run=run, fingerprint="test"
    )


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_searches_every_reference_space(name, strategy, digits):
    """A tiny search trains, changes the architecture, and derives a genotype the space accepts."""
    space, searcher = _searcher(name, strategy, digits)
    before = {n: p.clone() for n, p in searcher.net.arch.alphas.items()}
    searcher.run_epochs()
    genotype = searcher.strategy.derive(searcher.net)
    check_genotype(space, genotype)
    if strategy == "isdarts":
        for cell, table in searcher.net.arch.choices.items():
            for k, members in table.subsets:
                mask = searcher.net.arch.mask(cell)
                assert sum(bool(mask[r, c]) for r, c in members) == k
    else:
        moved = any(not torch.equal(before[n], p) for n, p in searcher.net.arch.alphas.items())
        assert moved, "the architecture parameters never changed"


@pytest.mark.parametrize("strategy", ["isdarts", "gdas", "drnas", "ms-darts"])
def test_resume_reaches_the_same_result(tmp_path, digits, strategy):
    """A run stopped after two epochs and resumed ends with the same masks, genotype and metrics
    as an uninterrupted run (the sampling strategies: their draws continue the same stream)."""
    from nasc.runtime.runs.rundir import RunDir

    # DrNAS prunes after epoch 3, past the resume, so the pruned masks must come out the same.
    extra = {"drnas_prune_epoch": 3, "drnas_reg": "kl"} if strategy == "drnas" else {}
    whole_run = RunDir.create(tmp_path / "a", "nb201", strategy)
    whole_run.write_json("config.json", {})
    _, whole = _searcher("nb201", strategy, digits, epochs=4, run=whole_run, **extra)
    whole.run_epochs()
    whole_run.close()

    part_run = RunDir.create(tmp_path / "b", "nb201", strategy)
    part_run.write_json("config.json", {})
    _, first = _searcher("nb201", strategy, digits, epochs=4, run=part_run, **extra)
    while first.epoch < 2:  # stop early, as a kill after a checkpoint would
        first.run_one_epoch()
    part_run.close()

    resumed_run = RunDir.open(part_run.path)
    _, second = _searcher("nb201", strategy, digits, epochs=4, run=resumed_run, **extra)
    assert second.restore()
    assert second.epoch == 2
    second.run_epochs()
    resumed_run.close()

    assert whole.net.arch.fingerprint() == second.net.arch.fingerprint()
    assert whole.strategy.derive(whole.net) == second.strategy.derive(second.net)

    def strip(lines):
        timing = ("seconds", "images_per_s", "measure_seconds")
        return [{k: v for k, v in line.items() if k not in timing} for line in lines]

    assert strip(whole_run.metrics_lines()) == strip(resumed_run.metrics_lines())
    for key, value in whole.net.state_dict().items():
        if torch.is_tensor(value):
            assert torch.equal(value, second.net.state_dict()[key]), key


def test_a_checkpoint_of_another_space_is_refused(tmp_path, digits):
    """Resuming with a different fingerprint raises instead of loading foreign weights."""
    from nasc.runtime.runs.rundir import RunDir

    run = RunDir.create(tmp_path, "nb201", "isdarts")
    _, searcher = _searcher("nb201", "isdarts", digits, epochs=3, run=run)
    searcher.run_one_epoch()
    other = _searcher("nb201", "isdarts", digits, epochs=3, run=run)[1]
    other.fingerprint = "another"
    with pytest.raises(NascUsageError, match="another space"):
        other.restore()
    run.close()


def test_nasc_search_writes_the_run_directory(tmp_path, capsys):
    """`nasc search` on the embedded digits writes every promised file and prints the cell."""
    code = main(
        [
            "search",
            "nb201",
            *TINY_SEARCH,
            "--runs-dir",
            str(tmp_path / "runs"),
        ]
    )
    assert code == 0
    [run] = (tmp_path / "runs").iterdir()
    for name in (
        "config.json",
        "space.nas",
        "metrics.jsonl",
        "genotype.json",
        "arch.nas",
        "nb201.txt",
        "importance.json",
        "result.json",
    ):
        assert (run / name).is_file(), name
    nb201 = (run / "nb201.txt").read_text().strip()
    assert nb201 in capsys.readouterr().out
    events = [
        json.loads(line)["event"] for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    assert events.count("epoch") == 3 and events.count("shrink") == 2
    config = json.loads((run / "config.json").read_text())
    assert config["defines"]["channels"] == 1 and config["defines"]["size"] == 8
    assert len(list((run / "checkpoints").glob("ckpt-*.pt"))) == 2
    # the exported architecture is a fixed .nas file that checks and exports again
    assert main(["check", str(run / "arch.nas")]) == 0
    assert main(["export", str(run), "--format", "nb201"]) == 0
    assert nb201 in capsys.readouterr().out


TABLE_HEADER = (
    "ArchitectureString,CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,"
    "ImageNetTestAccuracy200Epochs\n"
)


@pytest.mark.slow
def test_nasc_search_resume_keeps_what_a_finished_run_recorded(tmp_path, capsys):
    """`--resume` on a finished run re-derives the same genotype and leaves its results as they
    were (time included); a resume with a table adds the NB201 accuracies, and a later one
    without it keeps them. Accuracies are labelled, the searched values and versions recorded,
    and no lock file outlives a command."""
    runs = tmp_path / "runs"
    assert main(["search", "nb201", *TINY_SEARCH, "--runs-dir", str(runs)]) == 0
    [run] = runs.iterdir()
    out = capsys.readouterr().out
    assert "before discretisation (epoch 2)" in out and "discretised to the found" in out
    first = json.loads((run / "result.json").read_text())
    genotype = (run / "genotype.json").read_text()
    assert first["searched_with"]["C"] == 4 and first["searched_with"]["N"] == 1
    assert first["supernet_test_acc"]["before_epoch"] == 2
    assert first["supernet_test_acc"]["discretised"] is not None
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = sum(line["seconds"] for line in epochs if line.get("event") == "epoch")
    assert first["search_seconds"] >= trained > 0  # every epoch's time, and more
    assert first["environment"]["torch"] == torch.__version__
    assert "Searched with C=4, N=1," in (run / "arch.nas").read_text()
    config = json.loads((run / "config.json").read_text())
    assert config["environment"]["device"] == "cpu" and config["environment"]["nasc"]
    report = (run / "report.html").read_text()
    assert "before discretisation" in report and "torch " + torch.__version__ in report
    assert not (run / ".lock").exists()

    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    assert "its results stand" in capsys.readouterr().out
    assert json.loads((run / "result.json").read_text()) == first
    assert (run / "genotype.json").read_text() == genotype

    table = tmp_path / "table.csv"
    other = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    table.write_text(TABLE_HEADER + f"{first['nb201']},91.5,70.25,40.0\n{other},10,1,1\n")
    assert main(["search", "--resume", str(run), "--quiet", "--nb201-table", str(table)]) == 0
    looked_up = json.loads((run / "result.json").read_text())
    assert looked_up["nb201_accuracy"]["cifar10"] == 91.5
    assert looked_up["nb201_rank"]["cifar10"] == 1
    assert looked_up["search_seconds"] == first["search_seconds"]
    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "result.json").read_text()) == looked_up
    assert "rank 1 of 15,625" in capsys.readouterr().out
    assert not (run / ".lock").exists()


def test_search_time_accumulates_over_a_resume(tmp_path, digits):
    """A search stopped after its first epoch and resumed counts the time of both parts."""
    from nasc.runtime.runs.rundir import RunDir

    run = RunDir.create(tmp_path, "nb201", "darts-1st")
    run.write_json("config.json", {})
    _, first = _searcher("nb201", "darts-1st", digits, epochs=2, run=run)
    first.run_one_epoch()
    spent = first.seconds
    assert spent > 0
    run.close()
    again = RunDir.open(run.path)
    _, second = _searcher("nb201", "darts-1st", digits, epochs=2, run=again)
    assert second.restore() and second.seconds == spent
    second.run_epochs()
    assert second.seconds > spent
    again.close()


def test_seeds_summary_says_how_many_seeds_each_figure_covers(tmp_path):
    """With one of two seeds' cells in the table, the NB201 mean says `1 of 2 seeds` (no
    spread from one), and search time and supernet accuracy are summarised for both."""
    import io

    from rich.console import Console

    from nasc.runtime.search.run import summarise_seeds

    def result(seed, accuracy):
        return {
            "space": "nb201",
            "strategy": "isdarts",
            "seed": seed,
            "run": str(tmp_path / f"run-{seed}"),
            "genotype": {},
            "nb201": f"|cell{seed}|",
            "nb201_accuracy": accuracy,
            "search_seconds": 10.0 + 2 * seed,
            "supernet_test_acc": {"before_discretisation": 80.0 + seed, "discretised": 60.0},
        }

    buffer = io.StringIO()
    results = [result(0, {"cifar10": 93.1}), result(1, None)]
    summarise_seeds(Console(file=buffer, width=200), tmp_path / "seeds", results)
    out = buffer.getvalue()
    assert "NAS-Bench-201 cifar10: 93.10% (1 of 2 seeds; no spread from one)" in out
    assert "search time: 11.0 +- 1.4 s (over all 2 seeds)" in out
    assert "supernet test accuracy before discretisation: 80.50 +- 0.71%" in out
    assert "seed 1: |cell1|  (not in the table)" in out
    summary = json.loads((tmp_path / "seeds" / "summary.json").read_text())
    assert summary["seeds"] == 2 and summary["nb201_accuracy"]["cifar10"]["runs"] == 1
    assert summary["search_seconds"]["runs"] == 2


NO_NATS = importlib.util.find_spec("nats_bench") is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--strategy", "evolution"], "unknown strategy `evolution`"),
        (["--preset", "imagenet"], "unknown preset `imagenet`"),
        (["-D", "classes=100"], "contradicts the data"),
        (["-D", "depth=3"], "unknown parameter `depth`"),
        (["--epochs", "4"], "pass --epochs 9 (or more), or --shrink-steps 1 (the most that fit"),
        (["--epochs", "1"], "need at least 9 epochs, not 1"),
        (["--data", "/nonexistent/folder"], "no such folder"),
        (["--subset", "0"], "--subset 0: must be at least 1"),
        (["--dist-timeout", "0"], "--dist-timeout 0: must be a positive number of seconds"),
        (["--subset", "-5"], "--subset -5: must be at least 1"),
        (["--seeds", "0"], "--seeds 0: must be at least 1"),
        (["--image-size", "0"], "--image-size 0: must be at least 1"),
        (["--nb201-table", "/nonexistent/table.csv"], "--nb201-table /nonexistent/table.csv"),
        (["--nb201-table", "{tmp}/bad.csv"], "has no column CIFAR10TestAccuracy200Epochs"),
        (["--nb201-columns", "arch=A"], "--nb201-columns names the columns of --nb201-table"),
        pytest.param(
            ["--nats-bench"],
            "needs the nats_bench package",
            marks=pytest.mark.skipif(not NO_NATS, reason="nats_bench is installed"),
        ),
        (["-D", "C=100000"], "GiB to train at batch 64"),
        (["--strategy", "gdas", "--gdas-tau-min", "0"], "--gdas-tau-min/--gdas-tau-max must"),
        (["--strategy", "drnas", "--drnas-reg", "l1"], "--drnas-reg must be l2 or kl"),
        (["--strategy", "drnas", "--drnas-prune-epoch", "50"], "--drnas-prune-epoch 25"),
        (["--strategy", "ms-darts", "--ms-samples", "0"], "--ms-samples must be at least 1"),
        (["--subset", "5000"], "--subset 5000: digits has only 1437 training examples"),
        (["--shrink-steps", "10"], "--shrink-steps 10: `nb201` can use at most 4 shrink steps"),
        (["--lr", "nan"], "lr=nan: must be a finite number"),
        (["--lr", "inf"], "lr=inf: must be a finite number"),
        (["--strategy", "gdas", "--gdas-tau-max", "inf"], "gdas_tau_max=inf: must be a finite"),
        (["--momentum", "-0.5"], "--momentum -0.5: must not be negative"),
        (["--weight-decay", "-1"], "--weight-decay -1: must not be negative"),
    ],
)
def test_nasc_search_rejects_bad_input_with_a_clear_error(argv, message, tmp_path, capsys):
    """Bad flags end with exit status 2 and a message naming the problem, without a traceback,
    before the first epoch, and without leaving a run directory behind."""
    (tmp_path / "bad.csv").write_text("ArchitectureString,accuracy\n|a~0|,1\n")
    argv = [item.replace("{tmp}", str(tmp_path)) for item in argv]
    runs = tmp_path / "runs"
    code = main(["search", "nb201", "--data", "digits", "--runs-dir", str(runs), "--quiet", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not runs.exists() or not any(runs.iterdir())


def test_a_space_without_data_parameters_must_fit_the_data(digits):
    """A network that hard-codes 3 input channels is refused on 1-channel digits."""
    from nasc.dsl import parse_space

    space = parse_space(
        """
        ops o = {none, skip_connect}
        cell c(x) { a = x:o  keep 1 per edge  out a }
        network n(C = 4) { input(3, 32) stem conv3x3_bn(C) c @ C head pool_linear(10) }
        """,
        catalog=catalog(),
    )
    with pytest.raises(NascUsageError, match="expects 3 image channels"):
        bind_data(space, {}, digits)


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy", ["isdarts", "single-darts", "darts-1st", "gdas", "drnas", "ms-darts"]
)
def test_a_search_killed_inside_an_epoch_resumes_there_to_the_same_result(
    tmp_path, digits, monkeypatch, strategy
):
    """With checkpoints inside epochs, a search killed in the middle of its second epoch resumes
    at that step and ends with the weights, alphas (or IS-DARTS' masks, shrunk once after the
    first epoch) and metrics of an uninterrupted run."""
    from nasc.runtime.runs.checkpoint import checkpoints
    from nasc.runtime.runs.rundir import RunDir
    from nasc.runtime.search import loop as trainer_module

    whole_run = RunDir.create(tmp_path / "a", "nb201", strategy)
    _, whole = _searcher("nb201", strategy, digits, epochs=2, run=whole_run, shrink_steps=1)
    whole.run_epochs()
    whole_run.close()

    class Killed(Exception):
        pass

    def die_at(point, epoch, step=None):
        if (point, epoch, step) == ("kill", 2, 2):
            raise Killed

    part_run = RunDir.create(tmp_path / "b", "nb201", strategy)
    part_run.write_json("config.json", {})
    _, first = _searcher("nb201", strategy, digits, epochs=2, run=part_run, shrink_steps=1)
    first.checkpoint_seconds = 0.0  # a checkpoint after every step
    monkeypatch.setattr(trainer_module, "die_at", die_at)
    with pytest.raises(Killed):
        first.run_epochs()
    monkeypatch.undo()
    part_run.close()
    assert checkpoints(part_run.checkpoints)[-1].name == "ckpt-00001-s000002.pt"

    resumed_run = RunDir.open(part_run.path)
    _, second = _searcher("nb201", strategy, digits, epochs=2, run=resumed_run, shrink_steps=1)
    assert second.restore()
    assert second.epoch == 1 and second.partial["step"] == 2
    second.run_epochs()
    resumed_run.close()

    def strip(lines):
        timing = ("seconds", "images_per_s", "measure_seconds")
        return [{k: v for k, v in line.items() if k not in timing} for line in lines]

    assert strip(whole_run.metrics_lines()) == strip(resumed_run.metrics_lines())
    assert whole.net.arch.fingerprint() == second.net.arch.fingerprint()
    for key, value in whole.net.state_dict().items():
        if torch.is_tensor(value):
            assert torch.equal(value, second.net.state_dict()[key]), key
    assert whole.strategy.derive(whole.net) == second.strategy.derive(second.net)
    assert second.seconds > 0


def test_the_run_eta_is_known_from_the_first_steps():
    """Ten steps of a hundred in the first of ten epochs, one second each: about 990 s left."""
    import time

    from rich.console import Console

    from nasc.runtime.cli.progress import Display

    display = Display(Console(quiet=True), quiet=True)
    display.start_epoch(1, 10, 100)
    display.epoch_started = time.perf_counter() - 10.0
    assert 980 < display.run_eta(10, 100) < 1000
    display.start_epoch(1, 10, 100, done=50)  # resumed halfway through the epoch
    display.epoch_started = time.perf_counter() - 10.0
    assert 940 < display.run_eta(60, 100) < 960
