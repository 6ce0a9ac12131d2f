"""Fault drill: inject real faults into small `nasc search` runs and count what survives.

Every fault runs a search in a subprocess that fails for real (SIGKILL at a point of its own
progress, a torn checkpoint, a disk that refuses writes, a NaN loss), then resumes it, and
compares the end with an uninterrupted run of the same seed: genotype, masks (the final
checkpoint's), and every metric line but timings. Finished work is what was on disk at the moment
of the fault: completed checkpoints and metric lines; lost bytes are those of it that the resumed
run no longer holds, or holds changed.

Then the hardening cases, by class: divergence (a huge learning rate, a BN buffer that
overflows), resume overrides (recorded and kept; settings that change the result refused by name),
hostile files (checkpoints of another structure, a directory, FIFO or /dev/zero in a checkpoint's
place, malformed config.json values, a symlinked lock, a dangling --runs-dir, damaged metrics,
a FIFO or /dev/zero as a .nas file), names (keywords, builtins and the generated code's own
names as node and input names), signals (SIGTERM, as SLURM and Kubernetes send it, in the middle
of a search's and a training run's epoch: a checkpoint there, exit 143, a resume to the
uninterrupted result), atomic writes (SIGKILL while a re-export overwrites model.pt, while
`nasc train` writes model.pt, while `nasc report` draws a figure: the previous file whole, never
a torn one) and image data (a folder of 16-bit greyscale PNGs, a 14000 x 14000 PNG among the
images). Each is tried and counted as survived when it ends as it should with nothing lost: a
clear error naming the file or setting (no traceback, no hang), or a resume to the uninterrupted
result.

    python benchmarks/faults.py                         # both tables
    python benchmarks/faults.py --hardening             # the hardening table only
    python benchmarks/faults.py --only signals --only "image data"   # some hardening classes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

SEARCH = [
    "search", "nb201", "--data", "digits", "--subset", "64", "-D", "C=4", "-D", "N=1",
    "--epochs", "4", "--shrink-steps", "2", "--shrink-interval", "1", "--batch-size", "16",
    "--measure-samples", "16", "--seed", "5", "--quiet",
]  # fmt: skip
TIMING = ("seconds", "images_per_s", "measure_seconds")

# (name, NASC_FAULT or an action, expected exit of the faulty run)
FAULTS = [
    ("SIGKILL mid-epoch", "kill@2.3", -signal.SIGKILL),
    ("SIGKILL mid-epoch, first epoch", "kill@1.2", -signal.SIGKILL),
    ("SIGKILL during a shrink step", "shrink@3", -signal.SIGKILL),
    ("SIGKILL during a checkpoint write", "checkpoint@2", -signal.SIGKILL),
    ("SIGKILL between metrics and checkpoint", "metrics@3", -signal.SIGKILL),
    ("torn newest checkpoint", "torn", None),
    ("random bytes in the newest checkpoint", "garbage", None),
    ("disk full while writing a checkpoint", "full", 2),
    ("NaN loss", "nan@3.2", 2),
]
# The classes of the hardening table, in its order (`--only` picks some).
CLASSES = (
    "divergence",
    "resume overrides",
    "hostile files",
    "names",
    "signals",
    "atomic writes",
    "image data",
)


def nasc(args, env=None, file_limit=None, timeout=600):
    environment = {k: v for k, v in os.environ.items() if k != "NASC_FAULT"}
    environment.update(env or {})

    def limits():
        if file_limit:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        [sys.executable, "-m", "nasc.runtime", *args],
        capture_output=True,
        text=True,
        env=environment,
        preexec_fn=limits,
        timeout=timeout,
    )


def finished_work(run: Path) -> dict[str, bytes]:
    """Completed work on disk now: checkpoints that verify, and whole metric lines."""
    from nasc.runtime.runs.checkpoint import CorruptCheckpoint, load_checkpoint

    work = {}
    for path in (run / "checkpoints").glob("ckpt-*.pt"):
        try:
            load_checkpoint(path)
        except CorruptCheckpoint:
            continue  # damaged by the fault itself: not finished work
        work[path.name] = path.read_bytes()
    metrics = run / "metrics.jsonl"
    if metrics.is_file():
        for number, line in enumerate(metrics.read_bytes().splitlines(keepends=True)):
            if line.endswith(b"\n"):
                work[f"metrics line {number}"] = line
    return work


def outcome(run: Path):
    metrics = [
        {k: v for k, v in json.loads(line).items() if k not in TIMING}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    return (run / "genotype.json").read_text(), metrics


def lost_bytes(before: dict[str, bytes], run: Path, resumed_from: int) -> int:
    """Bytes of finished work the resume threw away: an intact checkpoint newer than the one it
    resumed from, or a metric line up to that epoch that it no longer holds unchanged. (Older
    checkpoints rotate away once newer ones supersede them; that loses nothing.)"""
    after = finished_work(run)
    lost = 0
    for name, data in before.items():
        if name.startswith("metrics line"):
            if json.loads(data)["epoch"] <= resumed_from and after.get(name) != data:
                lost += len(data)
        elif int(name[5:10]) > resumed_from:
            lost += len(data)
    return lost


def drill(name, fault, expected, reference, root: Path):
    runs = root / name.replace(" ", "-")
    env, limit = {}, None
    if "@" in fault:
        env = {"NASC_FAULT": fault}
        first = nasc([*SEARCH, "--runs-dir", str(runs)], env=env)
    else:
        first = nasc([*SEARCH, "--runs-dir", str(runs)], env={"NASC_FAULT": "kill@3.1"})
    run = next(runs.iterdir())
    if fault in ("torn", "garbage"):
        newest = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
        data = newest.read_bytes()
        newest.write_bytes(data[: len(data) // 2] if fault == "torn" else os.urandom(len(data)))
        expected = first.returncode
    if fault == "full":
        limit = 100_000
        first = nasc(["search", "--resume", str(run), "--quiet"], file_limit=limit)
    ok_fault = first.returncode == expected
    before = finished_work(run)
    resumed = nasc(["search", "--resume", str(run), "--quiet"])
    resumed_from = 0
    for line in resumed.stdout.splitlines():
        if line.startswith("resumed after epoch"):
            resumed_from = int(line.split()[-1])
    same = resumed.returncode == 0 and outcome(run) == reference
    return ok_fault, same, lost_bytes(before, run, resumed_from), first.stderr.strip()[-200:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Inject real faults into small nasc searches and count what survives "
        "(about 8 minutes on two CPU cores, longer when they are shared; --hardening: about half)."
    )
    parser.add_argument(
        "--hardening",
        action="store_true",
        help="only the hardening table (divergence, resume overrides, hostile files, names, "
        "signals, atomic writes, image data)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=CLASSES,
        metavar="CLASS",
        help=f"only these classes of the hardening table (repeat it): {', '.join(CLASSES)}",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        done = nasc([*SEARCH, "--runs-dir", str(root / "reference")])
        assert done.returncode == 0, done.stderr
        reference = outcome(next((root / "reference").iterdir()))
        if not (args.hardening or args.only):
            drill_table(reference, root)
        hardening_table(reference, root, args.only or CLASSES)


def drill_table(reference, root: Path) -> None:
    injected = identical = lost_total = 0
    print(f"{'fault':<42}{'failed as it should':>20}{'resumed identical':>19}{'bytes lost':>12}")
    for name, fault, expected in FAULTS:
        ok_fault, same, lost, _ = drill(name, fault, expected, reference, root)
        injected += 1
        identical += same
        lost_total += lost
        print(f"{name:<42}{'yes' if ok_fault else 'NO':>20}{'yes' if same else 'NO':>19}{lost:>12}")
    print(
        f"\nfaults injected: {injected}; runs resumed to the identical result: {identical}; "
        f"bytes of finished work lost: {lost_total}\n"
    )


# --- hardening cases ------------------------------------------------------------------------------


def clear_error(done, *words) -> bool:
    """Exit 2 with every word in the message, and no traceback."""
    text = done.stderr + done.stdout
    return done.returncode == 2 and "Traceback" not in text and all(w in text for w in words)


def copy_run(run: Path, root: Path, name: str) -> Path:
    copy = root / name
    shutil.copytree(run, copy)
    (copy / ".lock").unlink(missing_ok=True)
    return copy


def resumes_to_reference(run: Path, reference, *words) -> bool:
    done = nasc(["search", "--resume", str(run), "--quiet"])
    text = done.stdout + done.stderr
    return done.returncode == 0 and outcome(run) == reference and all(w in text for w in words)


def divergence_cases(root: Path):
    from nasc.runtime.runs.checkpoint import load_checkpoint, nonfinite

    def finite_checkpoints(run: Path) -> bool:
        return all(
            not nonfinite(load_checkpoint(p)["net"]) for p in run.glob("checkpoints/ckpt-*.pt")
        )

    for lr in ("1e4", "1e5", "1e6"):
        runs = root / f"lr-{lr}"
        done = nasc([*SEARCH, "--lr", lr, "--runs-dir", str(runs)])
        [run] = runs.iterdir()
        quarter = f"{float(lr) / 4:g}"
        yield (
            f"--lr {lr}",
            clear_error(done, "--lr")
            and ("diverged" in done.stderr or "training loss is nan" in done.stderr)
            and quarter not in done.stderr
            and not (run / "result.json").exists()
            and finite_checkpoints(run),
        )
    runs = root / "inf-buffer"
    done = nasc([*SEARCH, "--runs-dir", str(runs)], env={"NASC_FAULT": "inf@2"})
    [run] = runs.iterdir()
    ok = clear_error(done, "diverged at epoch 2", "running_var", "ckpt-00001.pt")
    suggested = done.stderr.split("--lr ")[-1].split()[0].rstrip(")") if ok else "0.01"
    resumed = nasc(["search", "--resume", str(run), "--lr", suggested, "--quiet"])
    yield (
        "BN running variance overflows, loss finite",
        ok and resumed.returncode == 0 and finite_checkpoints(run),
    )


def override_cases(root: Path, killed: Path, reference):
    run = copy_run(killed, root, "override")
    (run / "checkpoints" / "ckpt-00002.pt").unlink()
    first = nasc(
        ["search", "--resume", str(run), "--lr", "0.01", "--quiet"],
        env={"NASC_FAULT": "kill@2.2"},
    )
    plain = nasc(["search", "--resume", str(run), "--quiet"])
    saved = json.loads((run / "config.json").read_text())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    kept = [x for x in lines if x.get("event") == "override"] == [
        {"event": "override", "epoch": 1, "settings": {"lr": 0.01}}
    ]
    yield (
        "--resume --lr, killed, then a plain --resume",
        first.returncode == -signal.SIGKILL
        and plain.returncode == 0
        and saved["config"]["lr"] == 0.01
        and kept,
    )
    from nasc.runtime.runs.checkpoint import load_checkpoint

    run = copy_run(killed, root, "override-momentum")
    done = nasc(["search", "--resume", str(run), "--momentum", "0.5", "--no-nesterov", "--quiet"])
    last = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
    group = load_checkpoint(last)["optimizer"]["param_groups"][0] if done.returncode == 0 else {}
    yield (
        "--resume --momentum 0.5 --no-nesterov is used",
        group.get("momentum") == 0.5 and group.get("nesterov") is False,
    )
    yield "train --resume --lr, then a plain --resume", train_override(root)
    for flags, named in (
        (["--epochs", "6"], "epochs"),
        (["--batch-size", "8"], "batch_size"),
        (["--measure-samples", "8"], "measure_samples"),
        (["--subset", "32"], "subset"),
        (["--seed", "9"], "seed"),
        (["-D", "C=8"], "C=8"),
    ):
        run = copy_run(killed, root, f"refuse-{named}")
        before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        done = nasc(["search", "--resume", str(run), "--quiet", *flags])
        after = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        yield (
            f"--resume {' '.join(flags)} refused",
            clear_error(done, named)
            and before.keys() <= after.keys()
            and all(after[k] == v for k, v in before.items() if k != ".lock"),
        )
    for key, value in (("batch_size", 8), ("lr", 1e6), ("measure_samples", 8), ("subset", 32)):
        run = copy_run(killed, root, f"edit-{key}")
        saved = json.loads((run / "config.json").read_text())
        (saved if key == "subset" else saved["config"])[key] = value
        (run / "config.json").write_text(json.dumps(saved))
        done = nasc(["search", "--resume", str(run), "--quiet"])
        yield (f"config.json {key} edited", clear_error(done, key, "config.json"))


TRAIN = [
    "train", "nb201", "--arch",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "--data", "digits", "--subset", "64", "-D", "C=4", "-D", "N=1", "--epochs", "2",
    "--batch-size", "32", "--quiet",
]  # fmt: skip


def train_override(root: Path) -> bool:
    """`nasc train --resume RUN --lr 0.01` from epoch 1, then the same resume without --lr (as
    after a kill before the next checkpoint): both train epoch 2 alike, and the override is
    recorded once."""
    runs = root / "train-override"
    if nasc([*TRAIN, "--runs-dir", str(runs)]).returncode != 0:
        return False
    [run] = runs.iterdir()

    def from_epoch_1(*flags):
        (run / "checkpoints" / "ckpt-00002.pt").unlink()
        (run / "result.json").unlink()
        done = nasc(["train", "--resume", str(run), "--quiet", *flags])
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        epochs = [
            {k: v for k, v in r.items() if k not in TIMING}
            for r in records
            if r["event"] == "epoch"
        ]
        return done.returncode, epochs, [r for r in records if r["event"] == "override"]

    first, second = from_epoch_1("--lr", "0.01"), from_epoch_1()
    overrides = [{"event": "override", "epoch": 1, "settings": {"lr": 0.01}}]
    return first[0] == second[0] == 0 and first[1] == second[1] and second[2] == overrides


def hostile_cases(root: Path, killed: Path, reference):
    from nasc.runtime.runs.checkpoint import load_checkpoint, save_checkpoint

    def first_weight(state):
        return next(k for k, v in state["net"].items() if hasattr(v, "dim") and v.dim() > 1)

    import torch

    damages = {
        "checkpoint without `net`": lambda s: s.pop("net"),
        "checkpoint with a string epoch": lambda s: s.update(epoch="2"),
        "checkpoint with a wrong shape": lambda s: s["net"].update(
            {first_weight(s): torch.zeros(1)}
        ),
    }
    for name, damage in damages.items():
        run = copy_run(killed, root, name.replace(" ", "-").replace("`", ""))
        state = load_checkpoint(run / "checkpoints" / "ckpt-00002.pt")
        damage(state)
        save_checkpoint(run / "checkpoints", 2, state)
        yield name, resumes_to_reference(run, reference, "ckpt-00002.pt", "resumed after epoch 1")
    for kind in ("directory", "FIFO", "/dev/zero"):
        run = copy_run(killed, root, "odd-" + kind.strip("/").replace("/", "-"))
        newest = run / "checkpoints" / "ckpt-00002.pt"
        newest.unlink()
        if kind == "directory":
            newest.mkdir()
        elif kind == "FIFO":
            os.mkfifo(newest)
        else:
            newest.symlink_to("/dev/zero")
        yield (
            f"a {kind} as the newest checkpoint",
            resumes_to_reference(run, reference, "ckpt-00002.pt", "resumed after epoch 1"),
        )
    edits = {
        "config.json: a string epoch count": lambda s: s["config"].update(epochs="4"),
        "config.json: a list for `config`": lambda s: s.update(config=[1]),
        "config.json: an unknown key": lambda s: s["config"].update(colour=1),
        "config.json: a missing field": lambda s: s.pop("data"),
    }
    for name, edit in edits.items():
        run = copy_run(killed, root, name.split(": ")[1].replace(" ", "-").replace("`", ""))
        saved = json.loads((run / "config.json").read_text())
        edit(saved)
        (run / "config.json").write_text(json.dumps(saved))
        yield name, clear_error(nasc(["search", "--resume", str(run), "--quiet"]), "config.json")
    run = copy_run(killed, root, "lock-link")
    victim = root / "victim.txt"
    victim.write_text("precious\n")
    (run / ".lock").symlink_to(victim)
    done = nasc(["search", "--resume", str(run), "--quiet"])
    yield ".lock is a symlink", clear_error(done, "symlink") and victim.read_text() == "precious\n"
    link = root / "dangling-runs"
    link.symlink_to(root / "nowhere")
    try:
        done = nasc([*SEARCH, "--runs-dir", str(link)], timeout=120)
        yield "--runs-dir is a dangling symlink", clear_error(done, "does not exist")
    except subprocess.TimeoutExpired:
        yield "--runs-dir is a dangling symlink", False
    for damage in ("deleted", "garbled"):
        run = copy_run(killed, root, f"metrics-{damage}")
        path = run / "metrics.jsonl"
        if damage == "deleted":
            path.unlink()
        else:
            text = path.read_text().splitlines()
            path.write_text("\n".join(["{garbled", *text[1:]]) + "\n")
        yield f"metrics.jsonl {damage}", resumes_to_reference(run, reference)
    for kind in ("FIFO", "/dev/zero"):
        path = root / f"space-{kind.strip('/').replace('/', '-')}.nas"
        if kind == "FIFO":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")
        try:
            done = nasc(["check", str(path)], timeout=60)
            yield f"a {kind} as the .nas file", clear_error(done, "not a regular file")
        except subprocess.TimeoutExpired:
            yield f"a {kind} as the .nas file", False


NAMED = """
ops s = {{none, skip_connect, nor_conv_3x3}}
cell {cell}({a}, {b}) {{
    {n} = {a}:s + {b}:s
    keep 1 per edge
    out {n}
}}
network net(C = 4, classes = 10, channels = 1, size = 8) {{
    input(channels, size)
    stem conv3x3_bn(C)
    {cell} @ C
    {cell} @ C
    head bn_relu_pool_linear(classes)
}}
"""


def name_cases(root: Path):
    for cell, a, b, n in (
        ("c", "w", "y", "import"),
        ("c", "x", "y", "None"),
        ("c", "w", "self", "e"),
        ("type", "torch", "_zeros", "s0"),
    ):
        path = root / f"names-{n}.nas"
        path.write_text(NAMED.format(cell=cell, a=a, b=b, n=n))
        check = nasc(["check", str(path)])
        code = nasc(["show", str(path), "--code"])
        search = nasc(
            [
                "search", str(path), "--data", "digits", "--subset", "32", "--epochs", "2",
                "--shrink-steps", "1", "--shrink-interval", "1", "--batch-size", "16",
                "--quiet", "--runs-dir", str(root / f"names-{n}"),
            ]
        )  # fmt: skip
        yield (
            f"names {cell}({a}, {b}) {{ {n} = ... }}",
            check.returncode == 0 and code.returncode == 0 and search.returncode == 0,
        )


def hardening_table(reference, root: Path, only=CLASSES) -> None:
    run = None
    if {"resume overrides", "hostile files"} & set(only):
        runs = root / "killed"
        killed = nasc([*SEARCH, "--runs-dir", str(runs)], env={"NASC_FAULT": "kill@3.1"})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        [run] = runs.iterdir()
    makers = {
        "divergence": lambda: divergence_cases(root),
        "resume overrides": lambda: override_cases(root, run, reference),
        "hostile files": lambda: hostile_cases(root, run, reference),
        "names": lambda: name_cases(root),
        "signals": lambda: signal_cases(root, reference),
        "atomic writes": lambda: atomic_write_cases(root),
        "image data": lambda: image_cases(root),
    }
    classes = [(name, makers[name]()) for name in CLASSES if name in only]
    print(f"{'fault class':<18}{'case':<48}{'survived':>10}")
    totals = []
    for name, cases in classes:
        tried = survived = 0
        for case, ok in cases:
            tried += 1
            survived += bool(ok)
            print(f"{name:<18}{case[:47]:<48}{'yes' if ok else 'NO':>10}", flush=True)
        totals.append((name, tried, survived))
    print(f"\n{'fault class':<18}{'tried':>8}{'survived with nothing lost':>30}")
    for name, tried, survived in totals:
        print(f"{name:<18}{tried:>8}{survived:>30}")


# --- signals, atomic writes, image data -----------------------------------------------------------


def signalled(args, fault, signum):
    """`nasc ARGS` with `NASC_FAULT=signal@E.S` (`fault`): once it says it waits at that step,
    it is sent `signum`; returns the completed process."""
    from nasc.runtime.runs.faults import WAITING

    environment = {k: v for k, v in os.environ.items() if not k.startswith("NASC_FAULT")}
    environment["NASC_FAULT"] = fault
    process = subprocess.Popen(
        [sys.executable, "-m", "nasc.runtime", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    said = []
    for line in process.stderr:
        said.append(line)
        if WAITING in line:
            process.send_signal(signum)
            break
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "".join(said) + err)


def train_outcome(run: Path):
    """What a finished training run must agree on: its metrics without timings."""
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIMING}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


def signal_cases(root: Path, reference):
    runs = root / "sigterm-search"
    stopped = signalled([*SEARCH, "--runs-dir", str(runs)], "signal@2.2", signal.SIGTERM)
    [run] = runs.iterdir()
    saved = (run / "checkpoints" / "ckpt-00001-s000002.pt").is_file()
    yield (
        "SIGTERM mid-epoch of a search",
        stopped.returncode == 143
        and "terminated (SIGTERM)" in stopped.stderr
        and "Traceback" not in stopped.stderr
        and saved
        and resumes_to_reference(run, reference, "resumed in epoch 2, after step 2"),
    )
    whole = nasc([*TRAIN, "--runs-dir", str(root / "train-whole")])
    runs = root / "sigterm-train"
    stopped = signalled([*TRAIN, "--runs-dir", str(runs)], "signal@2.1", signal.SIGTERM)
    [run] = runs.iterdir()
    resumed = nasc(["train", "--resume", str(run), "--quiet"])
    yield (
        "SIGTERM mid-epoch of a training run",
        whole.returncode == 0
        and stopped.returncode == 143
        and (run / "checkpoints" / "ckpt-00001-s000001.pt").is_file()
        and resumed.returncode == 0
        and train_outcome(run) == train_outcome(next((root / "train-whole").iterdir())),
    )


def _loads(path: Path) -> bool:
    import torch

    try:
        torch.jit.load(str(path))
        return True
    except Exception:  # noqa: BLE001 - any failure to load is a torn file
        return False


def atomic_write_cases(root: Path):
    arch = TRAIN[3]
    export = ["export", "nb201", "--arch", arch, "-D", "C=4", "-D", "N=1"]
    target = root / "exported" / "model.pt"
    target.parent.mkdir()
    first = nasc([*export, "--format", "torchscript", "-o", str(target)])
    good = target.read_bytes() if first.returncode == 0 else b""
    killed = nasc(
        [*export, "--format", "torchscript", "-o", str(target)],
        env={"NASC_FAULT": "write@model.pt"},
    )
    yield (
        "SIGKILL while re-exporting over model.pt",
        first.returncode == 0
        and killed.returncode == -signal.SIGKILL
        and target.read_bytes() == good
        and _loads(target),
    )
    runs = root / "model-pt"
    killed = nasc([*TRAIN, "--runs-dir", str(runs)], env={"NASC_FAULT": "write@model.pt"})
    [run] = runs.iterdir()
    torn = (run / "model.pt").exists()
    resumed = nasc(["train", "--resume", str(run), "--quiet"])
    yield (
        "SIGKILL while nasc train writes model.pt",
        killed.returncode == -signal.SIGKILL
        and not torn
        and resumed.returncode == 0
        and _loads(run / "model.pt"),
    )
    from PIL import Image

    run = copy_run(next((root / "reference").iterdir()), root, "report")
    page = (run / "report.html").read_bytes()
    killed = nasc(["report", str(run)], env={"NASC_FAULT": "write@curves.png"})

    def whole_picture(path: Path) -> bool:
        try:
            with Image.open(path) as image:
                image.load()
            return path.stat().st_size > 0
        except Exception:  # noqa: BLE001 - a torn or empty picture
            return False

    kept = (run / "report.html").read_bytes() == page and all(
        whole_picture(p) for p in (run / "figures").glob("*.png")
    )
    redrawn = nasc(["report", str(run)])
    yield (
        "SIGKILL while nasc report draws a figure",
        killed.returncode == -signal.SIGKILL and kept and redrawn.returncode == 0,
    )


def _image_tree(root: Path, write) -> Path:
    """An ImageFolder tree of two classes, eight training and two test images each, written by
    `write(path, class index, image index)`."""
    for split, count in (("train", 8), ("test", 2)):
        for label in range(2):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                write(folder / f"{index}.png", label, index)
    return root


def image_cases(root: Path):
    import numpy
    from PIL import Image

    from nasc.runtime.data.images import load_data

    def sixteen_bit(path, label, index):
        generator = numpy.random.default_rng(label * 100 + index)
        values = generator.integers(0, 65536, (8, 8), dtype=numpy.uint16) // (1 + label)
        Image.fromarray(values).save(path)

    folder = _image_tree(root / "sixteen-bit", sixteen_bit)
    data = load_data(str(folder), cache_dir=root / "cache")
    saturated = float((data.train_images == 255).float().mean())
    search = [
        "search", "nb201", "--data", str(folder), "--cache-dir", str(root / "cache"), "-D", "C=4",
        "-D", "N=1", "--epochs", "2", "--shrink-steps", "1", "--shrink-interval", "1",
        "--batch-size", "8", "--measure-samples", "8", "--quiet",
    ]  # fmt: skip
    done = nasc([*search, "--runs-dir", str(root / "sixteen-bit-runs")])
    yield (
        "a folder of 16-bit greyscale PNGs",
        done.returncode == 0 and saturated < 0.05 and int(data.train_images.max()) > 200,
    )

    def small(path, label, index):
        Image.new("L", (8, 8), 40 + 100 * label + index).save(path)

    folder = _image_tree(root / "bomb", small)
    bomb = folder / "train" / "class1" / "huge.png"
    header = struct.pack(">IIBBBBB", 14000, 14000, 8, 0, 0, 0, 0)

    def chunk(kind, data):
        check = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + check

    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")
    )
    done = nasc([*search, "--data", str(folder), "--runs-dir", str(root / "bomb-runs")])
    yield (
        "a 14000 x 14000 PNG among the images",
        clear_error(done, str(bomb), "14,000 x 14,000", "NASC_MAX_IMAGE_PIXELS"),
    )


if __name__ == "__main__":
    main()
