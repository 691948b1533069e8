"""The scaling study (paper section 3.3): the dead-channel measure, the residual-stream hooks, the step probe in
the training loop, the labelling of rate-induced deaths, living controls, the presets and a tiny study end to end."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from inception_resnet.cli import main
from inception_resnet.models.layers import ScaledResidual
from inception_resnet.models.registry import build_model
from inception_resnet.study import (
    DeathProbe,
    ResidualStreamMonitor,
    ScalingConfig,
    dead_channel_share,
    load_preset,
    rate_label,
    run_scaling,
)
from inception_resnet.study.death import rate_per_32
from inception_resnet.study.probe import probe_indices, residual_blocks, zero_fraction
from inception_resnet.study.runs import RunSpec, run_all
from inception_resnet.study.scaling import ProbedTrain, check_width, plan_scaling
from inception_resnet.training import NonFiniteLossError, TrainConfig, TrainSummary, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY_TRAIN = {
    "data": "synthetic:32",
    "model_options": {"width_multiplier": 0.25, "blocks": [1, 1, 1]},
    "input_size": 75,
    "epochs": 1,
    "batch_size": 16,
    "max_val_images": 16,
    "ema_decay": 0.0,
    "log_every_steps": 1,
    "keep_last": 1,
    "progress": False,
    "tensorboard": False,
    "threads": 1,
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# -- the measures ----------------------------------------------------------------------------------------------
def test_dead_channel_share_on_a_hand_built_feature_map() -> None:
    features = torch.ones(3, 4, 2, 2)
    features[:, 0] = 0.0  # dead: zero on every image, everywhere
    features[:, 1] = 0.0
    features[2, 1, 1, 0] = 0.5  # alive: one image, one position is enough
    features[:2, 3] = 0.0  # alive: zero on two images of three only
    assert dead_channel_share(features) == pytest.approx(0.25)
    assert zero_fraction(features) == pytest.approx((12 + 11 + 8) / 48)
    assert dead_channel_share(features.flatten(2).mean(2)) == pytest.approx(0.25)  # pooled (N, C) works too
    assert dead_channel_share(torch.zeros(2, 5, 3, 3)) == 1.0 and dead_channel_share(torch.randn(2, 5, 3, 3)) == 0.0
    with pytest.raises(ValueError, match="batch of feature maps"):
        dead_channel_share(torch.zeros(5))


def test_probe_batch_indices_are_spread_over_the_dataset() -> None:
    assert probe_indices(10, 5) == [0, 2, 4, 6, 8]
    assert probe_indices(3, 8) == [0, 1, 2] and probe_indices(0, 4) == []


class Branch(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv2d(channels, channels, 3, padding=1))
        self.out_channels = channels


def test_residual_stream_monitor_records_every_blocks_output_norm() -> None:
    blocks = nn.Sequential(*[ScaledResidual(4, {"branch0": Branch(4)}, scale=s) for s in (1.0, 0.2, 0.5)])
    first, second = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)

    def by_hand(x: torch.Tensor) -> list[float]:  # the stream after each block, block by block
        norms = []
        for block in blocks:
            x = block(x)
            norms.append(x.pow(2).mean().sqrt().item())
        return norms

    with torch.no_grad():
        with ResidualStreamMonitor(blocks) as monitor:
            blocks(first)
            blocks(second)
        blocks(first)  # the hooks are gone once the monitor is closed
        expected = [by_hand(first), by_hand(second)]
    assert monitor.names == ["0", "1", "2"]
    assert len(monitor.values) == 2
    assert monitor.values[0] == pytest.approx(expected[0], rel=1e-5)
    assert monitor.last() == pytest.approx(expected[1], rel=1e-5)
    assert not any(block._forward_hooks for block in blocks)


def test_probe_measures_a_network_and_leaves_it_as_it_was() -> None:
    net = build_model("inception_resnet_v2_paper", num_classes=10, in_chans=1, width_multiplier=0.25, blocks=(1, 2, 1))
    assert [name for name, _ in residual_blocks(net)] == ["repeat.0", "repeat_1.0", "repeat_1.1", "repeat_2.0"]
    net.train()
    frozen = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)).eval()  # a frozen layer
    flags = [m.training for m in net.modules()]
    buffers = {k: v.clone() for k, v in net.state_dict().items()}
    images = torch.randn(4, 1, 75, 75)
    rng = torch.get_rng_state()
    row = DeathProbe(probe_images=4).measure(net, images)
    assert [m.training for m in net.modules()] == flags and not frozen.training
    assert torch.equal(torch.get_rng_state(), rng)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, torch.tensor([0, 1, 2, 3])), batch_size=2
    )
    errors = DeathProbe().validate(net, loader, torch.device("cpu"))
    assert DeathProbe().validate(net, list(loader), torch.device("cpu")) == errors  # any iterable of batches
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images[:0], torch.tensor([], dtype=int)))
    assert DeathProbe().validate(net, empty, torch.device("cpu")) == {}
    with torch.no_grad():
        logits = net.eval()(images)
    net.train(), frozen.eval()
    assert errors["val_top1_error"] == 100.0 * (logits.argmax(1) != torch.arange(4)).float().mean().item()
    assert errors["val_loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.arange(4)).item(), rel=1e-4
    )
    assert [m.training for m in net.modules()] == flags
    assert all(torch.equal(buffers[k], v) for k, v in net.state_dict().items())  # BatchNorm statistics too
    assert 0.0 <= row["dead_channels"] <= row["probe_zero_fraction"] <= 1.0
    assert len(row["stream_rms"]) == 4 and row["stream_rms_last"] == row["stream_rms"][-1] > 0
    assert row["stream_rms_max"] == max(row["stream_rms"])


def test_each_run_gets_a_probe_of_its_own() -> None:
    probe = DeathProbe(probe_images=2)
    dataset = [(torch.full((1, 3, 3), float(i)), 0) for i in range(4)]
    assert probe.probe_batch(dataset, torch.device("cpu"))[:, 0, 0, 0].tolist() == [0.0, 2.0]
    other = [(torch.full((1, 3, 3), -1.0), 0)] * 4
    assert probe.probe_batch(other, torch.device("cpu")).min() == 0.0  # cached within a run
    assert dataclasses.replace(probe).probe_batch(other, torch.device("cpu")).max() == -1.0  # a new run's copy
    assert pickle.loads(pickle.dumps(ProbedTrain(probe))).probe._batch is None  # the batch stays behind


# -- the probe in the training loop --------------------------------------------------------------------------------
def test_step_probe_adds_to_the_logged_rows_without_changing_training(tmp_path: Path) -> None:
    settings = {**TINY_TRAIN, "model": "inception_resnet_v2_paper", "seed": 3}
    plain = train({**settings, "run_dir": str(tmp_path / "plain")})
    probed = train(
        {**settings, "run_dir": str(tmp_path / "probed")}, step_probe=DeathProbe(probe_images=8, val_every_steps=2)
    )
    assert probed.final["train_loss"] == plain.final["train_loss"]  # the probe draws no random numbers
    assert probed.final["val_top1_error"] == plain.final["val_top1_error"]
    rows = [json.loads(line) for line in (tmp_path / "probed" / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]  # step 0: the untrained network
    assert "loss" not in rows[0] and all("loss" in r for r in rows[1:])
    for row in rows:
        assert 0.0 <= row["dead_channels"] <= 1.0 and len(row["stream_rms"]) == 3
    assert [r["step"] for r in rows if "val_top1_error" in r] == [0, 2]
    assert "dead_channels" not in (tmp_path / "plain" / "steps.jsonl").read_text()


# -- rates and labels ------------------------------------------------------------------------------------------------
def test_deaths_far_above_the_papers_rate_are_labelled_rate_induced() -> None:
    assert rate_per_32(0.045, 64, 32) == pytest.approx(0.045)  # the recipe scales the rate to the batch
    assert rate_per_32(0.045, 64, 32, scale_lr=False) == pytest.approx(0.0225)
    assert rate_label(False, 0.45) == "alive"
    assert rate_label(True, 0.045) == "dead" and rate_label(True, 0.09) == "dead"
    assert rate_label(True, 0.18) == "dead, rate-induced (4x the paper's rate)"
    assert rate_label(True, 0.45).startswith("dead, rate-induced (10x")
    assert rate_label(True, 0.18, factor=8.0) == "dead"


def dying_steps(lr: float, scale: float, seed: int) -> list[dict]:
    """Crafted logs: at lr 0.18 the unscaled network dies at step 6; at 0.045 only seed 0 of it does."""
    dies = scale == 1.0 and (lr == 0.18 or seed == 0)
    return [
        {
            "step": s,
            "loss": 2.303 if (dies and s >= 6) else 2.5 - 0.05 * s,
            "dead_channels": 1.0 if (dies and s >= 6) else 0.1 * scale,
            "zero_fraction": 0.3,
            "stream_rms": [1.0, 2.0 * scale + 1.0],
            "stream_rms_last": 2.0 * scale + 1.0,
            "stream_rms_max": 2.0 * scale + 1.0,
        }
        for s in range(0, 13)
    ]


def fake_scaling_train(config: TrainConfig) -> TrainSummary:
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = dying_steps(config.lr, config.model_options["residual_scale"], config.seed)
    dead = steps[-1]["dead_channels"] == 1.0
    history = [{"epoch": 1, "step": 12, "train_loss": 2.0, "val_top1_error": 90.0 if dead else 20.0 + config.seed}]
    (run_dir / "metrics.jsonl").write_text(json.dumps(history[0]) + "\n")
    (run_dir / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))
    derived = {"num_classes": 10, "input_size": config.input_size, "total_steps": 12, "train_images": 384}
    (run_dir / "config.json").write_text(json.dumps({"config": config.to_dict(), "derived": derived}))
    return TrainSummary(
        str(run_dir), "completed", 1, 12, history, 1, 20.0, 10.0, 6.0, 10.0, None, None, config.to_dict(), math.log(10)
    )


def test_scaling_report_labels_deaths_and_sets_living_controls_beside_them(tmp_path: Path) -> None:
    config = ScalingConfig(
        model="inception_resnet_v2_paper",
        scales=[1.0, 0.1],
        seeds=[0, 1],
        lrs=[0.045, 0.18],
        train={"model_options": {"width_multiplier": 0.5}, "input_size": 75, "log_every_steps": 1},
    )
    result = run_scaling(config, tmp_path, train_fn=fake_scaling_train, log=None)
    assert [r.key for r in result.runs][:4] == [
        "lr0.045-scale1-seed0",
        "lr0.045-scale0.1-seed0",
        "lr0.18-scale1-seed0",
        "lr0.18-scale0.1-seed0",
    ]
    assert result.dead_share(1.0, 0.045) == (1, 2) and result.dead_share(1.0, 0.18) == (2, 2)
    assert result.dead_share(0.1) == (0, 4)
    labels = {r.key: r.label for r in result.runs}
    assert labels["lr0.045-scale1-seed0"] == "dead" and labels["lr0.045-scale1-seed1"] == "alive"
    assert labels["lr0.18-scale1-seed1"] == "dead, rate-induced (4x the paper's rate)"
    assert {r.death.step for r in result.runs if r.death.dead} == {6}
    report = (tmp_path / "report.md").read_text()
    assert "| 0.045 | 1 | 2 | 1 | 6 | 0 | 0 | 1 |" in report  # one death, one living run at the paper's rate
    assert "| 0.18 | 1 | 2 | 2 | 6, 6 | 2 | 0 | 0 |" in report  # both deaths rate-induced
    assert "1 of 2 unscaled run(s) (scale 1.0) died within 12 steps; 0 of 2 run(s) with a scale of 0.3" in report
    # the death at the paper's rate, beside the runs that trained normally at the same settings
    assert "  - same rate and scale, other seed: `lr0.045-scale1-seed1` (21.0 %)" in report
    assert "  - same rate, other scale: `lr0.045-scale0.1-seed0` (20.0 %), `lr0.045-scale0.1-seed1` (21.0 %)" in report
    assert "  - same scale, other rate: none" in report
    assert "their residual stream at the last step is above scale 0.1's" in report
    for name in ("scaling.png", "stream.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE
    rows = {r["key"]: r for r in read_csv(tmp_path / "scaling.csv")}
    assert rows["lr0.18-scale1-seed0"]["label"].startswith("dead, rate-induced")
    assert rows["lr0.045-scale0.1-seed1"]["final_val_top1_error"] == "21.0"  # every run's validation error
    assert rows["lr0.045-scale0.1-seed1"]["trained_normally"] == "True"
    assert float(rows["lr0.045-scale1-seed1"]["init_stream_rms_last"]) == 3.0


def test_a_diverged_run_is_labelled_apart_with_its_rate(tmp_path: Path) -> None:
    def diverging(config: TrainConfig) -> TrainSummary:
        fake_scaling_train(config)
        raise NonFiniteLossError("the loss became nan at epoch 1, step 7")

    half = {"model_options": {"width_multiplier": 0.5}}
    config = ScalingConfig(scales=[1.0], seeds=[0], lrs=[0.045, 0.18], train=half)
    result = run_scaling(config, tmp_path, train_fn=diverging, log=None)
    assert [r.label for r in result.runs] == ["diverged", "diverged, rate-induced (4x the paper's rate)"]
    assert not any(r.trained for r in result.runs)
    assert "| 0.18 | 1 | 1 | 1 | 6 | 1 | 1 | 0 |" in (tmp_path / "report.md").read_text()


def test_rate_grid_plans_one_run_per_rate_scale_and_seed(tmp_path: Path) -> None:
    config = ScalingConfig(scales=[1.0, 0.1], seeds=[0, 1], lrs=[0.0225, 0.045, 0.09])
    specs = plan_scaling(config, tmp_path)
    assert len(specs) == 12 and specs[0].key == "lr0.0225-scale1-seed0" and specs[-1].key == "lr0.09-scale0.1-seed1"
    assert {s.settings["lr"] for s in specs} == {0.0225, 0.045, 0.09}
    assert plan_scaling(ScalingConfig(scales=[0.2], seeds=[3]), tmp_path)[0].key == "scale0.2-seed3"
    with pytest.raises(ValueError, match="give the rates in lrs only"):
        ScalingConfig(lrs=[0.045], train={"lr": 0.1}).validate()
    with pytest.raises(ValueError, match=r"scaling.lrs must hold at least 1 item"):
        ScalingConfig(lrs=[]).validate()


def test_scaling_refuses_narrow_networks() -> None:
    config = ScalingConfig(model="inception_resnet_v2_paper", train={"model_options": {"width_multiplier": 0.25}})
    with pytest.raises(ValueError, match="more than min_filters=1000"):
        check_width(config)
    half = ScalingConfig(
        model="inception_resnet_v2_paper", wide_stages=2, train={"model_options": {"width_multiplier": 0.5}}
    )
    with pytest.raises(ValueError, match="fewer than wide_stages=2"):  # only the C stage (1072) is wide
        check_width(half)


# -- presets ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "rates"), [("scaling-cpu", 3), ("scaling-cpu-long", 1), ("gpu", 3), ("imagenet", 3)])
def test_scaling_presets_are_the_papers_regime(name: str, rates: int) -> None:
    scaling = load_preset(name).scaling
    widths = check_width(scaling)
    assert sum(w > 1000 for w in widths) >= 2  # the B and C stages
    assert "blocks" not in scaling.train.get("model_options", {})  # full depth
    per_32 = [rate_per_32(lr, scaling.train["batch_size"], 32) for lr in scaling.lrs]
    assert 0.045 in [round(r, 6) for r in per_32] and len(per_32) >= rates  # the paper's rate, a grid
    assert sorted(scaling.scales) == [0.1, 0.2, 0.3, 1.0] and len(scaling.seeds) >= 2
    assert scaling.death.measure == "dead_channels"


@pytest.mark.parametrize("name", ["scaling-cpu", "scaling-cpu-long"])
def test_scaling_cpu_presets_hold_no_compare_section(name: str) -> None:
    preset = load_preset(name)
    assert preset.sections == ("scaling",)
    with pytest.raises(ValueError, match="has no compare section"):
        preset.section("compare")


# -- running -----------------------------------------------------------------------------------------------------------
def test_parallel_runs_train_in_other_processes_and_keep_the_plan_order(tmp_path: Path) -> None:
    specs = [
        RunSpec(
            f"run{i}",
            "inception_resnet_v2_paper",
            i,
            "g",
            {
                "model": "inception_resnet_v2_paper",
                "seed": i,
                "lr": 0.045,
                "model_options": {"residual_scale": 1.0},
                "input_size": 75,
            },
            tmp_path / f"run{i}",
        )
        for i in range(3)
    ]
    fake_scaling_train(TrainConfig.from_dict({**specs[2].settings, "run_dir": str(specs[2].run_dir)}))
    (specs[2].run_dir / "study_run.json").write_text(json.dumps({"status": "completed", "settings": {}}))
    messages: list[str] = []
    records = run_all(specs, parallel=2, train_fn=fake_scaling_train, log=messages.append)
    assert [r.spec.key for r in records] == ["run0", "run1", "run2"]
    assert [r.status for r in records] == ["completed"] * 3
    assert [r.trained_now for r in records] == [True, True, False]  # run2 was done before
    assert any("run2: done before" in m for m in messages)


def test_tiny_scaling_study_end_to_end(tmp_path: Path) -> None:
    preset = {
        "name": "tiny",
        "description": "test",
        "scaling": {
            "model": "inception_resnet_v2_paper",
            "lrs": [0.045, 0.18],
            "scales": [1.0, 0.1],
            "seeds": [0],
            "min_filters": 0,
            "probe_images": 8,
            "val_every_steps": 1,
            "keep_checkpoints": False,
            "train": TINY_TRAIN,
        },
    }
    (tmp_path / "tiny.json").write_text(json.dumps(preset))
    out = tmp_path / "scaling"
    assert main(["study", "scaling", "--preset", str(tmp_path / "tiny.json"), "--out", str(out), "--quiet"]) == 0
    rows = read_csv(out / "scaling.csv")
    assert sorted(r["key"] for r in rows) == sorted(
        ["lr0.045-scale1-seed0", "lr0.045-scale0.1-seed0", "lr0.18-scale1-seed0", "lr0.18-scale0.1-seed0"]
    )
    for row in rows:
        assert row["status"] == "completed"
        assert row["label"] in ("alive", "dead", "dead, rate-induced (4x the paper's rate)")
        assert 0.0 <= float(row["final_dead_channels"]) <= 1.0 and float(row["final_stream_rms_last"]) > 0
        assert 0.0 <= float(row["final_val_top1_error"]) <= 100.0
    lines = (out / "runs" / "lr0.18-scale1-seed0" / "steps.jsonl").read_text().splitlines()
    steps = [json.loads(line) for line in lines]
    assert [s["step"] for s in steps] == [0, 1, 2] and all("val_top1_error" in s for s in steps)
    assert not (out / "runs" / "lr0.18-scale1-seed0" / "checkpoints").exists()  # keep_checkpoints false
    assert (out / "runs" / "lr0.18-scale1-seed0" / "study_run.json").is_file()
    report = (out / "report.md").read_text()
    assert "## The answer" in report and "## Every death and its living controls" in report
    assert "learning rates 0.045, 0.18 per 32 images" in report
    for name in ("scaling.png", "stream.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
