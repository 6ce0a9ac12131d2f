"""Resuming a run: what a checkpoint must match (fingerprint, keys, settings, shapes), the newest
good checkpoint's state, and the settings a resume may change (recorded in config.json)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from nasc.dsl import NascUsageError
from nasc.runtime.hardware.distributed import Dist, broadcast
from nasc.runtime.runs.checkpoint import CorruptCheckpoint, checkpoints, load_latest, nonfinite
from nasc.runtime.runs.records import metric_records
from nasc.runtime.runs.settings import compute_changes
from nasc.runtime.tasks.registry import DEFAULT_TASK

# The keys every checkpoint of a search or training run holds, and their types.
STATE_KINDS = {
    "fingerprint": str,
    "epoch": int,
    "metric_lines": int,
    "net": dict,
    "optimizer": dict,
    "rng": torch.Tensor,
}


def check_kinds(path, state: dict, kinds: dict) -> None:
    """Raises CorruptCheckpoint when a key of `kinds` is missing or of another type."""
    for key, kind in kinds.items():
        value = state.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = "missing" if key not in state else f"a {type(value).__name__}"
            raise CorruptCheckpoint(f"{path} has no valid `{key}` ({got}, not a {kind.__name__})")


def check_settings(path, state: dict, settings, overrides, allowed, noun: str) -> None:
    """Refuse a checkpoint trained with settings the run's config.json no longer says, unless an
    explicit resume override (`overrides`) explains the change.

    Raises:
        NascUsageError: naming the setting, and how to change it (`allowed`) or why it cannot.
    """
    from nasc.dsl import NascUsageError

    recorded = state.get("settings")
    if not isinstance(recorded, dict) or settings is None:
        return
    for key in sorted(set(recorded) | set(settings)):
        was, now = recorded.get(key), settings.get(key)
        if was != now and key not in overrides:
            raise NascUsageError(
                f"{path} was trained with {key} = {was!r}, but the run's config.json "
                f"now says {now!r}",
                hint=f"restore {key} in config.json"
                + (
                    f", or change it explicitly: --resume RUN --{key.replace('_', '-')} {now}"
                    if key in allowed
                    else f"; {key} cannot change on resume, start a new {noun} for it"
                ),
            )


def check_partial(path, state: dict, steps: int, sums: tuple[str, ...] = ()) -> None:
    """Raises CorruptCheckpoint when a checkpoint taken inside an epoch does not say where in an
    epoch of `steps` steps it was taken, and what the epoch had summed (its loss and the task's
    `sums`)."""
    partial = state.get("partial")
    if partial is None:
        return
    fields = {"step": int, "seen": int, "seconds": (int, float)}
    if not isinstance(partial, dict) or any(
        not isinstance(partial.get(k), kind) or isinstance(partial.get(k), bool)
        for k, kind in fields.items()
    ):
        raise CorruptCheckpoint(f"{path} has no valid record of its place inside the epoch")
    if not 0 < partial["step"] < steps or any(k not in partial for k in ("total_loss", *sums)):
        raise CorruptCheckpoint(
            f"{path} was taken at step {partial['step']} of an epoch of {steps} steps"
        )


def check_fits_net(path, state: dict, net: nn.Module, epochs: int) -> None:
    """Raises CorruptCheckpoint when the state cannot be this network's after at most `epochs`
    epochs: an impossible epoch, a bad random state, other keys or shapes, non-finite values."""
    if not 0 <= state["epoch"] <= epochs or state["metric_lines"] < 0:
        raise CorruptCheckpoint(f"{path} has an impossible epoch ({state['epoch']})")
    if state["rng"].dtype != torch.uint8:
        raise CorruptCheckpoint(f"{path} has no valid random state")
    expected, net = net.state_dict(), state["net"]
    missing, extra = sorted(set(expected) - set(net)), sorted(set(net) - set(expected))
    if missing or extra:
        what = (f"lacks {missing[0]}" if missing else f"has an unknown {extra[0]}") + (
            f" ({len(missing) + len(extra)} keys differ)" if len(missing) + len(extra) > 1 else ""
        )
        raise CorruptCheckpoint(f"{path} does not fit this network: it {what}")
    for key, value in expected.items():
        if torch.is_tensor(value) and (
            not torch.is_tensor(net[key]) or net[key].shape != value.shape
        ):
            shape = tuple(net[key].shape) if torch.is_tensor(net[key]) else type(net[key])
            raise CorruptCheckpoint(
                f"{path} does not fit this network: {key} is {shape}, not {tuple(value.shape)}"
            )
    bad = nonfinite(net) + nonfinite(state["optimizer"])
    if bad:
        raise CorruptCheckpoint(
            f"{path} holds non-finite values ({', '.join(bad[:3])}): the run had diverged "
            "before it was written"
        )


def resume_state(run, fingerprint: str, dist: Dist | None, warn=print, check=None) -> dict | None:
    """The newest good checkpoint's state for a resumed run, or None when there is none.

    Rank 0 (the process holding the run directory) reads it and hands it to the other ranks.
    The run's metrics are rebuilt from the history that checkpoint kept (older checkpoints: cut
    back to the lines it had seen). When checkpoints exist but none can be used, the earlier
    metrics are kept in a side file, and `warn` says so.

    Args:
        check: called with (path, state) on rank 0; see `checkpoint.load_latest`.

    Raises:
        NascUsageError: the checkpoint was written for another space or other settings.
    """
    found, refused = None, None
    if run is not None:
        try:
            found = load_latest(run.checkpoints, warn=warn, map_location="cpu", check=check)
        except NascUsageError as error:  # refused on rank 0: every rank stops with it
            refused = (error.message, error.hint)
        if found is not None:
            found[1]["_path"] = str(found[0])
    found, refused = broadcast((found, refused), dist)
    if refused is not None:
        raise NascUsageError(refused[0], hint=refused[1])
    if found is None:
        if run is not None:  # lines of a first epoch that never reached a checkpoint
            kept = run.set_aside_metrics() if list(run.checkpoints.glob("ckpt-*.pt")) else None
            if kept is not None:
                warn(
                    f"warning: no checkpoint of {run.path} can be used; starting from the first "
                    f"epoch; the earlier metrics are kept in {kept}"
                )
            run.truncate_metrics(0)
        return None
    path, state = found
    if state.get("fingerprint") != fingerprint:
        raise NascUsageError(
            f"{path} was written by another run (another space, -D values, strategy, data, seed "
            "or number of epochs)",
            hint="resume with the run directory's own settings, or start anew",
        )
    if run is not None:
        if "metrics" in state:
            run.rewrite_metrics(metric_records(state))
        else:
            run.truncate_metrics(int(state["metric_lines"]))
        for line in compute_changes(_recorded_environment(run)):
            warn(line)
    return state


def _recorded_environment(run) -> dict | None:
    """The `environment` a run's config.json recorded (None when it has none or is unreadable:
    a resume has refused a bad config.json before it gets here)."""
    try:
        saved = run.read_json("config.json")
    except NascUsageError:
        return None
    return saved.get("environment") if isinstance(saved, dict) else None


def fingerprint(
    source: str,
    defines: dict[str, int],
    kind: str,
    data: str,
    seed: int,
    epochs: int,
    task: str = DEFAULT_TASK,
) -> str:
    """What a checkpoint must match to be resumed: the space, its values, the strategy (or
    `train`), the data, the seed, the length of the run and the task (left out for image
    classification, so runs from before tasks keep their fingerprints)."""
    values = {
        "source": source,
        "defines": defines,
        "kind": kind,
        "data": data,
        "seed": seed,
        "epochs": epochs,
    }
    if task != DEFAULT_TASK:
        values["task"] = task
    key = json.dumps(values, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def check_resumable(run, source: str, command: str) -> None:
    """Refuse to resume a run directory that lacks the network's source (`space.nas` of a
    search, `arch.nas` of a training run), saying whether it has a checkpoint and what to do.

    Args:
        command: what starts such a run (`nasc search`, `nasc train`).

    Raises:
        NascUsageError: naming the folder and the missing file.
    """
    if (run.path / source).is_file():
        return
    origin = None
    try:
        saved = run.read_json("config.json")
        origin = saved.get("space") or saved.get("arch") if isinstance(saved, dict) else None
    except NascUsageError:
        pass
    again = f"{command} {origin} ..." if isinstance(origin, str) else f"{command} ..."
    if not checkpoints(run.checkpoints):
        raise NascUsageError(
            f"{run.path} has no checkpoint to resume (nor its {source}): the run stopped before "
            "its first checkpoint, or the folder holds only its config.json",
            hint=f"start the run again without --resume ({again}), and remove {run.path}",
        )
    raise NascUsageError(
        f"{run.path} cannot be resumed: its {source} is missing",
        hint=f"put back {run.path / source} (a copy of the .nas file the run started from), "
        f"or start the run again without --resume ({again})",
    )


def check_run_config(saved, where: Path, cls, needs: tuple[str, ...] = ()) -> None:
    """Refuse a run's config.json that is not what `nasc search` (`cls` SearchConfig) or
    `nasc train` (TrainConfig) wrote, naming the key; `needs` are the settings `config` must
    hold (a search's `strategy`).

    Raises:
        NascUsageError: not an object, a missing or mistyped field, an unknown setting.
    """
    if not isinstance(saved, dict):
        raise NascUsageError(
            f"{where} must hold a JSON object, not {type(saved).__name__}",
            hint="restore the file, or start a new search",
        )
    for key, kind in (("defines", dict), ("data", str), ("config", dict)):
        if key not in saved:
            raise NascUsageError(
                f"{where} has no `{key}`", hint="restore the file, or start a new search"
            )
        if not isinstance(saved[key], kind):
            raise NascUsageError(
                f"{where}: `{key}` must be a JSON {'object' if kind is dict else 'string'}",
                hint="restore the file, or start a new search",
            )
    for name, value in saved["defines"].items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise NascUsageError(
                f"{where}: the value of `{name}` in `defines` must be an integer, not {value!r}",
                hint="restore the file, or start a new search",
            )
    for key in ("subset", "image_size", "world_size"):
        value = saved.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise NascUsageError(
                f"{where}: `{key}` must be an integer or null, not {value!r}",
                hint="restore the file, or start a new search",
            )
    check_values(saved["config"], cls, str(where))
    for name in needs:
        if name not in saved["config"]:
            raise NascUsageError(f"{where}: `config` has no `{name}`", hint="restore the file")
    plugins = saved.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(name, str) for name in plugins):
        raise NascUsageError(
            f"{where}: `plugins` must be a list of module names or .py paths",
            hint="restore the file, or start a new search",
        )
    if not isinstance(saved.get("overrides", []), list):
        raise NascUsageError(f"{where}: `overrides` must be a list", hint="restore the file")


def resume_changes(
    saved: dict, overrides: dict, args, dist_, allowed: tuple[str, ...], noun: str = "search"
) -> dict:
    """The settings a resume's flags change, refusing those that cannot change on resume
    (all but `allowed`); `noun` names the kind of run in the hints.

    Returns:
        {setting: new value} for the accepted overrides (see `search.loop.RESUME_OVERRIDES`).

    Raises:
        NascUsageError: naming the setting (epochs, batch_size, seed, subset, -D, world size...).
    """
    changes = {}
    for key, value in overrides.items():
        if value is None or saved["config"].get(key) == value:
            continue
        flag = "--" + key.replace("_", "-")
        if key not in allowed:
            raise NascUsageError(
                f"{flag} {value}: this run has {key} = {saved['config'].get(key)!r}, and {key} "
                "cannot change on resume (it changes what the run computes)",
                hint=f"resume without {flag}, or start a new {noun} with it",
            )
        changes[key] = value
    if args.subset is not None and args.subset != saved.get("subset"):
        raise NascUsageError(
            f"--subset {args.subset}: this run used subset = {saved.get('subset')!r}, and "
            "the data cannot change on resume",
            hint=f"resume without --subset, or start a new {noun} with it",
        )
    image_size = getattr(args, "image_size", None)
    if image_size is not None and image_size != saved.get("image_size"):
        raise NascUsageError(
            f"--image-size {image_size}: this run read its data at image_size = "
            f"{saved.get('image_size')!r}, and the data cannot change on resume",
            hint=f"resume without --image-size, or start a new {noun} with it",
        )
    if args.defines and dict(args.defines) != {
        k: v for k, v in saved["defines"].items() if k in args.defines
    }:
        given = " -D ".join(f"{name}={value}" for name, value in args.defines.items())
        raise NascUsageError(
            f"-D {given}: this run used {saved['defines']}; "
            "network parameters cannot change on resume",
            hint=f"resume without -D, or start a new {noun} with it",
        )
    world = dist_.world if dist_ is not None else 1
    if saved.get("world_size", 1) != world:
        was = saved.get("world_size", 1)
        raise NascUsageError(
            f"this run was searched by {was} process{'es' if was != 1 else ''}, not {world}; "
            "the world size cannot change on resume (each step's batch is split across them)",
            hint=f"resume with torchrun --nproc-per-node {was} ... --resume RUN"
            if was > 1
            else "resume without torchrun",
        )
    return changes


def resume_overrides(plan, config) -> set[str]:
    """The settings a resumed run's plan changed, with those earlier resumes recorded (none for
    a new run: `plan.saved` is None)."""
    if plan.saved is None:
        return set()
    return set(plan.changes) | recorded_overrides(plan.saved, config)


def recorded_overrides(saved: dict, config) -> set[str]:
    """Settings an earlier resume changed explicitly (recorded in config.json), still in force."""
    last = {}
    for entry in saved.get("overrides", []):
        if isinstance(entry, dict) and isinstance(entry.get("settings"), dict):
            last.update(entry["settings"])
    current = config.to_json()
    return {key for key, value in last.items() if current.get(key) == value}


def record_overrides(run, saved: dict, changes: dict, searcher, resumed: bool) -> None:
    """Record a resume's accepted overrides: in config.json (so a later plain --resume keeps
    them) and, where they differ from the checkpoint's, as an `override` line in the metrics."""
    recorded = searcher.settings or {}
    differ = {}
    if resumed and searcher.last_settings is not None:
        differ = {
            key: recorded[key]
            for key in sorted(searcher.overrides)
            if key in recorded and searcher.last_settings.get(key) != recorded[key]
        }
    if changes and run is not None:
        saved = {**saved, "config": {**saved["config"], **changes}}
        saved["overrides"] = [
            *saved.get("overrides", []),
            {
                "after_epoch": searcher.epoch,
                "settings": changes,
                "at": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        ]
        run.write_json("config.json", saved)
    if differ or (changes and not resumed):
        searcher._log({"event": "override", "epoch": searcher.epoch, "settings": differ or changes})


def check_values(values, cls, where: str) -> dict[str, Any]:
    """Check a recorded configuration (a run's config.json) against an attrs config class.

    Raises:
        NascUsageError: not an object, an unknown key, or a value of the wrong type, naming the
            file and the key.
    """
    if not isinstance(values, dict):
        raise NascUsageError(
            f"{where}: `config` must be an object, not {type(values).__name__}",
            hint="restore the file from the run's own copy, or start a new search",
        )
    fields = {field.name: field for field in attrs.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            raise NascUsageError(
                f"{where}: unknown setting `{key}`",
                hint=f"known settings: {', '.join(sorted(fields))}",
            )
        kind = str(fields[key].type)
        allowed = {
            "int": (int,),
            "float": (int, float),
            "str": (str,),
            "bool": (bool,),
        }.get(kind, (object,))
        if not isinstance(value, allowed) or (kind in ("int", "float") and isinstance(value, bool)):
            raise NascUsageError(
                f"{where}: `{key}` must be {'an' if kind == 'int' else 'a'} {kind}, "
                f"not {json_repr(value)}",
                hint=f"write {key} as a JSON {'number' if kind in ('int', 'float') else kind}",
            )
    return values


def json_repr(value) -> str:
    import json

    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) < 40 else text[:37] + "..."
