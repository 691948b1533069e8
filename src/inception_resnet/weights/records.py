"""What a weights file says about its model: the model configuration our checkpoints and trained weights carry.

The configuration is one JSON-able dict in the layout of the ``config.json`` timm reads from a local or hub
folder (``timm.create_model("local-dir:FOLDER")``): ``architecture``, ``num_classes``, ``num_features``,
``label_names`` (the class names), ``model_args`` (``in_chans``) and ``pretrained_cfg`` (input size,
interpolation, crop fraction and mode, mean and std), plus our own ``inception_resnet`` entry: the network's
options (``width_multiplier``, ``aux_logits``...) and its metadata as :class:`~inception_resnet.models.metadata.
ModelMetadata` spells it. The same dict is found

* in ``config.json`` beside a ``model.safetensors`` (:func:`save_pretrained`; the ``model/`` folder a training
  run writes at its end; a folder ``hf download`` wrote holds timm's part of it),
* in a training checkpoint under ``model_config`` (checkpoints written before it existed give the same from
  their recorded training configuration and classes),
* in the header of a safetensors file under ``inception_resnet.config``.

:func:`read_model_config` finds it for a weights source (``None`` when the source records nothing), so that
``create_model(pretrained=SOURCE)`` and the ``eval``/``predict`` commands rebuild the network the weights
belong to without being told its name, options, classes or input size. A training run directory stands for
its final weights (``RUN/model/``) or, before training has ended, its best checkpoint (:func:`run_weights`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RUN_WEIGHTS_DIR = "model"  # the run directory's folder of final weights
CHECKPOINT_KEY = "model_config"  # the configuration's key in a training checkpoint
HEADER_KEY = "inception_resnet.config"  # its key in a safetensors header
OUR_KEY = "inception_resnet"
# the preprocessing fields of the metadata a configuration carries
# the keys of timm's PretrainedCfg that ours have (timm refuses others)
TIMM_FIELDS = (
    "architecture",
    "tag",
    "hf_hub_id",
    "input_size",
    "fixed_input_size",
    "min_input_size",
    "interpolation",
    "crop_pct",
    "crop_mode",
    "mean",
    "std",
    "num_classes",
    "label_offset",
    "first_conv",
    "classifier",
)
METADATA_FIELDS = (
    "input_size",
    "min_input_size",
    "mean",
    "std",
    "crop_pct",
    "crop_mode",
    "interpolation",
    "label_offset",
    "source",
)


def model_config(
    model: nn.Module, *, input_size: int | None = None, classes: list[str] | None = None
) -> dict[str, Any]:
    """The configuration of ``model`` (see the module docstring); ``input_size`` and ``classes`` override the
    metadata's (a run trained at another size, on named classes)."""
    meta = model.metadata
    if input_size is not None:
        meta = meta.with_updates(input_size=(meta.input_size[0], int(input_size), int(input_size)))
    names = classes if classes is not None else meta.extra.get("classes")
    timm_cfg = {key: value for key, value in model.pretrained_cfg.items() if key in TIMM_FIELDS}
    timm_cfg.update(
        input_size=list(meta.input_size),
        min_input_size=[meta.input_size[0], meta.min_input_size, meta.min_input_size],
        mean=list(meta.mean),
        std=list(meta.std),
    )
    ours = {key: getattr(meta, key) for key in METADATA_FIELDS}
    ours["input_size"] = list(meta.input_size)
    ours["mean"], ours["std"] = list(meta.mean), list(meta.std)
    extra = {k: v for k, v in meta.extra.items() if k not in ("classes", "options")}
    config: dict[str, Any] = {
        "architecture": model.model_name,
        "num_classes": int(model.num_classes),
        "num_features": int(getattr(model, "num_features", 0)),
        "model_args": {"in_chans": int(model.in_chans)},
        "pretrained_cfg": timm_cfg,
        OUR_KEY: {"options": dict(meta.extra.get("options", {})), "metadata": ours, "extra": extra},
    }
    if names:
        config["label_names"] = list(names)
    return json.loads(json.dumps(config, default=str))


