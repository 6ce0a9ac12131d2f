"""Pictures of segmentation runs: input, ground truth and prediction side by side for a few test
images (one fixed palette), and the mIoU curve over epochs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nasc.dsl import NascError, parse_space, read_source
from nasc.runtime.reports.pages import _pyplot, save_figure, write_report, write_train_report
from nasc.runtime.runs.checkpoint import checkpoints, load_checkpoint
from nasc.runtime.tasks import get_task

EXAMPLES = 4  # test images in the predictions figure
IGNORE_COLOUR = (255, 255, 255)  # the colour of label 255 (ignored pixels)


def palette(classes: int) -> torch.Tensor:
    """A fixed colour per class (classes, 3) uint8: the Pascal VOC colour map (class 0 black),
    whose bits spread neighbouring classes far apart."""
    colours = torch.zeros(classes, 3, dtype=torch.uint8)
    for index in range(classes):
        value, red, green, blue = index, 0, 0, 0
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        colours[index] = torch.tensor([red, green, blue], dtype=torch.uint8)
    return colours


def coloured(mask: torch.Tensor, classes: int) -> torch.Tensor:
    """A label map (H, W) as an (H, W, 3) uint8 picture: `palette` colours, white for 255."""
    colours = torch.cat([palette(classes), torch.tensor([IGNORE_COLOUR], dtype=torch.uint8)])
    index = torch.where(mask.long() < classes, mask.long(), classes)
    return colours[index]


def draw_predictions(
    images: torch.Tensor, masks: torch.Tensor, predicted: torch.Tensor, names, path: Path
) -> dict:
    """One row per test image: the input (uint8, C x H x W), its ground truth and the network's
    prediction, with a legend of the class colours."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    rows, classes = len(images), len(names)
    figure, axes = plt.subplots(rows, 3, figsize=(7.2, 2.4 * rows + 0.6), squeeze=False)
    for row in range(rows):
        picture = images[row].permute(1, 2, 0)
        panels = (
            (picture[..., 0] if picture.shape[-1] == 1 else picture[..., :3], "input"),
            (coloured(masks[row], classes), "ground truth"),
            (coloured(predicted[row], classes), "prediction"),
        )
        for column, (shown, title) in enumerate(panels):
            ax = axes[row][column]
            ax.imshow(shown.numpy(), cmap="gray" if shown.dim() == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    colours = palette(classes).float() / 255
    handles = [Patch(color=colours[i].tolist(), label=name) for i, name in enumerate(names)]
    handles.append(Patch(facecolor="white", edgecolor="#999999", label="ignored (255)"))
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7)
    figure.tight_layout(rect=(0, 0.6 / (2.4 * rows + 0.6) + 0.04, 1, 1))
    save_figure(figure, path, dpi=110)
    plt.close(figure)
    return {"path": str(path), "examples": rows}


def draw_miou_curve(metrics: list[dict], path: Path) -> dict:
    """Train and test mIoU (and pixel accuracy, dashed) per epoch, from a run's records."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [m for m in metrics if m.get("event") == "epoch"]
    x = [m["epoch"] for m in epochs]
    figure, ax = plt.subplots(figsize=(6, 3.4))
    for split, colour in (("train", "#1f77b4"), ("test", "#d62728")):
        ax.plot(x, [m[f"{split}_miou"] for m in epochs], color=colour, marker=".", label=split)
        if epochs and f"{split}_pixel_acc" in epochs[0]:
            values = [m[f"{split}_pixel_acc"] for m in epochs]
            ax.plot(x, values, color=colour, ls="--", label=f"{split} pixel accuracy")
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel("%", fontsize=8)
    ax.set_title("mean IoU (solid) and pixel accuracy (dashed)", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return {"path": str(path), "epochs": len(epochs)}


def trained_network(run_dir: Path, config: dict):
    """The network a run ended with, on the CPU in eval mode: a training run's best.pt in its
    arch.nas, or a search's supernet from its last checkpoint, restricted to the architecture
    it found. None when the run kept no weights."""
    from nasc.compiler import CompileOptions, catalog, compile_space
    from nasc.dsl import Genotype

    defines = config.get("defines", {})
    if (run_dir / "space.nas").is_file():
        saved = checkpoints(run_dir / "checkpoints")
        if not saved or not (run_dir / "genotype.json").is_file():
            return None
        space = parse_space(
            read_source(run_dir / "space.nas"), str(run_dir / "space.nas"), catalog=catalog()
        )
        settings = config.get("config", {})
        options = CompileOptions(
            search=True,
            track_running_stats=settings.get("track_running_stats", False),
            partial_channels=settings.get("partial_channels", 1),
            edge_normalisation=settings.get("edge_normalisation", False),
        )
        net = compile_space(space.for_values(defines), defines, options)
        net.load_state_dict(load_checkpoint(saved[-1])["net"])
        genotype = json.loads((run_dir / "genotype.json").read_text())
        net.arch.restrict(Genotype.from_json(genotype))
    else:
        if not (run_dir / "best.pt").is_file():
            return None
        space = parse_space(
            read_source(run_dir / "arch.nas"), str(run_dir / "arch.nas"), catalog=catalog()
        )
        net = compile_space(space, defines, CompileOptions(search=False))
        state = load_checkpoint(run_dir / "best.pt")["net"]
        net.load_state_dict(state, strict=False)  # an auxiliary head's weights may be missing
    return net.eval()


def segmentation_figures(run_dir: Path, config: dict, metrics: list[dict]) -> dict:
    """Draw a segmentation run's mIoU curve and, where its data and weights can be read back,
    its predictions on the first `EXAMPLES` test images, into `run_dir/figures/`."""
    figures = Path(run_dir) / "figures"
    figures.mkdir(exist_ok=True)
    drawn = {"miou": draw_miou_curve(metrics, figures / "miou.png")}
    task = get_task("segmentation")
    try:
        data = task.load(config["data"], None, config.get("image_size"))
        net = trained_network(Path(run_dir), config)
    except (NascError, OSError, KeyError, RuntimeError, ValueError):
        return drawn  # the data moved or the weights do not fit: no predictions to show
    if net is None:
        return drawn
    count = min(EXAMPLES, task.examples(data, "test"))
    batches = task.batches(data, "test", count, torch.device("cpu"), indices=torch.arange(count))
    inputs, masks = next(iter(batches.epoch(None)))
    with torch.no_grad():
        output = net(inputs)
    logits = output[0] if isinstance(output, tuple) else output
    if tuple(logits.shape[2:]) != tuple(masks.shape[1:]):
        return drawn
    drawn["predictions"] = draw_predictions(
        data.test_images[:count], masks, task.predict(logits), data.classes,
        figures / "predictions.png",
    )  # fmt: skip
    return drawn


SEGMENTATION_CAPTIONS = {
    "predictions": "Test images (left), their ground truth (middle) and the network's prediction "
    "(right); white: ignored pixels.",
    "miou": "Mean IoU and pixel accuracy per epoch, on the training and test splits.",
}


def write_segmentation_report(run_dir: Path) -> Path:
    """Write the report of a segmentation run (a search's or a training run's, as `nasc
    report` would) with the predictions figure and the mIoU curve added."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    drawn = segmentation_figures(run_dir, config, metrics)
    extra = {key: (value, SEGMENTATION_CAPTIONS[key]) for key, value in drawn.items()}
    trained = (run_dir / "arch.nas").is_file() and not (run_dir / "space.nas").is_file()
    return (write_train_report if trained else write_report)(run_dir, extra)
