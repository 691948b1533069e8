"""What training does for the residual study: measured step-0 point, validation every N steps, BatchNorm
statistics recomputed in a copy, a held-out part of the training split, clipped steps, pad-crop augmentation.

Inception-ResNet-v1 at width 0.125 on 75x75 synthetic images, one thread, deterministic algorithms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import inception_resnet.data.datasets as datasets_module
from inception_resnet.data import IdxDataset, PadCropTransform, holdout_split, whole_image_transform
from inception_resnet.training import TrainConfig, recompute_batchnorm, train
from inception_resnet.training.progress import RunProgress
from inception_resnet.training.validation import validation_due

SMALL = dict(
    model="inception_resnet_v1",
    model_options={"width_multiplier": 0.125},
    data="synthetic:32:4",
    input_size=75,
    batch_size=8,
    epochs=2,
    threads=1,
    deterministic=True,
    progress=False,
    log_every_steps=1,
    num_workers=0,
    ema_decay=0.0,
    tensorboard=False,
    keep_last=1,
)  # 4 steps per epoch, 8 in all


def small(run_dir: Path, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**SMALL, "run_dir": str(run_dir), **changes})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def validated_steps(config: TrainConfig, last_step: int) -> list[int]:
    """The steps up to ``last_step`` at which a run validates after step 0, as the loop asks ``validation_due``."""
    progress = RunProgress(evaluations=[{"step": 0}])
    for step in range(1, last_step + 1):
        progress.global_step = step
        if validation_due(config, progress):
            progress.evaluations.append({"step": step})
    return [row["step"] for row in progress.evaluations[1:]]


def test_validate_spacing_widens_the_gap_to_a_fraction_of_the_last_validated_step() -> None:
    assert validated_steps(small(Path("unused"), validate_every_steps=2), 12) == [2, 4, 6, 8, 10, 12]
    # the gap is the larger of 2 and half the last validated step: 2, 2, 2, then 3 (after 6), 4, 6, 9, 14
    spaced = small(Path("unused"), validate_every_steps=2, validate_spacing=0.5)
    assert validated_steps(spaced, 45) == [2, 4, 6, 9, 13, 19, 28, 42]
    assert validated_steps(small(Path("unused")), 12) == []  # validate_every_steps=0: only the epochs' ends


def test_validation_at_step_zero_and_every_n_steps(tmp_path: Path) -> None:
    summary = train(small(tmp_path / "run", validate_every_steps=3, validate_every_epochs=100))
    rows = read_jsonl(tmp_path / "run" / "validation.jsonl")
    assert [r["step"] for r in rows] == [0, 3, 6, 8]  # step 0, every 3 steps, and the end of the run
    assert rows[0]["train_seconds"] == 0.0 and rows[0]["epoch"] == 0.0
    assert all(0.0 <= r["val_top1_error"] <= 100.0 for r in rows)
    seconds = [r["train_seconds"] for r in rows]
    assert seconds == sorted(seconds) and seconds[-1] > 0
    assert summary.evaluations == rows
    # the last epoch's row reuses the last validation instead of validating again
    assert summary.history[-1]["val_top1_error"] == rows[-1]["val_top1_error"]
    assert "val_top1_error" not in summary.history[0]  # validate_every_epochs=100: only after the last epoch


def test_validation_gap_grows_with_the_step_under_validate_spacing(tmp_path: Path) -> None:
    train(
        small(
            tmp_path / "run",
            validate_every_steps=1,
            validate_spacing=0.5,
            epochs=5,
            validate_every_epochs=100,
            max_train_images=16,
        )
    )  # 2 steps per epoch, 10 in all
    steps = [r["step"] for r in read_jsonl(tmp_path / "run" / "validation.jsonl")]
    # gap = max(1, int(0.5 x last validated step)): 0, 1, 2, 3, 4, 6, 9, then the end of the run
    assert steps == [0, 1, 2, 3, 4, 6, 9, 10]
    for before, after in zip(steps[1:], steps[2:-1], strict=False):
        assert after - before <= max(1, 0.5 * before)  # every crossing bracketed within half its step


def test_step_zero_measures_the_untrained_network(tmp_path: Path) -> None:
    from inception_resnet import create_model
    from inception_resnet.data import build_loader
    from inception_resnet.data.synthetic import SyntheticDataset
    from inception_resnet.evaluation.evaluate import evaluate_loader

    summary = train(small(tmp_path / "run", validate_every_steps=4, epochs=1))
    torch.manual_seed(SMALL.get("seed", 0))
    untrained = create_model("inception_resnet_v1", num_classes=4, width_multiplier=0.125, drop_rate=0.2)
    val = SyntheticDataset(8, 4, 3, 75, seed=1)  # what the trainer validates on for synthetic:32:4, seed 0
    expected = evaluate_loader(untrained, build_loader(val, 16))
    assert summary.evaluations[0]["step"] == 0
    assert summary.evaluations[0]["val_loss"] == pytest.approx(expected.loss, rel=1e-4)


def test_recomputed_batchnorm_is_the_average_over_the_images_and_leaves_the_network_alone() -> None:
    net = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.Dropout(0.5), nn.Flatten(), nn.Linear(12, 2))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images = [torch.randn(5, 1, 2, 2) for _ in range(4)]
    loader = [(x, torch.zeros(5, dtype=torch.long)) for x in images]
    copy = recompute_batchnorm(net, loader, device=torch.device("cpu"))
    features = [net[0](x).detach() for x in images]
    expected_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    expected_var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features]).mean(0)
    assert torch.allclose(copy[1].running_mean, expected_mean, atol=1e-6)
    assert torch.allclose(copy[1].running_var, expected_var, atol=1e-6)
    assert not copy.training and net.training  # the copy is for evaluation; the original keeps its mode
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_recomputing_batchnorm_before_validations_does_not_change_training(tmp_path: Path) -> None:
    plain = train(small(tmp_path / "plain", validate_every_steps=2))
    recomputed = train(small(tmp_path / "recomputed", validate_every_steps=2, bn_recompute_images=16))
    assert [r["train_loss"] for r in plain.history] == [r["train_loss"] for r in recomputed.history]
    weights = torch.load(tmp_path / "plain" / "checkpoints" / "best.pt", weights_only=False)["model"]
    other = torch.load(tmp_path / "recomputed" / "checkpoints" / "best.pt", weights_only=False)["model"]
    assert all(torch.equal(weights[k], other[k]) for k in weights)  # running statistics included
    assert [r["val_top1_error"] for r in plain.evaluations] != [
        r["val_top1_error"] for r in recomputed.evaluations
    ] or [r["val_loss"] for r in plain.evaluations] != [r["val_loss"] for r in recomputed.evaluations]


def test_clipped_steps_are_counted(tmp_path: Path) -> None:
    clipped = train(small(tmp_path / "clipped", clip_grad_norm=1e-6, epochs=1))
    free = train(small(tmp_path / "free", clip_grad_norm=0.0, epochs=1))
    assert clipped.history[-1]["clipped_steps"] == 4 and free.history[-1]["clipped_steps"] == 0
    steps = read_jsonl(tmp_path / "clipped" / "steps.jsonl")
    assert all(row["clipped"] for row in steps)


# -- a held-out part of the training split --------------------------------------------------------------------
def test_holdout_split_is_class_balanced_disjoint_and_fixed_by_the_seed() -> None:
    images = np.zeros((200, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 20)
    dataset = IdxDataset(images, labels, [str(i) for i in range(10)])
    rest, held = holdout_split(dataset, 0.1, seed=3)
    assert len(held) == 20 and len(rest) == 180
    assert set(held.indices).isdisjoint(rest.indices) and set(held.indices) | set(rest.indices) == set(range(200))
    assert sorted(held.targets) == sorted(list(range(10)) * 2)  # two of each class
    assert holdout_split(dataset, 0.1, seed=3)[1].indices == held.indices
    assert holdout_split(dataset, 0.1, seed=4)[1].indices != held.indices
    with pytest.raises(ValueError, match="fraction"):
        holdout_split(dataset, 1.0)


def test_holdout_training_never_reads_the_validation_split(tmp_path: Path, monkeypatch) -> None:
    generator = np.random.default_rng(0)
    images = generator.integers(0, 255, size=(60, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 15)
    splits: list[str] = []

    def fake_build_dataset(data, split, transform=None, **_):
        splits.append(split)
        if split != "train":
            raise AssertionError("the validation split was read")
        return IdxDataset(images, labels, ["a", "b", "c", "d"], transform, name="fake train")

    monkeypatch.setattr(datasets_module, "build_dataset", fake_build_dataset)
    summary = train(
        small(
            tmp_path / "run",
            data="fashion-mnist",
            in_chans=1,
            holdout_fraction=0.2,
            augmentation="pad-crop",
            epochs=1,
            validate_every_steps=2,
            bn_recompute_images=8,
        )
    )
    assert splits == ["train"]
    derived = json.loads((tmp_path / "run" / "config.json").read_text())["derived"]
    assert derived["val_images"] == 12 and derived["train_images"] == 48  # 3 of each class held out
    assert [r["step"] for r in summary.evaluations] == [0, 2, 4, 6]
    with pytest.raises(ValueError, match="holdout_fraction"):
        TrainConfig.from_dict({**SMALL, "holdout_fraction": 1.5}).resolved()


# -- pad-crop augmentation -------------------------------------------------------------------------------------
def test_pad_crop_shifts_and_flips_the_whole_image() -> None:
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[0, 10:18, 4:12] = 255  # a bright square left of centre
    whole = whole_image_transform(75, 1)(image)
    assert whole.shape == (1, 75, 75) and whole.min() == pytest.approx(-1.0) and whole.max() == pytest.approx(1.0)
    assert torch.allclose(PadCropTransform(75, 1, pad_fraction=0.0, flip=False)(image), whole)
    transform = PadCropTransform(75, 1)
    torch.manual_seed(0)
    views = [transform(image) for _ in range(40)]
    assert all(v.shape == (1, 75, 75) for v in views)
    assert len({tuple(v.flatten()[::97].tolist()) for v in views}) > 10  # random offsets and flips
    # the square survives every crop (4-pixel padding moves it at most 4 pixels): the bright area stays
    bright = [(v > 0).float().mean().item() for v in views]
    assert min(bright) > 0.5 * (whole > 0).float().mean().item()
    flipped = sum((v[..., :37] > 0).sum() < (v[..., 38:] > 0).sum() for v in views)
    assert 5 < flipped < 35  # about half the views are mirrored
    with pytest.raises(ValueError, match="pad_fraction"):
        PadCropTransform(75, 1, pad_fraction=1.0)


def test_validations_survive_a_resumed_run(tmp_path: Path) -> None:
    whole = train(small(tmp_path / "whole", validate_every_steps=2))
    train(small(tmp_path / "split", validate_every_steps=2, epochs=1))
    resumed = train(small(tmp_path / "split", validate_every_steps=2, resume="auto"))
    assert [r["step"] for r in resumed.evaluations] == [0, 2, 4, 6, 8]
    assert [r["val_loss"] for r in resumed.evaluations] == pytest.approx([r["val_loss"] for r in whole.evaluations])
    assert read_jsonl(tmp_path / "split" / "validation.jsonl") == resumed.evaluations


def test_profile_of_a_study_run_splits_its_time(benchmark_script, tmp_path, capsys) -> None:
    """benchmarks/profile_study_run.py trains a few steps of the demo's entry and accounts for its time."""
    script = benchmark_script("profile_study_run")
    preset = {
        "name": "tiny",
        "description": "test",
        "compare": {
            "pairs": [["inception_v3", "inception_resnet_v1"]],
            "train": {
                "data": "synthetic:64",
                "model_options": {"width_multiplier": 0.25},
                "input_size": 75,
                "batch_size": 16,
                "validate_every_steps": 1,
                "validate_spacing": 0.1,
                "bn_recompute_images": 16,
                "threads": 1,
                "max_val_images": 16,
                "tensorboard": False,
                "ema_decay": 0.0,
            },
        },
    }
    (tmp_path / "tiny.json").write_text(json.dumps(preset))
    assert script.main(["--preset", str(tmp_path / "tiny.json"), "--steps", "3", "--out", str(tmp_path)]) == 0
    data = json.loads(next(tmp_path.glob("profile-study-*.json")).read_text())
    parts = data["parts"]
    assert 0 < parts["training steps"] < data["total_seconds"] and parts["validations"] > 0
    assert parts["  forward and backward"] <= parts["training steps"]
    assert parts["  BatchNorm recomputation"] <= parts["validations"]
    assert "| whole run |" in capsys.readouterr().out
