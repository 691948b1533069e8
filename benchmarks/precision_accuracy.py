"""What bf16 and int8 cost in accuracy at the paper's width, on every backend: a network trained on Fashion-MNIST
by our own trainer, run in fp32 eager and through ``optimize_for_inference(model, precision=..., backend=...)``
with each backend (torch's oneDNN kernels and, where installed, OpenVINO).

The network (default: the paper's Inception-ResNet-v2, full width, 75x75) is trained with ``train`` (the
paper's recipe, pad-and-crop), then evaluated on class-balanced validation images in fp32, bf16 and int8 on
each backend (int8 calibrated on training images, as ``eval --precision int8 --calibration fashion-mnist`` does). The
results file gives each precision's top-1 agreement with fp32, its top-1 error and the change from fp32's,
and the largest logit difference on photographs from ``skimage.data`` (issue #17's bounds: bf16 within 0.2
points of fp32's error, int8 within 0.5).

    python benchmarks/precision_accuracy.py --threads 2 --out docs/results
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet import create_model  # noqa: E402
from inception_resnet.bench import publish  # noqa: E402
from inception_resnet.data import build_dataset, multi_crop_transform_for, subset  # noqa: E402
from inception_resnet.data.calibration import load_calibration  # noqa: E402
from inception_resnet.environment import environment, environment_lines  # noqa: E402
from inception_resnet.inference import optimize_for_inference  # noqa: E402
from inception_resnet.inference.precision import have_openvino  # noqa: E402
from inception_resnet.training import TrainConfig, train  # noqa: E402

BOUNDS = {"bf16": 0.2, "int8": 0.5}  # points of top-1 error change from fp32 (issue #17)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")


def backends_and_precisions() -> list[tuple[str, str]]:
    """Every (backend, precision) to measure: torch's fp32 path too (it must match eager), and OpenVINO's three
    precisions where it is installed."""
    backends = ["torch", "openvino"] if have_openvino(int8=True) else ["torch"]
    return [(backend, precision) for backend in backends for precision in ("fp32", *BOUNDS)]


def batched_logits(model: torch.nn.Module, images: torch.Tensor, chunk: int = 250) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(piece).float() for piece in images.split(chunk)])


def photographs(transform) -> torch.Tensor:
    import skimage.data
    from PIL import Image

    return torch.stack([transform(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))[0] for name in PHOTOS])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="inception_resnet_v2_paper")
    parser.add_argument("--input-size", type=int, default=75)
    parser.add_argument("--train-images", type=int, default=32000)
    parser.add_argument("--val-images", type=int, default=5000)
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.045, help="per 32 images, the paper's recipe")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--run-dir", default=None, help="the training run (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="write precision-accuracy-<model>-<date>.{json,md} here")
    args = parser.parse_args(argv)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="precision-accuracy-") as scratch:
        run = train(
            TrainConfig.from_dict(
                dict(
                    model=args.model,
                    data="fashion-mnist",
                    input_size=args.input_size,
                    max_train_images=args.train_images,
                    max_val_images=1000,
                    epochs=1,
                    batch_size=32,
                    recipe="paper",
                    lr=args.lr,
                    warmup_epochs=0.0,
                    ema_decay=0.0,
                    augmentation="pad-crop",
                    channels_last=True,
                    threads=threads,
                    progress=False,
                    tensorboard=False,
                    run_dir=args.run_dir or str(Path(scratch) / "run"),
                )
            )
        )
        if run.status != "completed" or run.best_checkpoint is None:
            where = f"its run directory {args.run_dir}" if args.run_dir else "nothing (pass --run-dir to keep the run)"
            print(
                f"training ended {run.status} before its last epoch; no accuracy to report, kept: {where}",
                file=sys.stderr,
            )
            return run.exit_code or 1
        model = create_model(args.model, num_classes=10, pretrained=run.best_checkpoint).eval()
    trained_s = time.perf_counter() - started
    transform = multi_crop_transform_for(model, 1, input_size=args.input_size)
    val = subset(
        build_dataset("fashion-mnist", "val", lambda image: transform(image)[0], download=False), args.val_images
    )
    images = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor([val[i][1] for i in range(len(val))])
    photos = photographs(transform)
    reference, reference_photos = batched_logits(model, images), batched_logits(model, photos)
    fp32_error = 100 * (reference.argmax(1) != labels).float().mean().item()
    calibration = load_calibration("fashion-mnist", transform, args.calibration_images, download=False)
    rows = [
        {
            "precision": "fp32",
            "backend": "eager",
            "ran": "fp32",
            "plan": "the plain model",
            "agreement": 100.0,
            "top1_error": fp32_error,
            "change": 0.0,
            "photo_diff": 0.0,
            "photo_top1_same": True,
        }
    ]
    for backend, precision in backends_and_precisions():
        fast = optimize_for_inference(model, precision=precision, calibration=calibration, backend=backend)
        out, out_photos = batched_logits(fast, images), batched_logits(fast, photos)
        error = 100 * (out.argmax(1) != labels).float().mean().item()
        rows.append(
            {
                "precision": precision,
                "backend": backend,
                "ran": fast.plan.precision,
                "plan": str(fast.plan),
                "bound": BOUNDS.get(precision),
                "agreement": 100 * (out.argmax(1) == reference.argmax(1)).float().mean().item(),
                "top1_error": error,
                "change": error - fp32_error,
                "photo_diff": (out_photos - reference_photos).abs().max().item(),
                "photo_top1_same": bool(torch.equal(out_photos.argmax(1), reference_photos.argmax(1))),
            }
        )
    env = environment()
    largest = reference_photos.abs().max().item()
    lines = [
        f"# bf16 and int8 against fp32 at the paper's width: {args.model}, trained on Fashion-MNIST",
        "",
        *environment_lines(env),
        f"- Training: our `train`, the paper's recipe at {args.lr:g} per 32 images, pad-and-crop, "
        f"{args.train_images} images, 1 epoch of batch 32, {threads} thread(s): {trained_s / 60:.1f} min",
        f"- Evaluation: {len(labels)} class-balanced Fashion-MNIST validation images at {args.input_size}px; "
        f"int8 calibrated on {args.calibration_images} training images; photographs: "
        f"{', '.join(PHOTOS)} (`skimage.data`), fp32 logits up to {largest:.2f}",
        "",
        "| precision | backend | top-1 agreement with fp32 | top-1 error | change (points) | bound | largest photo "
        "logit difference | photo top-1 as fp32 | within bound | what ran |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        bound = f"{r['bound']:g}" if r.get("bound") is not None else ""
        held = "" if not bound else "yes" if abs(r["change"]) <= r["bound"] else "no"
        name = r["precision"] if r["ran"] == r["precision"] else f"{r['precision']} (this CPU ran {r['ran']})"
        lines.append(
            f"| {name} | {r['backend']} | {r['agreement']:.2f}% | {r['top1_error']:.2f}% | {r['change']:+.2f} | "
            f"{bound} | {r['photo_diff']:.4f} | {'yes' if r['photo_top1_same'] else 'no'} | {held} | {r['plan']} |"
        )
    publish(
        lines,
        args.out,
        f"precision-accuracy-{args.model}",
        {"environment": env, "rows": rows, "train_seconds": trained_s},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
