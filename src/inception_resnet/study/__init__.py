"""The residual study of the paper, reproducible in one command: ``inception-resnet study compare|scaling``.

* :func:`run_compare` trains each pair (non-residual partner, residual network: Inception-v3 vs
  Inception-ResNet-v1, Inception-v4 vs Inception-ResNet-v2) under one recipe, data order and budget for
  several seeds, and writes the curves, tables and ``report.md`` (:mod:`.compare`).
* :func:`run_scaling` trains a wide, full-depth Inception-ResNet for each learning rate, residual scale and
  seed, measures its dead channels and residual stream as it trains (:mod:`.probe`) and reports which runs
  "died", with living controls (:mod:`.scaling`, :func:`detect_death`).
* Presets (``cpu``, ``gpu``, ``imagenet``, ``scaling-cpu``) are JSON files: :func:`load_preset`, :mod:`.config`.

Every run is an ordinary, resumable training run; a study started again skips the runs already done.

Example::

    from inception_resnet.study import load_preset, run_compare
    preset = load_preset("cpu")
    result = run_compare(preset.compare, "study-results/cpu/compare", preset="cpu")
    print(result.report)
"""

from __future__ import annotations

from .compare import CompareResult, PairResult, plan_compare, run_compare
from .config import (
    CompareConfig,
    DeathCriteria,
    Preset,
    ScalingConfig,
    default_preset_name,
    load_preset,
    preset_names,
    preset_path,
    with_overrides,
)
from .death import DeathReport, detect_death, detect_run_death, rate_label
from .pool import run_pool
from .probe import DeathProbe, ResidualStreamMonitor, dead_channel_share
from .scaling import ScalingResult, plan_scaling, residual_widths, run_scaling

__all__ = [
    "CompareConfig",
    "CompareResult",
    "DeathCriteria",
    "DeathProbe",
    "DeathReport",
    "PairResult",
    "Preset",
    "ResidualStreamMonitor",
    "ScalingConfig",
    "ScalingResult",
    "dead_channel_share",
    "default_preset_name",
    "detect_death",
    "detect_run_death",
    "load_preset",
    "plan_compare",
    "plan_scaling",
    "preset_names",
    "preset_path",
    "rate_label",
    "residual_widths",
    "run_compare",
    "run_pool",
    "run_scaling",
    "with_overrides",
]
