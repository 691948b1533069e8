"""The residual study of the paper, reproducible in one command: ``inception-resnet study compare|sweep|scaling``.

* :func:`run_compare` trains each pair (partner, residual network: Inception-v3 vs Inception-ResNet-v1,
  and Inception-ResNet-v1 without its shortcuts vs with them; likewise for v4 and Inception-ResNet-v2) under
  one recipe, data order and budget for many paired seeds, each entry at its own learning rate, times each
  network alone, and writes the curves, tables, verdicts (t-intervals, exact sign-flip p-values:
  :mod:`.significance`, :mod:`.verdicts`) and ``report.md`` (:mod:`.compare`, :mod:`.compare_report`).
* :func:`run_sweep` chooses those learning rates on held-out training images, by the mean error over
  training, widening its grid until each choice is inside it (:mod:`.sweep`).
* :func:`run_scaling` trains a wide, full-depth Inception-ResNet for each learning rate, residual scale and
  seed, measures its dead channels and residual stream as it trains (:mod:`.probe`) and reports which runs
  "died", with living controls (:mod:`.scaling`, :func:`detect_death`).
* Presets (``cpu``: the demo, ``cpu-evidence``: the committed evidence, ``gpu``, ``imagenet``, ``scaling-cpu``,
  ``scaling-cpu-long``) are JSON files: :func:`load_preset`, :mod:`.config`. The result types are in
  :mod:`.results`; the layers of the package are described in docs/architecture.md.

Every run is an ordinary, resumable training run; a study started again skips the runs already done.

Example::

    from inception_resnet.study import load_preset, run_compare
    preset = load_preset("cpu")
    result = run_compare(preset.compare, "study-results/cpu/compare", preset="cpu")
    print(result.report)
"""

from __future__ import annotations

from .compare import plan_compare, run_compare
from .config import CompareConfig, DeathCriteria, ScalingConfig, SweepConfig
from .death import DeathReport, detect_death, detect_run_death, rate_label
from .presets import Preset, default_preset_name, load_preset, preset_names, preset_path, with_overrides
from .probe import DeathProbe, ResidualStreamMonitor, dead_channel_share
from .results import CompareResult, PairResult, ScalingResult, SweepResult
from .scaling import plan_scaling, residual_widths, run_scaling
from .sweep import plan_sweep, run_sweep

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
    "SweepConfig",
    "SweepResult",
    "dead_channel_share",
    "default_preset_name",
    "detect_death",
    "detect_run_death",
    "load_preset",
    "plan_compare",
    "plan_scaling",
    "plan_sweep",
    "preset_names",
    "preset_path",
    "rate_label",
    "residual_widths",
    "run_compare",
    "run_scaling",
    "run_sweep",
    "with_overrides",
]
