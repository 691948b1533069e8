"""Throughput of the data pipeline (decode + transform), ours against a plain torchvision/PIL pipeline.

Writes a temporary image folder of real photographs (scikit-image's and scikit-learn's sample images,
re-encoded as JPEG), then times, in the same run and on the same files:

* ours: ``inception_resnet.data.ImageFolderDataset`` (``torchvision.io`` decoding to uint8 tensors) with
  ``eval_transform`` (timm and TF styles) and ``train_transform``;
* plain: ``torchvision.datasets.ImageFolder`` (PIL decoding) with the equivalent ``torchvision.transforms``
  (Resize + CenterCrop, or RandomResizedCrop + flip + ColorJitter, then ToTensor + Normalize).

Each pipeline is timed ``--repeats`` times (round robin) through a DataLoader with ``--workers`` workers (0 = in this
process); the table gives the median images per second and that rate divided by the number of worker
processes (images/s per worker). Example::

    python benchmarks/data_pipeline.py --images 64 --repeats 3 --json results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from inception_resnet.data import ImageFolderDataset, collate_skipping
from inception_resnet.data.augment import train_transform
from inception_resnet.data.transforms import eval_transform


def sample_photos() -> list[np.ndarray]:
    """Real photographs bundled with scikit-image and scikit-learn (RGB uint8)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    names = ["astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "colorwheel"]
    photos = [getattr(skimage.data, name)() for name in names]
    photos.extend(load_sample_images().images)
    return [photo[..., :3] for photo in photos]


def write_image_folder(root: Path, count: int, classes: int = 4, quality: int = 90) -> None:
    """``count`` JPEGs spread over ``classes`` folders, cycling through the photos (mirrored every other time)."""
    photos = sample_photos()
    for i in range(count):
        photo = photos[i % len(photos)]
        if (i // len(photos)) % 2:
            photo = photo[:, ::-1]
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(photo)).save(folder / f"{i:05d}.jpg", quality=quality)


def plain_eval(size: int, crop_pct: float) -> Callable:
    return T.Compose(
        [
            T.Resize(int(size / crop_pct), interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )


def plain_train(size: int) -> Callable:
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.05, 1.0), ratio=(3 / 4, 4 / 3)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(brightness=32 / 255, contrast=0.5, saturation=0.5, hue=0.2),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )


def pipelines(root: Path, size: int, crop_pct: float) -> dict[str, Dataset]:
    ours = ImageFolderDataset(root)
    return {
        "ours eval (timm style)": ours.with_transform(eval_transform(size, crop_pct=crop_pct, style="center")),
        "plain eval (PIL, Resize+CenterCrop)": torchvision.datasets.ImageFolder(
            str(root), transform=plain_eval(size, crop_pct)
        ),
        "ours eval (TF style)": ours.with_transform(eval_transform(size, crop_pct=crop_pct, style="tf")),
        "ours train": ours.with_transform(train_transform(size)),
        "plain train (PIL, RandomResizedCrop+ColorJitter)": torchvision.datasets.ImageFolder(
            str(root), transform=plain_train(size)
        ),
    }


def time_pipeline(dataset: Dataset, workers: int, batch_size: int) -> float:
    """Seconds for one pass over ``dataset`` through a DataLoader (decode + transform + collate)."""
    collate = collate_skipping if isinstance(dataset, ImageFolderDataset) else None
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    started = time.perf_counter()
    for _batch in loader:
        pass
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> list[dict]:
    """Time every pipeline ``repeats`` times, round robin, so that load changes hit them all alike."""
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_image_folder(root, args.images)
        datasets = pipelines(root, args.size, args.crop_pct)
        for dataset in datasets.values():  # warm-up: imports, first allocations
            time_pipeline(torch.utils.data.Subset(dataset, range(min(4, len(dataset)))), 0, args.batch_size)
        times: dict[str, list[float]] = {name: [] for name in datasets}
        for _ in range(args.repeats):
            for name, dataset in datasets.items():
                times[name].append(time_pipeline(dataset, args.workers, args.batch_size))
    rows = []
    for name, dataset in datasets.items():
        rate = len(dataset) / statistics.median(times[name])
        rows.append(
            {
                "pipeline": name,
                "images": len(dataset),
                "workers": args.workers,
                "images_per_second": rate,
                "images_per_second_per_worker": rate / max(1, args.workers),
            }
        )
    return rows


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"decode + transform to {args.size}x{args.size}, {rows[0]['images']} JPEGs, workers={args.workers}, "
        f"torch threads={args.threads}, median of {args.repeats}",
        "",
        "| pipeline | images/s | images/s per worker |",
        "|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['pipeline']} | {row['images_per_second']:.1f} | {row['images_per_second_per_worker']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64, help="JPEGs in the temporary folder (default 64)")
    parser.add_argument("--size", type=int, default=299, help="output side (default 299)")
    parser.add_argument("--crop-pct", type=float, default=0.875, help="evaluation crop fraction (default 0.875)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0: in-process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per pipeline (default 3)")
    parser.add_argument("--json", help="also write the rows (and the environment) to this JSON file")
    args = parser.parse_args(argv)
    rows = run(args)
    print(markdown(rows, args))
    if args.json:
        environment = {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        Path(args.json).write_text(
            json.dumps({"environment": environment, "args": vars(args), "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
