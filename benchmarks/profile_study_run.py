"""Where a study run's time goes: the network's own steps against validation, BatchNorm recomputation and data.

Trains one run of a study preset's entry (default: the demo's ``cpu`` preset, ``inception_v3``, its
settings unchanged except the number of images) under ``cProfile`` and splits its wall time into the
training steps (forward and backward; optimiser, clipping), the validations (their forward passes and
their BatchNorm recomputation), the per-image preprocessing of the data pipeline, and the rest. It answers
whether a study's budget goes to the networks or to what surrounds them.

    python benchmarks/profile_study_run.py --preset cpu --entry inception_v3 --steps 120 --out docs/results
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet.bench import publish  # noqa: E402
from inception_resnet.environment import environment, environment_lines  # noqa: E402
from inception_resnet.study import load_preset  # noqa: E402
from inception_resnet.training import TrainConfig, train  # noqa: E402

# (label, file suffix, function name) of the cumulative times the table reports.
PARTS = [
    ("training steps", "training/trainer.py", "train_step"),
    ("  forward and backward", "training/step.py", "forward_backward"),
    ("validations", "training/validation.py", "validate"),
    ("  BatchNorm recomputation", "training/validation.py", "recompute_batchnorm"),
    ("  evaluation passes", "evaluation/evaluate.py", "evaluate_loader"),
    ("per-image preprocessing (all loaders)", "data/transforms.py", "__call__"),
]


def cumulative(stats: pstats.Stats, suffix: str, function: str) -> float:
    """The cumulative seconds of the function ``function`` in a file ending with ``suffix`` (0 when absent)."""
    return sum(
        row[3]
        for (path, _, name), row in stats.stats.items()  # type: ignore[attr-defined]
        if name == function and path.endswith(suffix)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--entry", default="inception_v3")
    parser.add_argument("--steps", type=int, default=120, help="optimiser steps to train (the dense-validation phase)")
    parser.add_argument("--out", default=None, help="folder for the .md/.json results")
    args = parser.parse_args(argv)
    preset = load_preset(args.preset)
    compare = preset.compare
    settings = compare.settings(args.entry)
    batch = int(settings.get("batch_size", 32))
    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig.from_dict(
            {
                **settings,
                "seed": 0,
                "epochs": 1,
                "max_train_images": args.steps * batch,
                "run_dir": folder,
                "progress": False,
            }
        )
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        train(config)
        profiler.disable()
        total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    rows = [(label, cumulative(stats, suffix, name)) for label, suffix, name in PARTS]
    lines = [
        f"# Where a study run's time goes: `{preset.name}` preset, `{args.entry}`",
        "",
        *environment_lines(environment()),
        "",
        f"{args.steps} optimiser steps of {batch} images with the preset's validation schedule "
        f"(every {settings.get('validate_every_steps')} steps, spacing {settings.get('validate_spacing', 0)}), "
        f"{settings.get('threads')} thread(s), under cProfile (which adds a little to every Python call).",
        "",
        "| part | seconds | share of the run |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {seconds:.1f} | {100 * seconds / total:.0f} % |" for label, seconds in rows]
    lines += [f"| whole run | {total:.1f} | 100 % |", ""]
    publish(
        lines,
        args.out,
        f"profile-study-{preset.name}-{args.entry}",
        {
            "preset": args.preset,
            "entry": args.entry,
            "steps": args.steps,
            "total_seconds": total,
            "parts": dict(rows),
            "environment": environment(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
