"""End-to-end tests of the search: every strategy on every reference space, resume, run files."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_search import TINY_SEARCH

from nasc.compiler import catalog
from nasc.dsl import NascUsageError, load_space
from nasc.dsl.genotype import check_genotype
from nasc.runtime.cli import main
from nasc.runtime.config import make_config
from nasc.runtime.data import load_digits
from nasc.runtime.search import bind_data
from nasc.runtime.trainer import Searcher

SMALL = {
    "nb201": {"C": 4, "N": 1},
    "darts": {"C": 4, "layers": 3},
    "darts_original": {"C": 4, "layers": 3},
    "tricell": {"C": 4, "N": 1},
}
STRATEGIES = ["isdarts", "darts-1st", "darts-2nd", "single-darts"]


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
    return space, Searcher(
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


def test_resume_reaches_the_same_result(tmp_path, digits):
    """A run stopped after two epochs and resumed ends with the same masks, genotype and metrics
    as an uninterrupted run."""
    from nasc.runtime.rundir import RunDir

    whole_run = RunDir.create(tmp_path / "a", "nb201", "isdarts")
    whole_run.write_json("config.json", {})
    _, whole = _searcher("nb201", "isdarts", digits, epochs=4, run=whole_run)
    whole.run_epochs()
    whole_run.close()

    part_run = RunDir.create(tmp_path / "b", "nb201", "isdarts")
    part_run.write_json("config.json", {})
    _, first = _searcher("nb201", "isdarts", digits, epochs=4, run=part_run)
    while first.epoch < 2:  # stop early, as a kill after a checkpoint would
        first.run_one_epoch()
    part_run.close()

    resumed_run = RunDir.open(part_run.path)
    _, second = _searcher("nb201", "isdarts", digits, epochs=4, run=resumed_run)
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
    from nasc.runtime.rundir import RunDir

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


def test_nasc_search_resume_finishes_a_run(tmp_path):
    """`--resume RUN_DIR` on a finished run re-derives the same genotype without training."""
    args = [
        "search",
        "nb201",
        *TINY_SEARCH,
        "--runs-dir",
        str(tmp_path),
    ]
    assert main(args) == 0
    [run] = tmp_path.iterdir()
    first = (run / "genotype.json").read_text()
    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    assert (run / "genotype.json").read_text() == first


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--strategy", "evolution"], "unknown strategy `evolution`"),
        (["--preset", "imagenet"], "unknown preset `imagenet`"),
        (["-D", "classes=100"], "contradicts the data"),
        (["-D", "depth=3"], "unknown parameter `depth`"),
        (["--epochs", "4"], "need at least 9 epochs"),
        (["--data", "/nonexistent/folder"], "no such folder"),
    ],
)
def test_nasc_search_rejects_bad_input_with_a_clear_error(argv, message, tmp_path, capsys):
    """Bad flags end with exit status 2 and a message naming the problem, without a traceback."""
    code = main(
        ["search", "nb201", "--data", "digits", "--runs-dir", str(tmp_path), "--quiet", *argv]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


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
