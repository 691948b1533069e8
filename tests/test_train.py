"""Training runs end to end: recipe config, fit errors, NaN stop, exact resumption after SIGKILL and SIGTERM.

Everything uses Inception-v4 at width 0.25 on 75x75 synthetic images (``synthetic:N:CLASSES``), batch 4,
one thread, deterministic algorithms.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from inception_resnet import create_model
from inception_resnet.cli import main
from inception_resnet.training import NonFiniteLossError, RunLog, TrainConfig, config_for_resume, train
from inception_resnet.training.checkpoint import checkpoint_step, load_checkpoint
from inception_resnet.training.distributed import GlobalBatchSampler
from inception_resnet.training.plots import plot_run, read_metrics
from inception_resnet.weights import save_weights

TINY = dict(
    model="inception_v4",
    model_options={"width_multiplier": 0.25},
    data="synthetic:32:4",
    input_size=75,
    batch_size=4,
    epochs=2,
    threads=1,
    deterministic=True,
    progress=False,
    log_every_steps=1,
    checkpoint_every_steps=3,
    num_workers=0,
    tensorboard=False,  # importing it can pull in TensorFlow (seconds); RunLog's writer is tested on its own
)
STEPS = 16  # 32 images / batch 4 x 2 epochs


def tiny(run_dir: Path, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "run_dir": str(run_dir), **changes})


class TinySet(Dataset):
    """Random 75x75 images with ``.classes``; ``nan_index`` makes one of them NaN."""

    def __init__(self, size: int = 32, chans: int = 3, classes: int = 4, nan_index: int | None = None) -> None:
        generator = torch.Generator().manual_seed(1)
        self.images = torch.randn(size, chans, 75, 75, generator=generator)
        if nan_index is not None:
            self.images[nan_index] = float("nan")
        self.targets = [i % classes for i in range(size)]
        self.classes = [str(k) for k in range(classes)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.images[index], self.targets[index]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted run of the tiny configuration."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    return train(tiny(run_dir))


def test_config_from_dict_fills_the_recipe_and_rejects_unknown_keys():
    config = TrainConfig.from_dict({"model": "inception_v3", "lr": 0.1}).resolved()
    assert (config.optimizer, config.rmsprop_eps, config.decay_rate, config.lr) == ("rmsprop_tf", 1.0, 0.94, 0.1)
    assert (config.label_smoothing, config.clip_grad_norm, config.ema_decay) == (0.1, 2.0, 0.9999)
    sgd = TrainConfig(recipe="sgd", epochs=20).resolved()
    assert (sgd.optimizer, sgd.schedule, sgd.nesterov, sgd.warmup_epochs) == ("sgd", "cosine", True, 2.0)
    with pytest.raises(ValueError, match="did you mean batch_size"):
        TrainConfig.from_dict({"batchsize": 8})
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8").resolved()


def test_run_records_metrics_config_and_summary(reference_run):
    summary = reference_run
    run_dir = Path(summary.run_dir)
    assert summary.status == "completed" and summary.global_step == STEPS and summary.epochs_completed == 2
    for row in summary.history:
        for key in (
            "train_loss",
            "lr",
            "images_per_second",
            "val_top1_error",
            "val_top5_error",
            "ema_val_top1_error",
            "ema_val_top5_error",
            "grad_norm",
            "elapsed",
        ):
            assert math.isfinite(row[key]), key
        assert 0.0 <= row["zero_fraction"] <= 1.0
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["derived"]["peak_lr"] == pytest.approx(0.045 * 4 / 32)
    assert recorded["config"]["rmsprop_eps"] == 1.0 and recorded["derived"]["steps_per_epoch"] == 8
    assert [row["epoch"] for row in read_metrics(run_dir / "metrics.csv")] == [1.0, 2.0]
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert [row["step"] for row in steps] == list(range(1, STEPS + 1))
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["format"] == "inception-resnet-checkpoint"
    assert summary.chance_loss == pytest.approx(math.log(4))


def test_plot_draws_one_or_several_runs(reference_run, tmp_path):
    out = plot_run(
        [reference_run.run_dir, Path(reference_run.run_dir) / "metrics.jsonl"],
        tmp_path / "c.png",
        labels=["dir", "file"],
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    with pytest.raises(FileNotFoundError, match="metrics"):
        plot_run(tmp_path, tmp_path / "d.png")
    assert main(["plot", reference_run.run_dir, "-o", str(tmp_path / "e.png")]) == 0
    assert (tmp_path / "e.png").stat().st_size > 10_000


def test_cli_flags_map_onto_the_config(capsys, tmp_path):
    assert (
        main(
            [
                "train",
                "--model",
                "inception_v3",
                "--recipe",
                "sgd",
                "--epochs",
                "20",
                "--no-scale-lr",
                "--model-option",
                "aux_logits=true",
                "--print-config",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert (printed["optimizer"], printed["scale_lr"], printed["warmup_epochs"]) == ("sgd", False, 2.0)
    assert printed["model_options"] == {"width_multiplier": 1.0, "aux_logits": True}  # every option, resolved
    assert main(["train", "--resume", "auto", "--print-config"]) == 2  # needs --run-dir: a clear error
    assert "--run-dir" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "dataset", "message"),
    [
        ({"num_classes": 5}, None, "5 outputs but the data has 4 classes"),
        ({}, TinySet(chans=1), "1-channel images but the model takes 3"),
        ({"input_size": 50}, None, "too small; the minimum is 75x75"),
    ],
)
def test_model_and_data_that_do_not_fit_fail_before_the_first_step(tmp_path, changes, dataset, message):
    with pytest.raises(ValueError, match=message):
        train(tiny(tmp_path / "run", **changes), train_dataset=dataset)
    assert not (tmp_path / "run" / "steps.jsonl").exists()
    assert not list((tmp_path / "run").glob("checkpoints/*.pt"))


def test_existing_checkpoints_are_never_overwritten_without_resume(reference_run):
    with pytest.raises(ValueError, match="--resume auto"):
        train(tiny(Path(reference_run.run_dir)))


def test_nan_loss_stops_naming_epoch_step_and_last_good_checkpoint(tmp_path):
    order = GlobalBatchSampler(32, 4, seed=0).epoch_order(0)
    nan_index = int(order[21])  # in the 6th batch of epoch 1; checkpoints are written every 3 steps
    with pytest.raises(NonFiniteLossError) as info:
        train(tiny(tmp_path / "run", epochs=1), train_dataset=TinySet(nan_index=nan_index))
    message = str(info.value)
    good = tmp_path / "run" / "checkpoints" / "last-e0001-s000000003.pt"
    assert "epoch 1, step 6" in message and str(good) in message
    state = load_checkpoint(good)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert [checkpoint_step(p) for p in (tmp_path / "run" / "checkpoints").glob("last-*.pt")] == [3]


def test_fine_tuning_replaces_the_classifier_and_can_freeze_the_body(tmp_path):
    source = create_model("inception_v4", num_classes=10, width_multiplier=0.25)
    weights = save_weights(source, tmp_path / "source.safetensors")
    summary = train(
        tiny(tmp_path / "run", epochs=1, data="synthetic:8:4", pretrained=str(weights), freeze_body=True, ema_decay=0.0)
    )
    trained = load_checkpoint(summary.last_checkpoint)["model"]
    original = source.state_dict()
    body = [k for k in trained if not k.startswith("last_linear.")]
    assert all(torch.equal(trained[k], original[k]) for k in body)  # frozen, BatchNorm statistics included
    assert trained["last_linear.weight"].shape == (4, original["last_linear.weight"].shape[1])


def test_auxiliary_head_adds_its_weighted_loss(tmp_path):
    options = {"width_multiplier": 0.25, "aux_logits": True}
    summary = train(tiny(tmp_path / "run", epochs=1, data="synthetic:8:4", model_options=options, aux_loss_weight=0.4))
    row = summary.history[0]
    assert row["train_total_loss"] > row["train_loss"] + 0.3 * math.log(4) * 0.4


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    common = dict(epochs=1, data="synthetic:8:4", freeze_bn=True, drop_rate=0.0, ema_decay=0.0, lr=0.45)
    whole = train(tiny(tmp_path / "whole", **common))
    halves = train(tiny(tmp_path / "halves", accum_steps=2, **common))
    a, b = load_checkpoint(whole.last_checkpoint)["model"], load_checkpoint(halves.last_checkpoint)["model"]
    assert max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point()) < 1e-5
    assert json.loads((tmp_path / "halves" / "config.json").read_text())["derived"]["micro_batch_per_process"] == 2


def test_tensorboard_receives_epoch_and_step_scalars_when_installed(tmp_path, monkeypatch):
    class FakeWriter:
        def __init__(self, log_dir):
            self.log_dir, self.scalars, self.closed = log_dir, [], False

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    log = RunLog(tmp_path, enabled=True, tensorboard=True)
    log.step({"step": 7, "loss": 1.5, "grad_norm": 2.0, "lr": 0.01, "zero_fraction": 0.25})
    log.epoch([{"epoch": 1, "train_loss": 1.4, "val_top1_error": 50.0}])
    log.close()
    assert log.writer.log_dir == str(tmp_path / "tensorboard") and log.writer.closed
    assert ("step/zero_fraction", 0.25, 7) in log.writer.scalars
    assert ("epoch/val_top1_error", 50.0, 1) in log.writer.scalars
    assert RunLog(tmp_path, enabled=True, tensorboard=False).writer is None


def run_cli(args: list[str], log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - closed by the caller through the process
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "inception_resnet", "train", *args], stdout=handle, stderr=subprocess.STDOUT, env=env
    )


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    path = run_dir / "steps.jsonl"
    while time.monotonic() < deadline:
        if path.is_file():
            lines = path.read_text().splitlines()
            if lines and lines[-1].endswith("}") and json.loads(lines[-1])["step"] >= step:
                return
        if process.poll() is not None:
            raise AssertionError(f"the training process ended (code {process.returncode}) before step {step}")
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"step {step} not reached in {timeout} s")


def test_sigkill_and_sigterm_then_resume_end_with_identical_weights(reference_run, tmp_path):
    run_dir = tmp_path / "run"
    flags = [
        "--model",
        "inception_v4",
        "--model-option",
        "width_multiplier=0.25",
        "--data",
        "synthetic:32:4",
        "--input-size",
        "75",
        "--batch-size",
        "4",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--deterministic",
        "--no-progress",
        "--log-every-steps",
        "1",
        "--checkpoint-every-steps",
        "3",
        "--workers",
        "0",
        "--no-tensorboard",
        "--run-dir",
        str(run_dir),
    ]
    first = run_cli(flags, tmp_path / "first.log")
    wait_for_step(run_dir, 7, first)
    first.send_signal(signal.SIGKILL)
    assert first.wait(60) == -signal.SIGKILL
    checkpoints = sorted((run_dir / "checkpoints").glob("last-*.pt"), key=checkpoint_step)
    assert [checkpoint_step(p) for p in checkpoints][:2] == [3, 6]
    newest = checkpoints[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # as if cut off: the resume must fall back to the previous

    second = run_cli(["--run-dir", str(run_dir), "--resume", "auto"], tmp_path / "second.log")
    wait_for_step(run_dir, 11, second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(120) == 128 + signal.SIGTERM
    log = (tmp_path / "second.log").read_text()
    assert "skipping damaged checkpoint" in log and "SIGTERM: stopped at epoch 2" in log
    assert (run_dir / "checkpoints" / (newest.name + ".damaged")).exists()

    summary = train(config_for_resume({"run_dir": str(run_dir), "resume": "auto"}))
    assert summary.status == "completed" and summary.global_step == STEPS
    resumed = load_checkpoint(summary.last_checkpoint)
    reference = load_checkpoint(reference_run.last_checkpoint)
    for key in ("model", "model_ema"):
        for name, tensor in reference[key].items():
            assert torch.equal(resumed[key][name], tensor), f"{key}.{name}"
    for index, state in reference["optimizer"]["state"].items():
        assert torch.equal(resumed["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"])
    assert [r["train_loss"] for r in summary.history] == [r["train_loss"] for r in reference_run.history]
    assert [json.loads(line)["step"] for line in (run_dir / "steps.jsonl").read_text().splitlines()] == list(
        range(1, STEPS + 1)
    )


def test_googlenet_trains_with_both_auxiliary_losses(tmp_path) -> None:
    """GoogLeNet's two auxiliary heads each add 0.3 x their loss (the model's own weight, recorded)."""
    from inception_resnet.training import TrainingModule, classification_loss

    net = create_model("googlenet", num_classes=3, width_multiplier=0.25, aux_logits=True).train()
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    logits, aux, _ = TrainingModule(net)(images)
    assert len(aux) == 2
    main, total = classification_loss(logits, aux, labels, 0.0, net.aux_loss_weight)
    expected = main + 0.3 * sum(F.cross_entropy(a, labels) for a in aux)
    assert torch.allclose(total, expected)
    summary = train(
        tiny(
            tmp_path / "run",
            model="googlenet",
            epochs=1,
            data="synthetic:8:3",
            model_options={"width_multiplier": 0.25, "aux_logits": True},
            input_size=64,
        )
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["derived"]["aux_loss_weight"] == 0.3
    assert summary.status == "completed"


def test_per_sample_seeds_give_each_image_its_own_stream_and_leave_the_global_generators_alone(monkeypatch):
    """Item i's augmentation draws the stream ``torch.manual_seed`` would give, without calling it.

    ``torch.manual_seed`` also queues a lazy seeding of the accelerator backends, formatting the Python stack
    each time; once per image that cost more than a small network's training step.
    """
    import random

    import numpy as np

    from inception_resnet.training.rng import PerSampleSeeds, isolated_rng

    class Draws(Dataset):
        classes = ["a"]

        def __len__(self):
            return 3

        def __getitem__(self, index):
            return torch.rand(4), np.random.rand(), random.random()

    seed = 12345
    torch.manual_seed(seed)
    expected = torch.rand(4)

    def refuse(*args, **kwargs):
        raise AssertionError("isolated_rng must not call torch.manual_seed")

    monkeypatch.setattr(torch, "manual_seed", refuse)
    torch.default_generator.manual_seed(7)
    before = torch.get_rng_state()
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    with isolated_rng(seed):
        drawn = torch.rand(4)
    assert torch.equal(drawn, expected)
    assert torch.equal(torch.get_rng_state(), before)
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before

    seeded = PerSampleSeeds(Draws(), seed=3)
    first = [seeded[i] for i in range(3)]
    again = [seeded[i] for i in range(3)]
    assert all(torch.equal(a[0], b[0]) and a[1:] == b[1:] for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], first[1][0])
    seeded.epoch = 1
    assert not torch.equal(seeded[0][0], first[0][0])