def build_arguments(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(model name, create_model keywords)``: ``num_classes``, ``in_chans`` and the options."""
    ours = config.get(OUR_KEY, {})
    kwargs = {
        "num_classes": int(config["num_classes"]),
        "in_chans": int(config.get("model_args", {}).get("in_chans", 3)),
        **dict(ours.get("options", {})),
    }
    return str(config["architecture"]), kwargs


def metadata_changes(config: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`ModelMetadata` fields a configuration sets: preprocessing and the class names."""
    ours = config.get(OUR_KEY)
    if ours and "metadata" in ours:
        changes = dict(ours["metadata"])
        extra = dict(ours.get("extra", {}))
    else:  # timm's part only (a folder from the hub): its names for the same things
        timm_cfg = config.get("pretrained_cfg", {})
        changes = {
            key: timm_cfg[key]
            for key in ("input_size", "mean", "std", "crop_pct", "crop_mode", "interpolation", "label_offset")
            if timm_cfg.get(key) is not None
        }
        extra = {}
    for key in ("input_size", "mean", "std"):
        if key in changes:
            changes[key] = tuple(changes[key])
    names = config.get("label_names")
    if names:
        extra["classes"] = list(names)
    if ours and ours.get("options"):
        extra["options"] = dict(ours["options"])
    changes["extra"] = extra
    return changes


def run_weights(folder: str | os.PathLike) -> Path | None:
    """The weights a training run directory stands for: ``model/`` (written when training ends), else
    ``checkpoints/best.pt``, else the newest checkpoint; None when ``folder`` is not a run directory."""
    folder = Path(folder)
    if (folder / RUN_WEIGHTS_DIR / WEIGHTS_FILE).is_file():
        return folder / RUN_WEIGHTS_DIR
    checkpoints = folder / "checkpoints"
    if (checkpoints / "best.pt").is_file():
        return checkpoints / "best.pt"
    rolling = sorted(checkpoints.glob("last-e*-s*.pt")) if checkpoints.is_dir() else []
    return rolling[-1] if rolling else None


def read_model_config(source: Any) -> dict[str, Any] | None:
    """The model configuration a weights source records, or None (a state dict, a hub tag, foreign files)."""
    if source is None or isinstance(source, Mapping):
        return None
    path = Path(os.fspath(source)).expanduser()
    if path.is_dir():
        inner = run_weights(path)
        if inner is not None:
            return read_model_config(inner)
        return _config_file(path / CONFIG_FILE)
    if not path.is_file():
        return None
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as handle:
                header = handle.metadata() or {}
        except Exception:  # not ours to judge here: loading says what is wrong with the file
            return None
        if HEADER_KEY in header:
            return dict(json.loads(header[HEADER_KEY]))
        return _config_file(path.parent / CONFIG_FILE) if path.name == WEIGHTS_FILE else None
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            return None
        return checkpoint_config(obj) if isinstance(obj, Mapping) else None
    return None


def _config_file(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and "architecture" in config and "num_classes" in config else None


def checkpoint_config(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """The configuration in a training checkpoint: its ``model_config``, or one made from the training settings
    and classes that older checkpoints recorded."""
    if isinstance(checkpoint.get(CHECKPOINT_KEY), Mapping):
        return dict(checkpoint[CHECKPOINT_KEY])
    settings, classes = checkpoint.get("config"), checkpoint.get("classes")
    if not isinstance(settings, Mapping) or not settings.get("model"):
        return None
    options = dict(settings.get("model_options") or {})
    num_classes = settings.get("num_classes") or (len(classes) if classes else 1000)
    config: dict[str, Any] = {
        "architecture": settings["model"],
        "num_classes": num_classes,
        "model_args": {"in_chans": settings.get("in_chans", 3)},
        OUR_KEY: {"options": options},
    }
    size = settings.get("input_size")
    if size:
        config["pretrained_cfg"] = {"input_size": [settings.get("in_chans", 3), size, size]}
    if classes:
        config["label_names"] = list(classes)
    return config


def save_pretrained(state: Mapping[str, torch.Tensor], config: Mapping[str, Any], folder: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` (the configuration in its header too) and ``config.json`` into ``folder``
    (timm's local-folder layout; each file whole or not at all); returns the folder."""
    from safetensors.torch import save

    from ..files import write_bytes_atomic, write_error, write_text_atomic

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(error, "the weights folder", folder) from None
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    text = json.dumps(config, indent=2)
    write_bytes_atomic(folder / WEIGHTS_FILE, save(tensors, metadata={HEADER_KEY: json.dumps(config)}), "the weights")
    write_text_atomic(folder / CONFIG_FILE, text + "\n", "the model configuration")
    return folder


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save the model's state dict as ``.safetensors`` (in the same key layout, its configuration in the header)
    or a torch ``.pth`` file."""
    from ..files import write_bytes_atomic, write_error

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(error, "the weights", path) from None
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        header = {HEADER_KEY: json.dumps(model_config(model))} if hasattr(model, "metadata") else None
        data = save(state, metadata=header)
    else:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
    return write_bytes_atomic(path, data, "the weights")
