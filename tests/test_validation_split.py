"""Validation never runs silently on training images: without a ``val/`` split a stated, class-balanced,
seeded fraction of the training images is held out, and the log and ``config.json`` say so."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inception_resnet.cli import main
from inception_resnet.data import ImageFolderDataset, holdout_split, train_val_datasets

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = {"ant": 10, "bee": 20, "cat": 5}


def write_folder(root: Path, sizes: dict[str, int] = SIZES) -> Path:
    rng = np.random.default_rng(0)
    for name, count in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_holdout_is_class_balanced_disjoint_and_seeded(tmp_path) -> None:
    dataset = ImageFolderDataset(write_folder(tmp_path / "data"))
    train, held = holdout_split(dataset, 0.2, seed=3)
    assert Counter(held.targets) == {0: 2, 1: 4, 2: 1}
    assert Counter(train.targets) == {0: 8, 1: 16, 2: 4}
    assert not set(train.indices) & set(held.indices)
    assert sorted(train.indices + held.indices) == list(range(len(dataset)))
    assert held.classes == dataset.classes
    assert holdout_split(dataset, 0.2, seed=3)[1].indices == held.indices
    assert any(holdout_split(dataset, 0.2, seed=s)[1].indices != held.indices for s in range(4, 8))
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            holdout_split(dataset, fraction)


def test_train_val_datasets_uses_a_val_split_when_there_is_one(tmp_path) -> None:
    flat = write_folder(tmp_path / "flat")
    train, val, note = train_val_datasets(flat, 0.25, seed=0)
    assert (len(train), len(val)) == (35 - 8, 8)  # 10 -> 2 (2.5 rounds to even), 20 -> 5, 5 -> 1 (1.25)
    assert "has no val/ split: 8 of its 35 training images (25%, class-balanced, seed 0) are held out" in note
    split = tmp_path / "split"
    write_folder(split / "train")
    write_folder(split / "val", {"ant": 1, "bee": 1, "cat": 1})
    train, val, note = train_val_datasets(split, 0.25, seed=0)
    assert (len(train), len(val)) == (35, 3) and "validation on" in note and "val" in note
    train_only = tmp_path / "train_only"
    write_folder(train_only / "train")
    assert len(train_val_datasets(train_only, 0.1, seed=0)[1]) == 1 + 2 + 1
    train, val, note = train_val_datasets(flat, 0.0, seed=0)
    assert val is None and len(train) == 35 and note.startswith("no validation")
    (tmp_path / "val_only" / "val").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has val/ but no train/ folder"):
        train_val_datasets(tmp_path / "val_only", 0.1)


def test_training_on_a_folder_without_val_holds_out_and_records_it(tmp_path, capsys) -> None:
    data = write_folder(tmp_path / "data", {"ant": 8, "bee": 8})
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            "inception_v4",
            "--model-option",
            "width_multiplier=0.25",
            "--data-dir",
            str(data),
            "--input-size",
            "75",
            "--epochs",
            "1",
            "-b",
            "4",
            "-j",
            "0",
            "--threads",
            "1",
            "--val-fraction",
            "0.25",
            "--seed",
            "5",
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "has no val/ split: 4 of its 16 training images (25%, class-balanced, seed 5) are held out" in err
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["config"]["val_fraction"] == 0.25
    assert recorded["derived"]["train_images"] == 12 and recorded["derived"]["val_images"] == 4
    assert "held out for validation and not trained on" in recorded["derived"]["validation"]
