"""The dense spaces searched end to end on the embedded shapes: DARTS and IS-DARTS find, report
and export a segmentation network; the single-stage protocol keeps its supernet."""

from __future__ import annotations

import json

import pytest
import torch

from nasc import export, search, train
from nasc.dsl import NascUsageError
from nasc.runtime.cli import main

TINY = dict(
    task="segmentation", data="shapes", subset=32, defines={"C": 4}, batch_size=16,
    device="cpu",
)  # fmt: skip


def test_a_darts_search_of_dcnas_finds_reports_and_exports_a_segmentation_network(tmp_path):
    """The README's search: mIoU named in result.json, the predictions figure drawn, and the
    exported network gives per-pixel scores at the input's size."""
    found = search("dcnas", strategy="darts-1st", epochs=1, runs_dir=tmp_path, **TINY)
    run = found.run_dir
    result = json.loads((run / "result.json").read_text())
    assert result["task"] == "segmentation" and result["metric_label"] == "mIoU"
    assert 0.0 <= result["final_test_miou"] <= 100.0
    assert main(["report", str(run)]) == 0
    assert (run / "figures" / "predictions.png").stat().st_size > 0
    network = export(run, "module")
    network.eval()
    with torch.no_grad():
        scores = network(torch.rand(2, 3, 32, 32))
    assert scores.shape == (2, 5, 32, 32)
    assert "dense" in (run / "arch.nas").read_text()


def test_isdarts_shrinks_a_dense_space_to_a_valid_architecture(tmp_path):
    """IS-DARTS measures the candidates inside the cells of the short-connection space and
    shrinks every comparison subset to its k."""
    found = search(
        "dcnas_short", strategy="isdarts", epochs=2, shrink_steps=1, shrink_interval=1,
        measure_samples=16, runs_dir=tmp_path, **TINY,
    )  # fmt: skip
    shrinks = [m for m in found.metrics if m.get("event") == "shrink"]
    assert len(shrinks) == 1
    for edges in found.result["genotype"].values():
        kept = sum(len(ops) for ops in edges.values())
        assert kept == 2 * 3  # keep 2 per node, three nodes
    importance = json.loads((found.run_dir / "importance.json").read_text())
    assert importance  # the information of every measured candidate was recorded


@pytest.mark.parametrize("strategy", ["darts-1st", "gdas"])
def test_a_single_stage_dense_search_keeps_its_supernet(strategy, tmp_path):
    """The single-stage protocol on a segmentation space: network.pt gives per-pixel scores and
    is what `export` hands out."""
    found = search(
        "dcnas", strategy=strategy, epochs=2, protocol="single-stage", runs_dir=tmp_path, **TINY
    )
    kept = torch.jit.load(str(found.run_dir / "network.pt"))
    images = torch.rand(2, 3, 32, 32)
    assert kept(images).shape == (2, 5, 32, 32)
    assert torch.equal(export(found.run_dir, "module")(images), kept(images))


def test_a_resumed_search_reads_its_data_at_the_recorded_image_size(tmp_path):
    """`--image-size` is recorded in config.json: a resume reads the data at that size without
    the flag (its network takes 16 x 16 images), and refuses another size."""
    first = search("dcnas", strategy="darts-1st", epochs=2, image_size=16, runs_dir=tmp_path,
                   **TINY)  # fmt: skip
    run = first.run_dir
    assert json.loads((run / "config.json").read_text())["image_size"] == 16
    with pytest.raises(NascUsageError, match="--image-size 24"):
        search(resume=run, image_size=24, device="cpu")
    (run / "checkpoints" / "ckpt-00002.pt").unlink()  # as if killed during epoch 2
    resumed = search(resume=run, device="cpu")
    assert [m["epoch"] for m in resumed.metrics if m.get("event") == "epoch"][-1] == 2
    network = export(run, "module")
    network.eval()
    with torch.no_grad():
        assert network(torch.rand(1, 3, 16, 16)).shape == (1, 5, 16, 16)


def test_a_training_run_records_its_image_size_and_refuses_another_on_resume(tmp_path):
    """`nasc train --image-size 16` records the size in config.json; a resume with another size
    is refused before any data is read."""
    found = search("dcnas", strategy="darts-1st", epochs=1, image_size=16, runs_dir=tmp_path,
                   **TINY)  # fmt: skip
    trained = train(found, epochs=1, image_size=16, runs_dir=tmp_path, preset="nb201",
                    **{k: v for k, v in TINY.items() if k != "defines"})  # fmt: skip
    assert json.loads((trained.run_dir / "config.json").read_text())["image_size"] == 16
    with pytest.raises(NascUsageError, match="--image-size 24"):
        train(resume=trained.run_dir, image_size=24, device="cpu")
