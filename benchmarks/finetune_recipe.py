"""Fine-tuning against training from scratch from the same weights: Fashion-MNIST, five classes to the other five.

A network (default GoogLeNet at width 0.25, 75 px) is trained by our trainer on Fashion-MNIST classes 0-4
(T-shirt/top, Trouser, Pullover, Dress, Coat), then trained on classes 5-9 (Sandal, Shirt, Sneaker, Bag,
Ankle boot) for the same number of steps by

* recipe ``finetune`` (what ``--weights`` chooses) at several peak rates;
* the from-scratch recipes ``paper`` and ``sgd``, their own defaults, from the same weights;
* recipe ``paper`` from random weights, for context;

each with several seeds (a seed sets the pretraining and the fine-tuning run). The table gives each setting's
top-1 error on the test split's images of classes 5-9 after the last step, for each seed and their mean:
the error of the weights the run hands out, or for a recipe that averages its weights the better of the
averaged and the raw ones. ``tests/test_finetune.py`` runs one of these comparisons (its settings come from
:func:`pretrain_settings` and :func:`finetune_settings`).

    python benchmarks/finetune_recipe.py --threads 1 --out docs/results
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet.bench import publish  # noqa: E402
from inception_resnet.environment import environment, environment_lines  # noqa: E402
from inception_resnet.training import RECIPES, TrainConfig, TrainSummary, train  # noqa: E402

SOURCE_CLASSES = [0, 1, 2, 3, 4]
TARGET_CLASSES = [5, 6, 7, 8, 9]
# the settings every run shares: small, deterministic runs validated once, at the end; Fashion-MNIST's
# small images padded and cropped, as the study trains them (the inception crops of 5-100 percent of the
# area leave these runs far from converged)
COMMON: dict[str, Any] = dict(
    data="fashion-mnist",
    input_size=75,
    batch_size=32,
    augmentation="pad-crop",
    num_workers=0,
    deterministic=True,
    progress=False,
    tensorboard=False,
    log_every_steps=0,
    keep_last=1,
)


def pretrain_settings(
    model: str = "googlenet", width: float = 0.25, images: int = 2048, epochs: int = 2, seed: int = 0
) -> dict[str, Any]:
    """The training on classes 0-4 whose weights every arm starts from: recipe sgd at the rate the tests'
    Fashion-MNIST network trains with, no warm-up, no EMA."""
    return dict(
        COMMON,
        model=model,
        model_options={"width_multiplier": width},
        classes=SOURCE_CLASSES,
        max_train_images=images,
        max_val_images=250,
        epochs=epochs,
        validate_every_epochs=epochs,
        recipe="sgd",
        lr=1.6,
        warmup_epochs=0.0,
        ema_decay=0.0,
        seed=seed,
    )


def finetune_settings(
    weights: str | None,
    recipe: str,
    lr: float | None = None,
    *,
    model: str = "googlenet",
    width: float = 0.25,
    images: int = 512,
    epochs: int = 4,
    val_images: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """A run on classes 5-9 from ``weights`` (``None``: random weights of ``model`` at ``width``) by ``recipe``,
    at its own rate unless ``lr`` (per 32 images) is given."""
    settings = dict(
        COMMON,
        classes=TARGET_CLASSES,
        max_train_images=images,
        max_val_images=val_images,
        epochs=epochs,
        validate_every_epochs=epochs,
        recipe=recipe,
        seed=seed,
    )
    if weights is None:
        settings.update(model=model, model_options={"width_multiplier": width})
    else:
        settings["pretrained"] = weights
    if lr is not None:
        settings["lr"] = lr
    return settings


def error_after(summary: TrainSummary) -> float:
    """The top-1 error after the run's last step: of its raw weights, or with averaged weights the lower of the
    two (the from-scratch recipes average theirs with a decay meant for long runs)."""
    final = summary.final
    errors = [final[key] for key in ("val_top1_error", "ema_val_top1_error") if final.get(key) is not None]
    return min(errors)


def run(settings: dict[str, Any], run_dir: Path, threads: int) -> TrainSummary:
    summary = train(TrainConfig.from_dict({**settings, "threads": threads, "run_dir": str(run_dir)}))
    if summary.status != "completed":
        raise SystemExit(f"{run_dir.name}: training ended {summary.status}")
    return summary


def arms(rates: list[float]) -> list[tuple[str, str, float | None, bool]]:
    """``(setting, recipe, lr or None, from the pretrained weights)`` of each arm."""
    default = RECIPES["finetune"]["lr"]
    finetune = [
        (f"finetune, lr {rate:g}" + (" (default)" if rate == default else ""), "finetune", rate, True) for rate in rates
    ]
    return [
        *finetune,
        ("paper (from scratch), same weights", "paper", None, True),
        ("sgd (from scratch), same weights", "sgd", None, True),
        ("paper, random weights", "paper", None, False),
    ]


def measure_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One seed: the pretraining, then every arm for every fine-tuning length; the errors and step counts."""
    torch.set_num_threads(args.threads)
    shape = dict(model=args.model, width=args.width)
    found: dict[str, Any] = {"errors": {}, "steps": {}}
    with tempfile.TemporaryDirectory(prefix=f"finetune-recipe-{seed}-") as scratch:
        source = run(
            pretrain_settings(**shape, images=args.pretrain_images, epochs=args.pretrain_epochs, seed=seed),
            Path(scratch) / "pretrain",
            args.threads,
        )
        found["pretrained_error"] = error_after(source)
        print(f"seed {seed}: pretrained: {found['pretrained_error']:.1f}% on classes 0-4", file=sys.stderr)
        for epochs in args.epochs:
            for index, (setting, recipe, lr, from_weights) in enumerate(arms(args.rates)):
                settings = finetune_settings(
                    source.run_dir if from_weights else None,
                    recipe,
                    lr,
                    **shape,
                    images=args.images,
                    epochs=epochs,
                    val_images=args.val_images,
                    seed=seed,
                )
                summary = run(settings, Path(scratch) / f"e{epochs}-arm{index}", args.threads)
                found["errors"][f"{setting} @ {epochs}"] = error_after(summary)
                found["steps"][epochs] = summary.global_step
                print(
                    f"seed {seed}: {setting}: {error_after(summary):.1f}% after {summary.global_step} steps",
                    file=sys.stderr,
                )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--pretrain-images", type=int, default=2048)
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=512, help="fine-tuning images (classes 5-9)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[4], help="fine-tuning epochs, one or several")
    parser.add_argument("--val-images", type=int, default=500, help="test-split images of classes 5-9")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each process")
    parser.add_argument("--jobs", type=int, default=1, help="seeds measured at once, one process each")
    parser.add_argument("--out", default=None, help="write finetune-recipe-<date>.{json,md} here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.jobs > 1:
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            found = dict(zip(args.seeds, pool.map(measure_seed, [args] * len(args.seeds), args.seeds), strict=True))
    else:
        found = {seed: measure_seed(args, seed) for seed in args.seeds}
    steps = found[args.seeds[0]]["steps"]
    rows = []
    for epochs in args.epochs:
        for setting, recipe, lr, from_weights in arms(args.rates):
            errors = {str(seed): found[seed]["errors"][f"{setting} @ {epochs}"] for seed in args.seeds}
            rows.append(
                {
                    "setting": setting,
                    "steps": steps[epochs],
                    "recipe": recipe,
                    "lr": lr if lr is not None else RECIPES[recipe]["lr"],
                    "reference_batch_size": RECIPES[recipe]["reference_batch_size"],
                    "pretrained": from_weights,
                    "errors": errors,
                    "mean_error": statistics.fmean(errors.values()),
                }
            )
    env = environment()
    lines = [
        f"# Fine-tuning against from-scratch recipes: Fashion-MNIST classes 0-4 to 5-9, {args.model} x{args.width:g}",
        "",
        *environment_lines(env),
        f"- Pretraining: classes 0-4, {args.pretrain_images} images, {args.pretrain_epochs} epochs at batch 32, "
        "recipe sgd at lr 1.6 per 256, no warm-up, no EMA; its error on 250 test images of classes 0-4: "
        + ", ".join(f"{found[seed]['pretrained_error']:.1f}% (seed {seed})" for seed in args.seeds),
        f"- Every arm: classes 5-9, {args.images} training images at batch 32 for "
        + " or ".join(f"{epochs} epochs ({steps[epochs]} steps)" for epochs in args.epochs)
        + f", 75 px, pad-and-crop augmentation; top-1 error on {args.val_images} test images of classes 5-9 after "
        "the last step (a recipe with averaged weights: the lower of averaged and raw); a seed sets the "
        "pretraining and the arm",
        "",
        "| setting | steps | lr (per batch) | " + " | ".join(f"seed {seed}" for seed in args.seeds) + " | mean |",
        "|---|---:|---:|" + "---:|" * (len(args.seeds) + 1),
        *(
            f"| {row['setting']} | {row['steps']} | {row['lr']:g} / {row['reference_batch_size']} | "
            + " | ".join(f"{row['errors'][str(seed)]:.1f}%" for seed in args.seeds)
            + f" | {row['mean_error']:.1f}% |"
            for row in rows
        ),
    ]
    data = {"environment": env, "settings": vars(args), "pretrained_errors": {}, "rows": rows}
    data["pretrained_errors"] = {str(seed): found[seed]["pretrained_error"] for seed in args.seeds}
    publish(lines, args.out, "finetune-recipe", data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
