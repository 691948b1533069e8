"""Study presets: a :class:`Preset` of the three sections read from a JSON file, and ``--set`` overrides.

A preset is a plain JSON object (``inception_resnet/presets/<name>.json``, or any path) with a ``compare``, a
``sweep`` and a ``scaling`` section (:mod:`inception_resnet.study.config`). Copy one
(``inception-resnet study presets cpu > mine.json``), edit it, pass ``--preset mine.json``. A file of the wrong
shape, an unknown key or a value its field does not accept is a ValueError naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..checks import build
from ..training import TrainConfig
from ..training.config import every_model_option
from .config import SECTION_OF, SECTIONS, CompareConfig, DeathCriteria, ScalingConfig, SweepConfig

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"


@dataclass
class Preset:
    """A named set of study configurations (compare, sweep, scaling), read from a JSON file.

    ``sections`` names the sections the file holds (a file may hold only one, e.g. ``scaling-cpu``); the
    others keep their defaults and :meth:`section` refuses them.
    """

    name: str
    description: str
    compare: CompareConfig
    scaling: ScalingConfig
    sweep: SweepConfig = field(default_factory=SweepConfig)
    source: str = ""
    sections: tuple[str, ...] = SECTIONS

    def section(self, name: str) -> CompareConfig | SweepConfig | ScalingConfig:
        if name not in SECTIONS:
            raise ValueError(f"unknown study section {name!r}; choose one of {', '.join(SECTIONS)}")
        if name not in self.sections:
            raise ValueError(
                f"preset {self.name} has no {name} section (it holds: {', '.join(self.sections)}); "
                f"choose another preset for `study {name}`"
            )
        return getattr(self, name)


def preset_from_dict(data: dict[str, Any], *, name: str = "custom", source: str = "") -> Preset:
    """A :class:`Preset` from the JSON structure (unknown keys are errors); every section is validated."""
    if not isinstance(data, dict):
        raise ValueError(
            f"a preset must be a JSON object with the sections {', '.join(SECTIONS)}, got {json.dumps(data)[:80]}"
        )
    unknown = [k for k in data if k not in ("name", "description", *SECTIONS)]
    if unknown:
        raise ValueError(f"preset {name}: unknown key(s) {', '.join(map(repr, unknown))}")
    preset = Preset(
        name=str(data.get("name", name)),
        description=str(data.get("description", "")),
        compare=build(CompareConfig, data.get("compare", {}), "compare"),
        scaling=build(ScalingConfig, data.get("scaling", {}), "scaling"),
        sweep=build(SweepConfig, data.get("sweep", {}), "sweep"),
        source=source,
        sections=tuple(s for s in SECTIONS if s in data) or SECTIONS,
    )
    preset.compare.validate()
    preset.sweep.validate(preset.compare)
    preset.scaling.validate()
    return preset


def preset_names() -> list[str]:
    """The presets shipped with the package."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def preset_path(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped preset (by name) or of a user's preset (a path)."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"preset file not found: {path}")
        if not path.is_file():
            raise ValueError(f"preset {path} is not a regular file (a folder, a pipe or a device); give a JSON file")
        return path
    shipped = PRESET_DIR / f"{name_or_path}.json"
    if not shipped.is_file():
        raise ValueError(
            f"unknown preset {str(name_or_path)!r}; choose one of {', '.join(preset_names())} "
            "or give the path of a JSON file"
        )
    return shipped


def load_preset(name_or_path: str | os.PathLike) -> Preset:
    """Read and validate a preset: a shipped name (``cpu``, ``gpu``, ``imagenet``) or a JSON file's path."""
    path = preset_path(name_or_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"preset {path} is not valid JSON text (UTF-8): {err}") from None
    try:
        return preset_from_dict(data, name=path.stem, source=str(path))
    except ValueError as err:
        raise ValueError(f"preset {path}: {err}") from None


def default_preset_name() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, lists, true/false/null), else a number when Python
    reads one (``nan``, ``inf``), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:  # Python's spellings of numbers (nan, inf, 1_000), as a float flag writes them
        return float(text)
    except ValueError:
        return text


def with_overrides(section: Any, overrides: list[str], *, compare: CompareConfig | None = None) -> Any:
    """A copy of ``section`` with ``KEY=VALUE`` settings applied and validated.

    ``KEY`` is a key of the section (``seeds``, ``pairs``, ``scales``...), ``death.KEY``, ``train.KEY``, or
    a bare training setting (``epochs=2`` means ``train.epochs=2``); ``model_options.OPTION`` (or
    ``train.model_options.OPTION``) sets one of ``train.model_options``, keeping the others. ``VALUE`` is read
    as JSON when it parses.
    A sweep is checked against ``compare`` (whose entries it tunes).
    """
    section = dataclasses.replace(section, train=dict(section.train))
    own = {f.name for f in fields(section)} - {"train"}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. epochs=2 or seeds=[0,1]")
        value = parse_value(raw)
        bare = key.removeprefix("train.")
        option = bare.removeprefix("model_options.")
        if bare not in TrainConfig.field_names() and bare in every_model_option():
            raise ValueError(
                f"--set {key}: an option of the model, not a training setting; set it with "
                f"--set model_options.{bare}={raw}"
            )
        if bare.startswith("model_options.") and option:
            options = section.train.get("model_options", {})
            if not isinstance(options, dict):
                raise ValueError(f"--set {key}: train.model_options is {options!r}, not a JSON object")
            section.train["model_options"] = {**options, option: value}
        elif key.startswith("death.") and isinstance(section, ScalingConfig):
            section.death = build(DeathCriteria, {**dataclasses.asdict(section.death), key[6:]: value}, "scaling.death")
        elif key.startswith("train."):
            section.train[key[6:]] = value
        elif key in own:
            kind = typing.get_type_hints(type(section))[key]
            if dataclasses.is_dataclass(kind) and isinstance(value, dict):
                value = build(kind, value, f"{SECTION_OF[type(section)]}.{key}")
            setattr(section, key, value)
        elif key in TrainConfig.field_names():
            section.train[key] = value
        else:
            raise ValueError(
                f"--set {key}: neither a study setting ({', '.join(sorted(own))}) nor a training "
                "setting (see `inception-resnet train --help`)"
            )
    if isinstance(section, SweepConfig):
        section.validate(compare)
    else:
        section.validate()
    return section
