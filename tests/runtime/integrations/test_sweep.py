"""`nasc sweep` through submitit's local executor: one process per search, as a SLURM job array
would run them; the table and report they gather into; skipping and resuming on a second run."""

from __future__ import annotations

import json
import os

import pytest
from tiny_search import TINY_SEARCH

from nasc.runtime.cli import main

pytest.importorskip("submitit")  # the `sweep` extra; `test` installs it too

SWEEP = ["sweep", "nb201", "--strategy", "isdarts,darts-1st", "--seeds", "2", "--executor", "local"]
TINY = [flag for flag in TINY_SEARCH if flag != "--quiet"]
TIMING = ("seconds", "images_per_s", "measure_seconds")


def outcome(run: str):
    """What two runs of one point must agree on: genotype and metrics without timings."""
    lines = (os.path.join(run, "metrics.jsonl"), os.path.join(run, "genotype.json"))
    metrics = [
        {k: v for k, v in json.loads(line).items() if k not in TIMING}
        for line in open(lines[0]).read().splitlines()
    ]
    return open(lines[1]).read(), metrics


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep") / "grid"
    code = main([*SWEEP, *TINY, "--sweep-dir", str(folder)])
    return code, folder


@pytest.mark.slow
def test_a_sweep_of_two_strategies_by_two_seeds_writes_one_summary(sweep, capsys):
    """2 strategies x 2 seeds run as four local jobs and gather into one table: two groups of
    two seeds each, every search's own result and run directory, a summary and a report."""
    code, folder = sweep
    assert code == 0
    gathered = json.loads((folder / "results.json").read_text())
    assert [row["status"] for row in gathered["runs"]] == ["done"] * 4
    points = {(row["strategy"], row["seed"]) for row in gathered["runs"]}
    assert points == {("isdarts", 0), ("isdarts", 1), ("darts-1st", 0), ("darts-1st", 1)}
    for row in gathered["runs"]:
        result = json.loads(open(os.path.join(row["run"], "result.json")).read())
        assert (result["strategy"], result["seed"]) == (row["strategy"], row["seed"])
        assert row["result"]["nb201"] == result["nb201"]
    groups = {group["group"]: group for group in gathered["groups"]}
    assert set(groups) == {"nb201 isdarts", "nb201 darts-1st"}
    for group in groups.values():
        assert group["done"] == 2 and group["search_seconds"]["runs"] == 2
    summary = (folder / "summary.txt").read_text()
    assert "nb201 isdarts (2 of 2 seeds done)" in summary and "nb201 darts-1st" in summary
    assert 'data-searches="4"' in (folder / "report.html").read_text()
    results = folder / "submitit"
    assert len(list(results.glob("*/*_result.pkl"))) == 4  # one finished job per search

    # The same sweep again: every search has finished, so nothing is submitted.
    capsys.readouterr()
    assert main([*SWEEP, *TINY, "--sweep-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "4 searches, 4 finished, 0 to run" in out and "submitted" not in out
    assert len(list(results.glob("*/*_result.pkl"))) == 4
    assert json.loads((folder / "results.json").read_text())["runs"] == gathered["runs"]
    # `nasc report` rewrites the sweep's page.
    (folder / "report.html").unlink()
    assert main(["report", str(folder)]) == 0 and (folder / "report.html").is_file()


@pytest.mark.slow
def test_a_killed_sweep_job_resumes_from_its_run_directory(sweep, tmp_path, monkeypatch, capsys):
    """A job SIGKILLed in epoch 2 fails; the sweep run again resumes it from its run directory,
    and it ends as the uninterrupted search of the same point did."""
    _, reference = sweep
    folder = tmp_path / "grid"
    one = ["sweep", "nb201", "--strategy", "isdarts", "--executor", "local"]
    monkeypatch.setenv("NASC_FAULT", "kill@2.1")
    assert main([*one, *TINY, "--sweep-dir", str(folder)]) == 1
    [row] = json.loads((folder / "results.json").read_text())["runs"]
    assert row["status"] == "failed" and row["run"] is not None
    assert not os.path.exists(os.path.join(row["run"], "result.json"))
    monkeypatch.delenv("NASC_FAULT")
    capsys.readouterr()
    assert main([*one, *TINY, "--sweep-dir", str(folder)]) == 0
    assert "1 to run (1 resume)" in capsys.readouterr().out
    [done] = json.loads((folder / "results.json").read_text())["runs"]
    assert done["status"] == "done" and done["run"] == row["run"]
    [same] = [
        r
        for r in json.loads((reference / "results.json").read_text())["runs"]
        if (r["strategy"], r["seed"]) == ("isdarts", 0)
    ]
    assert outcome(done["run"]) == outcome(same["run"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--grid", "depth=1,2"], "--grid depth: not a setting a sweep can vary"),
        (["--grid", "epochs=3,x"], "--grid epochs: `x` is not an int"),
        (["--grid", "epochs"], "--grid epochs: expected FIELD=V1,V2"),
        (["--strategy", "evolution"], "unknown strategy `evolution`"),
        (["--seeds", "0"], "--seeds 0: must be at least 1"),
        (["-D", "depth=3"], "unknown parameter `depth`"),
    ],
)
def test_a_sweep_that_cannot_run_is_refused_before_submitting(argv, message, tmp_path, capsys):
    folder = tmp_path / "grid"
    assert main(["sweep", "nb201", "--executor", "local", "--sweep-dir", str(folder), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (folder / "submitit").exists()


def test_the_grid_expands_into_points_with_stable_distinct_folders():
    """Spaces x strategies x field values x seeds, each point in a folder named from its
    settings alone: the same sweep gets the same folders, another grid other ones."""
    from nasc.runtime.integrations.sweep import SweepRequest
    from nasc.runtime.requests import SearchRequest

    def request(**changes):
        values = dict(
            spaces=["nb201", "spaces/darts.nas"],
            strategies=["isdarts", "darts-1st"],
            seeds=[0, 1, 2],
            grid={"lr": [0.01, 0.025], "epochs": [2]},
            base=SearchRequest(data="digits", defines={"C": 4}),
        )
        return SweepRequest(**{**values, **changes})

    points = request().points()
    assert len(points) == 2 * 2 * 2 * 1 * 3
    assert len({point.key for point in points}) == len(points)
    assert {point.fields["lr"] for point in points} == {0.01, 0.025}
    assert [p.key for p in request().points()] == [p.key for p in points]
    assert request().folder() == request().folder()
    assert request(seeds=[0]).folder() != request().folder()
    assert request(base=SearchRequest(data="cifar10")).folder() != request().folder()
    first = points[0]
    assert first.key.startswith("nb201-isdarts-epochs=2-lr=0.01-") and first.key.endswith("-seed0")
    assert first.group == "nb201 isdarts epochs=2 lr=0.01"
