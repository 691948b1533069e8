"""The residual study: a miniature ``study compare`` end to end, verdicts with t-intervals and sign-flip tests,
the sweep,
fixed levels, variants without shortcuts, the death detector, skipping and resuming runs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from inception_resnet.cli import main
from inception_resnet.study import (
    CompareConfig,
    DeathCriteria,
    SweepConfig,
    detect_death,
    detect_run_death,
    load_preset,
    plan_compare,
    plan_sweep,
    preset_names,
    run_compare,
    run_sweep,
    with_overrides,
)
from inception_resnet.study.presets import preset_from_dict
from inception_resnet.study.runs import RunSpec, execute, run_all
from inception_resnet.study.scaling import check_width
from inception_resnet.study.significance import difference_interval, ratio_interval
from inception_resnet.study.stats import Curve, crossing_bracket, first_crossing, mean_error, spread, time_to_level
from inception_resnet.study.verdicts import judge_error, judge_time
from inception_resnet.training import NonFiniteLossError, TrainConfig, TrainSummary

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAIR = ["inception_v3", "inception_resnet_v1"]
MINI_TRAIN = {
    "data": "synthetic:96",
    "model_options": {"width_multiplier": 0.25},
    "input_size": 75,
    "epochs": 1,
    "batch_size": 32,
    "ema_decay": 0.0,
    "log_every_steps": 1,
    "keep_last": 1,
    "progress": False,
    "tensorboard": False,
    "threads": 1,
    "validate_every_steps": 1,
    "bn_recompute_images": 32,
}
NO_SHORTCUT = {
    "inception_resnet_v1_no_shortcut": {"model": "inception_resnet_v1", "model_options": {"shortcut": False}}
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.01  # something was drawn, not a blank canvas


# -- the miniature study, end to end through the command line ----------------------------------------------
@pytest.fixture(scope="module")
def mini_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    preset = {
        "name": "mini",
        "description": "test",
        "compare": {
            "pairs": [PAIR],
            "seeds": [0, 1],
            "parallel": 2,
            "levels": [85.0, 60.0],
            "train": MINI_TRAIN,
            "time_steps": 4,
        },
    }
    (root / "mini.json").write_text(json.dumps(preset))
    out = root / "compare"
    assert main(["study", "compare", "--preset", str(root / "mini.json"), "--out", str(out)]) == 0
    return out


def test_mini_study_report_names_both_models_and_the_paper(mini_study: Path) -> None:
    report = (mini_study / "report.md").read_text()
    for model in PAIR:
        assert f"`{model}`" in report
    assert "## inception_v3 vs inception_resnet_v1" in report
    assert "![inception_v3-vs-inception_resnet_v1](curves-inception_v3-vs-inception_resnet_v1.png)" in report
    assert "21.2" in report and "21.3" in report  # the paper's Table 2 top-1 errors beside ours
    assert "t-interval" in report and "sign-flip" in report and "## Verdicts" in report
    assert "## Gradient norms at the start" in report and "multiply-accumulates per image" in report
    assert "- Command: `inception-resnet study compare --preset" in report
    assert "final top-1 error %" in report and "BatchNorm statistics recomputed" in report
    verdicts = (mini_study / "verdicts.txt").read_text()
    assert verdicts.startswith("inception_resnet_v1 vs inception_v3 (2 paired seeds")
    assert "not shown (2 paired seeds: no interval below 3)" in verdicts  # two seeds give no verdict


def test_mini_study_figure_is_a_drawn_png(mini_study: Path) -> None:
    check_png(mini_study / "curves-inception_v3-vs-inception_resnet_v1.png")


def test_mini_study_tables_have_finite_numbers_for_both_models(mini_study: Path) -> None:
    models = {row["model"]: row for row in read_csv(mini_study / "models.csv")}
    assert set(models) == set(PAIR)
    for row in models.values():
        assert row["seeds"] == "2"
        for key in ("final_top1_mean", "final_top5_mean", "final_loss_mean", "step_seconds_alone"):
            assert math.isfinite(float(row[key])), key
        assert 0.0 <= float(row["final_top1_mean"]) <= 100.0 and int(row["macs"]) > 1_000_000
        assert int(row["parameters"]) > 100_000
    levels = read_csv(mini_study / "levels.csv")
    assert [float(row["level_top1_error"]) for row in levels] == [85.0, 60.0]  # the preset's, whatever the runs did
    validations = read_csv(mini_study / "validation.csv")
    for model in PAIR:
        steps = [int(r["step"]) for r in validations if r["model"] == model and r["seed"] == "0"]
        assert steps == [0, 1, 2, 3]  # the step-0 point, then every step


def test_mini_study_keeps_raw_data_and_configuration(mini_study: Path) -> None:
    rows = read_csv(mini_study / "epochs.csv")
    assert sorted((r["model"], r["seed"]) for r in rows) == sorted((m, s) for m in PAIR for s in ("0", "1"))
    assert all(math.isfinite(float(r["val_top1_error"])) for r in rows)
    assert json.loads((mini_study / "epochs.json").read_text())[0]["model"] in PAIR
    study = json.loads((mini_study / "study.json").read_text())
    assert study["config"]["train"]["model_options"] == {"width_multiplier": 0.25}
    assert study["config"]["seeds"] == [0, 1]
    assert "torch" in study["environment"]
    for model in PAIR:
        run = mini_study / "runs" / f"{model}-seed0"
        assert json.loads((run / "study_run.json").read_text())["status"] == "completed"
        assert (run / "steps.jsonl").is_file()


def test_mini_study_skips_finished_runs_when_started_again(mini_study: Path) -> None:
    def must_not_train(config: TrainConfig) -> TrainSummary:
        raise AssertionError(f"trained {config.run_dir} again")

    config = CompareConfig(
        pairs=[PAIR],
        seeds=[0, 1],
        train=dict(MINI_TRAIN, progress=True),  # progress: neutral
        time_steps=4,
    )
    result = run_compare(config, mini_study, train_fn=must_not_train, log=None)
    assert [r.status for r in result.records] == ["completed"] * 4
    assert not any(r.trained_now for r in result.records)
    assert result.pairs[0].residual.final_top1 is not None


def test_mini_study_refuses_to_mix_configurations(mini_study: Path) -> None:
    config = CompareConfig(pairs=[PAIR], seeds=[0], train=dict(MINI_TRAIN, epochs=2))
    with pytest.raises(ValueError, match="epochs: 1 -> 2"):
        run_compare(config, mini_study, log=None)


def test_study_with_a_baseline_trains_it_alike_and_reports_it(tmp_path: Path) -> None:
    preset = {
        "name": "mini",
        "description": "test",
        "compare": {"pairs": [PAIR], "seeds": [0], "train": MINI_TRAIN, "time_steps": 0},
    }
    (tmp_path / "mini.json").write_text(json.dumps(preset))
    out = tmp_path / "compare"
    assert (
        main(["study", "compare", "--preset", str(tmp_path / "mini.json"), "--out", str(out), "--models", "googlenet"])
        == 0
    )
    run = out / "runs" / "googlenet-seed0"
    assert json.loads((run / "study_run.json").read_text())["status"] == "completed"
    pair_settings = json.loads((out / "runs" / "inception_v3-seed0" / "config.json").read_text())["config"]
    settings = json.loads((run / "config.json").read_text())["config"]
    assert settings["model"] == "googlenet" and settings["input_size"] == 75  # the study's size, not 224
    assert {k: v for k, v in settings.items() if k not in ("model", "run_dir")} == {
        k: v for k, v in pair_settings.items() if k not in ("model", "run_dir")
    }
    models = {row["model"]: row for row in read_csv(out / "models.csv")}
    assert set(models) == {*PAIR, "googlenet"} and models["googlenet"]["role"] == "baseline"
    for key in ("final_top1_mean", "final_top5_mean", "final_loss_mean", "macs"):
        assert math.isfinite(float(models["googlenet"][key])), key
    assert models["googlenet"]["input_size"] == "75" and int(models["googlenet"]["parameters"]) > 10_000
    rows = [r for r in read_csv(out / "epochs.csv") if r["model"] == "googlenet"]
    assert [(r["seed"], r["pair"]) for r in rows] == [("0", "baselines")]
    assert math.isfinite(float(rows[0]["val_top1_error"]))
    assert any(r["model"] == "googlenet" for r in json.loads((out / "epochs.json").read_text()))
    check_png(out / "curves-baselines.png")
    report = (out / "report.md").read_text()
    assert "## Baselines" in report and "![baselines](curves-baselines.png)" in report
    assert "| `googlenet` | baseline | `googlenet` | 1 |" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baselines"][0]["name"] == "googlenet" and summary["baselines_figure"] == "curves-baselines.png"
    assert json.loads((out / "study.json").read_text())["config"]["baselines"] == ["googlenet"]


def test_unknown_or_paired_baselines_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    section = load_preset("cpu").compare
    assert section.baselines == []
    with pytest.raises(ValueError, match=r"unknown model 'resnet50'; known: .*googlenet"):
        with_overrides(section, ['baselines=["resnet50"]'])
    with pytest.raises(ValueError, match="already in a pair"):
        CompareConfig(pairs=[PAIR], baselines=["inception_v3"]).validate()
    with pytest.raises(ValueError, match="compare.baselines must be a list"):
        with_overrides(section, ["baselines=googlenet"])
    assert main(["study", "compare", "--preset", "cpu", "--models", "nope", "--print-config"]) == 2
    assert "compare.baselines: unknown model 'nope'; known:" in capsys.readouterr().err
    assert with_overrides(section, ['baselines=["googlenet", "bn_inception"]']).model_names[-2:] == [
        "googlenet",
        "bn_inception",
    ]


# -- runs: resuming, diverging, time limit -------------------------------------------------------------------
def fake_train(rows_per_run: int = 2, *, steps: list[dict] | None = None, errors=None):
    """A train() stand-in writing a run directory like the real one; records the configs it was given.

    ``errors(config)`` gives the run's top-1 error at steps 0, 10, 20, ... (validation.jsonl, one second of
    training per 10 steps); by default the per-epoch rows alone (70, 60, ...), as runs without step validation.
    """
    calls: list[TrainConfig] = []

    def train_fn(config: TrainConfig) -> TrainSummary:
        calls.append(config)
        run_dir = Path(config.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        evaluations = []
        if errors:
            evaluations = [
                {"step": 10 * i, "train_seconds": float(i), "val_top1_error": err, "val_top5_error": err / 2}
                for i, err in enumerate(errors(config))
            ]
            (run_dir / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evaluations))
            top1 = [evaluations[-1]["val_top1_error"]]
        else:
            top1 = [80.0 - 10 * e for e in range(1, rows_per_run + 1)]
        history = [
            {
                "epoch": e,
                "step": 10 * e,
                "train_loss": 2.0 - 0.1 * e,
                "val_top1_error": err,
                "val_top5_error": err / 2,
                "epoch_seconds": 3.0,
                "images_per_second": 10.0,
                "clipped_steps": 5,
            }
            for e, err in enumerate(top1, 1)
        ]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
        (run_dir / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps or []))
        derived = {"num_classes": 10, "input_size": config.input_size, "total_steps": 10 * (len(evaluations) - 1)}
        (run_dir / "config.json").write_text(json.dumps({"config": config.to_dict(), "derived": derived}))
        return TrainSummary(
            str(run_dir),
            "completed",
            len(history),
            10,
            history,
            1,
            60.0,
            30.0,
            6.0,
            10.0,
            None,
            None,
            config.to_dict(),
            math.log(10),
            evaluations=evaluations,
        )

    return train_fn, calls


def spec_in(tmp_path: Path, **settings) -> RunSpec:
    values = {"model": "inception_v3", "seed": 0, "data": "synthetic:8", "input_size": 75, **settings}
    return RunSpec("inception_v3-seed0", "inception_v3", 0, "pair", values, tmp_path / "run")


def test_interrupted_run_is_resumed_and_a_finished_one_is_not_retrained(tmp_path: Path) -> None:
    spec = spec_in(tmp_path)
    spec.run_dir.mkdir()
    (spec.run_dir / "config.json").write_text(json.dumps({"config": dict(spec.settings, epochs=10)}))
    train_fn, calls = fake_train()
    record = execute(spec, train_fn)
    assert record.status == "completed" and record.trained_now
    assert calls[0].resume == "auto" and calls[0].run_dir == str(spec.run_dir)
    again = execute(spec, train_fn)
    assert len(calls) == 1 and not again.trained_now and len(again.rows) == 2


def test_diverged_run_is_recorded_and_not_retried(tmp_path: Path) -> None:
    calls = []

    def diverging(config: TrainConfig) -> TrainSummary:
        calls.append(config)
        raise NonFiniteLossError("the loss became nan at epoch 1, step 3")

    spec = spec_in(tmp_path)
    assert execute(spec, diverging).status == "diverged"
    record = execute(spec, diverging)
    assert record.status == "diverged" and "nan" in record.message and len(calls) == 1


def test_stopped_run_stops_the_study(tmp_path: Path) -> None:
    train_fn, _ = fake_train()

    def stopped(config: TrainConfig) -> TrainSummary:
        summary = train_fn(config)
        summary.status = "stopped by SIGTERM"
        return summary

    with pytest.raises(KeyboardInterrupt):
        execute(spec_in(tmp_path), stopped)
    assert not (tmp_path / "run" / "study_run.json").exists()


def test_runs_after_the_time_limit_are_not_started(tmp_path: Path) -> None:
    ticks = iter(range(100))
    specs = [spec_in(tmp_path / str(i), seed=i) for i in range(3)]
    train_fn, calls = fake_train()
    # the clock advances one second per reading: the first run starts, later ones are past the limit
    records = run_all(specs, train_fn=train_fn, time_limit_s=1.5, clock=lambda: float(next(ticks)))
    assert [r.status for r in records] == ["completed", "not run", "not run"]
    assert len(calls) == 1


@pytest.mark.parametrize("residual_faster", [True, False])
def test_level_table_and_verdicts_follow_the_curves(tmp_path: Path, residual_faster: bool) -> None:
    def errors(config: TrainConfig) -> list[float]:
        fast = (config.model == "inception_resnet_v1") == residual_faster
        drop = 20.0 if fast else 10.0
        return [90.0] + [max(10.0, 80.0 - drop * i - 0.7 * config.seed) for i in range(5)]

    steps = [{"step": s, "grad_norm": 10.0 / s, "clipped": s <= 5, "elapsed": 0.1 * s} for s in range(1, 41)]
    train_fn, calls = fake_train(errors=errors, steps=steps)
    config = CompareConfig(
        pairs=[PAIR], seeds=list(range(6)), levels=[60.0, 45.0], train={"input_size": 75}, time_steps=8
    )
    result = run_compare(config, tmp_path, train_fn=train_fn, log=None)
    assert len(calls) == 12 + 2 * 3  # 6 seeds x 2 entries, then each network timed alone in 3 rounds
    timing_calls = calls[12:]
    assert all(c.validate_every_steps == 0 and c.seed == 0 for c in timing_calls)
    levels = read_csv(tmp_path / "levels.csv")
    assert [float(r["level_top1_error"]) for r in levels] == [60.0, 45.0]
    pair = result.pairs[0]
    for level in pair.levels:
        assert level.steps.verdict == ("faster" if residual_faster else "slower")
        assert (level.steps.interval.estimate > 1.0) == residual_faster
        assert level.steps.interval.p_value == pytest.approx(2 / 2**6)  # every seed the same way: the least p
        assert all(v is not None for v in level.steps.partner + level.steps.residual)
        # the crossings are bracketed by the validations around them (every 10 steps here)
        assert all(c is not None and c.after - c.before == 10 for c in level.partner_crossings)
        # without interpolation (partner's bracket start, residual's bracket end) the speed-up can only shrink
        assert level.conservative.interval.estimate <= level.steps.interval.estimate + 1e-9
        # seconds from the isolated step time (0.1 s per step in the timing runs' steps.jsonl)
        assert level.seconds.partner == pytest.approx([s * 0.1 for s in level.steps.partner])
    assert pair.partner.step_seconds == pytest.approx(0.1) and pair.residual.step_seconds == pytest.approx(0.1)
    assert pair.partner.grad_norm_at(1).mean == pytest.approx(10.0)
    assert pair.mean_error.verdict == ("lower" if residual_faster else "higher")
    lines = result.verdict_lines()
    assert lines[0] == (
        "inception_resnet_v1 vs inception_v3 (6 paired seeds; 95 % t-intervals, exact sign-flip p-values):"
    )
    assert ("-> faster" in lines[1]) == residual_faster
    report = (tmp_path / "report.md").read_text()
    assert "\n".join(lines) in report and (tmp_path / "verdicts.txt").read_text() == "\n".join(lines) + "\n"
    assert "## Gradient norms at the start" in report
    models = {row["model"]: row for row in read_csv(tmp_path / "models.csv")}
    assert float(models["inception_v3"]["clipped_percent_mean"]) == pytest.approx(50.0)  # 5 of 10 steps
    assert float(models["inception_v3"]["step_seconds_alone"]) == pytest.approx(0.1)
    assert {row["entry"] for row in read_csv(tmp_path / "timing.csv")} == set(PAIR)
    check_png(tmp_path / "curves-inception_v3-vs-inception_resnet_v1.png")


def test_sensitivity_variants_are_trained_for_their_seeds_and_reported(tmp_path: Path) -> None:
    train_fn, calls = fake_train(errors=lambda config: [90.0, 70.0 - (config.lr or 0.0), 50.0, 40.0])
    variant = {
        "label": "both at 0.09",
        "question": "Does the rate decide it?",
        "pair": ["inception_v3_fast", "inception_resnet_v1"],
        "seeds": [0, 1, 2],
    }
    config = CompareConfig(
        pairs=[PAIR],
        seeds=[0, 1, 2, 3],
        levels=[60.0],
        train={"input_size": 75},
        models={"inception_v3_fast": {"model": "inception_v3", "lr": 0.09}},
        sensitivity=[variant],
        time_steps=0,
    )
    keys = [s.key for s in plan_compare(config, tmp_path)]
    assert keys[-3:] == [f"inception_v3_fast-seed{k}" for k in range(3)] and len(keys) == 11
    result = run_compare(config, tmp_path, train_fn=train_fn, log=None)
    assert len(calls) == 11 and result.variants[0].pair.seeds == [0, 1, 2]
    report = (tmp_path / "report.md").read_text()
    assert "## Sensitivity" in report and "### both at 0.09" in report and "Does the rate decide it?" in report
    assert any(r["group"] == "sensitivity: both at 0.09" for r in read_csv(tmp_path / "levels.csv"))
    with pytest.raises(ValueError, match="pair must be two known entries"):
        CompareConfig(pairs=[PAIR], sensitivity=[{"label": "x", "pair": ["inception_v3", "nope"]}]).validate()


def test_verdicts_need_the_interval_and_the_sign_flip_test() -> None:
    budget = {"budget_partner": 500.0, "budget_residual": 500.0}
    mixed = judge_time([100.0, 80.0, 120.0, 90.0, 110.0, 95.0], [90.0, 100.0, 100.0, 95.0, 100.0, 96.0], **budget)
    assert mixed.verdict == "not shown" and mixed.interval.low < 1.0 < mixed.interval.high
    six = judge_time([200.0, 210.0, 190.0, 205.0, 198.0, 220.0], [100.0, 100.0, 95.0, 102.0, 99.0, 104.0], **budget)
    assert six.verdict == "faster" and six.interval.p_value == pytest.approx(2 / 64)
    # four seeds, all the same way: the t-interval excludes 1 but no sign-flip test can reach p < 0.05
    four = judge_time([200.0, 210.0, 190.0, 205.0], [100.0, 100.0, 95.0, 102.0], **budget)
    assert four.interval.low > 1.0 and four.interval.p_value == pytest.approx(0.125) and four.verdict == "not shown"
    assert judge_time([100.0, 90.0], [50.0, 45.0], **budget).verdict.startswith("not shown (2 paired seeds")
    # partner runs that never got there count as their whole budget: a one-sided lower bound, no upper end
    partner = [None, 300.0, None, None, None, None]
    bound = judge_time(partner, [100.0, 100.0, 95.0, 102.0, 98.0, 101.0], **budget)
    assert bound.verdict.startswith("faster (at least") and "5 of 6 partner runs never reached it" in bound.verdict
    assert bound.interval.high is None and bound.interval.low > 1.0 and ">=" in bound.interval.text()
    assert judge_time(
        [None, 90.0, None, None, None, None], [400.0, 450.0, 480.0, 470.0, 490.0, 495.0], **budget
    ).verdict.startswith("not shown")
    slower = judge_time([100.0, 120.0, 90.0, 95.0, 100.0, 110.0], [None, 400.0, None, 450.0, None, None], **budget)
    assert slower.verdict.startswith("slower (at most") and slower.interval.low is None
    assert judge_time([None, 100.0, 90.0], [90.0, None, 80.0], **budget).verdict.startswith(
        "not shown (reached in 2/3 partner and 2/3 residual runs: censored on both sides)"
    )
    first = [20.0, 21.0, 19.5, 20.5, 20.2, 19.8]
    assert judge_error(first, [18.0, 18.5, 17.9, 18.2, 18.1, 18.4], ratio=False).verdict == "lower"
    assert judge_error(first, [21.0, 20.0, 20.5, 19.5, 20.1, 20.3], ratio=False).verdict == "not shown"
    assert judge_error(first, [22.0, 23.0, 21.0, 22.5, 22.1, 21.7], ratio=False).verdict == "higher"
    assert judge_error([20.0, 21.0], [18.0, 19.0], ratio=False).verdict.startswith("not shown (2 paired seeds")


# -- the death detector --------------------------------------------------------------------------------------
STEPS = list(range(10, 110, 10))


def test_detector_finds_the_step_a_network_died() -> None:
    zeros = [0.2, 0.4, 0.8, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    losses = [2.6, 2.5, 2.4, 2.35, 2.31, 2.30, 2.31, 2.30, 2.30, 2.30]
    report = detect_death(STEPS, zeros, losses)
    assert report.dead and report.step == 50 and report.all_zero_points == 6


def test_detector_ignores_a_network_that_recovered() -> None:
    zeros = [0.3, 1.0, 1.0, 1.0, 1.0, 0.9, 0.6, 0.5, 0.5, 0.4]
    report = detect_death(STEPS, zeros, [2.3] * 10)
    assert not report.dead and report.step is None and "recovered" in report.reason


def test_detector_needs_the_loss_to_stop_falling() -> None:
    zeros = [0.5] * 5 + [1.0] * 5
    falling = [2.3, 2.2, 2.1, 2.0, 1.9, 1.8, 1.6, 1.4, 1.2, 1.0]
    assert not detect_death(STEPS, zeros, falling).dead
    assert detect_death(STEPS, zeros, [2.3] * 5 + [2.0] * 5).dead


def test_detector_needs_enough_all_zero_points_and_exact_zeros() -> None:
    assert not detect_death(STEPS, [0.5] * 8 + [1.0] * 2, [2.3] * 10).dead  # 2 < min_points=3
    assert detect_death(STEPS, [0.5] * 8 + [1.0] * 2, [2.3] * 10, DeathCriteria(min_points=2)).dead
    almost = [0.5] * 5 + [0.999] * 5
    assert not detect_death(STEPS, almost, [2.3] * 10).dead
    assert detect_death(STEPS, almost, [2.3] * 10, DeathCriteria(dead_channels=0.99)).step == 60
    # the threshold is the chosen measure's: a zero-fraction threshold does not move a dead-channel verdict
    assert not detect_death(STEPS, almost, [2.3] * 10, DeathCriteria(zero_fraction=0.99)).dead
    assert detect_death(STEPS, almost, [2.3] * 10, DeathCriteria(measure="zero_fraction", zero_fraction=0.99)).dead


def test_detector_edge_cases(tmp_path: Path) -> None:
    assert not detect_death([], [], []).dead
    with pytest.raises(ValueError, match="differ in length"):
        detect_death([1, 2], [1.0], [2.3, 2.3])
    rows = [{"step": s, "loss": 2.3, "dead_channels": 1.0 if s >= 70 else 0.1, "zero_fraction": 0.5} for s in STEPS]
    (tmp_path / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)) + '{"step": 1')
    report = detect_run_death(tmp_path)
    assert report.dead and report.step == 70
    assert not detect_run_death(tmp_path, DeathCriteria(measure="zero_fraction")).dead  # zero fraction 0.5
    (tmp_path / "steps.jsonl").write_text("".join(json.dumps({"step": s, "loss": 2.3}) + "\n" for s in STEPS))
    assert "no dead_channels was logged" in detect_run_death(tmp_path).reason


# -- statistics ------------------------------------------------------------------------------------------------
def test_time_to_level_interpolates_between_measured_points_from_step_zero() -> None:
    assert first_crossing([(0, 90.0), (1, 70.0), (2, 50.0)], 60.0) == pytest.approx(1.5)
    assert first_crossing([(0, 90.0), (1, 70.0)], 60.0) is None
    curve = Curve(steps=[0, 100, 200], seconds=[0.0, 10.0, 30.0], top1=[88.0, 50.0, 30.0], top5=[50.0, 10.0, 5.0])
    assert curve.measured_start
    steps, seconds = time_to_level(curve, 40.0)
    assert steps == pytest.approx(150.0) and seconds == pytest.approx(20.0)
    assert time_to_level(curve, 20.0) == (None, None)
    assert mean_error(curve) == pytest.approx(((88 + 50) / 2 + (50 + 30) / 2) / 2)


def test_crossing_brackets_are_the_validations_around_the_first_crossing() -> None:
    curve = Curve(steps=[0, 10, 20, 22, 24], seconds=[0.0] * 5, top1=[90.0, 70.0, 52.0, 49.0, 30.0], top5=[0.0] * 5)
    assert crossing_bracket(curve, 50.0) == (20, 22) and crossing_bracket(curve, 80.0) == (0, 10)
    assert crossing_bracket(curve, 95.0) == (0, 0) and crossing_bracket(curve, 10.0) is None


def test_paired_intervals_on_cases_with_a_known_answer() -> None:
    constant = ratio_interval([2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0])
    assert constant.estimate == pytest.approx(2.0) and constant.low == pytest.approx(2.0)
    assert constant.high == pytest.approx(2.0) and constant.n == 4 and constant.excludes(1.0)
    # pairing: a shift shared by both networks cancels; differences 1, 1, 1, 1 whatever each seed's level
    paired = difference_interval([10.0, 50.0, 30.0, 70.0], [11.0, 51.0, 31.0, 71.0])
    assert (paired.estimate, paired.low, paired.high) == pytest.approx((1.0, 1.0, 1.0))
    assert ratio_interval([None, 1.0], [1.0, None]) is None
    a, b = spread([1.0, 2.0, 3.0]), spread([3.5, 4.0])
    assert a.std == pytest.approx(1.0) and not a.overlaps(b) and a.overlaps(spread([2.5]))
    assert np.isfinite(paired.detectable)


def test_levels_are_fixed_in_advance() -> None:
    assert CompareConfig().levels == [50.0, 30.0, 20.0]
    base = {"pairs": [PAIR], "train": {"input_size": 75}}
    with pytest.raises(ValueError, match="unknown key.*'level_margins'"):
        preset_from_dict({"compare": {**base, "level_margins": [0, 5]}})
    with pytest.raises(ValueError, match="--set level_margins: neither a study setting"):
        with_overrides(CompareConfig(pairs=[PAIR]), ["level_margins=[0]"])
    for bad in ([], [120.0], "50"):
        with pytest.raises(ValueError, match="compare.levels"):
            CompareConfig(pairs=[PAIR], levels=bad).validate()


def test_a_variant_without_shortcuts_is_the_same_network_with_one_option(tmp_path: Path) -> None:
    config = CompareConfig(
        pairs=[PAIR, ["inception_resnet_v1_no_shortcut", "inception_resnet_v1"]],
        seeds=[0, 1],
        models={**NO_SHORTCUT, "inception_v3": {"lr": 0.02}},
        train={"input_size": 75, "model_options": {"width_multiplier": 0.25}},
    )
    config.validate()
    specs = {s.key: s for s in plan_compare(config, tmp_path)}
    assert sorted(specs) == sorted(f"{m}-seed{k}" for m in (*PAIR, "inception_resnet_v1_no_shortcut") for k in (0, 1))
    variant = specs["inception_resnet_v1_no_shortcut-seed0"].settings
    assert variant["model"] == "inception_resnet_v1"
    assert variant["model_options"] == {"width_multiplier": 0.25, "shortcut": False}  # merged with the study's
    assert specs["inception_resnet_v1-seed0"].settings["model_options"] == {"width_multiplier": 0.25}
    assert specs["inception_v3-seed1"].settings["lr"] == 0.02
    assert "lr" not in specs["inception_resnet_v1-seed0"].settings
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        CompareConfig(pairs=[PAIR], models={"v": {"model": "nope"}}).validate()
    with pytest.raises(ValueError, match="compare.train: inception_v3 has no option 'blocks'"):  # every entry builds
        CompareConfig(pairs=[PAIR], train={"model_options": {"blocks": [1, 2, 1]}}).validate()
    with pytest.raises(ValueError, match="unknown model 'inception_resnet_v1_no_shortcut'"):
        CompareConfig(pairs=[["inception_resnet_v1_no_shortcut", "inception_resnet_v1"]]).validate()


# -- the learning-rate sweep -----------------------------------------------------------------------------------
def test_sweep_chooses_each_entry_rate_on_held_out_training_images(tmp_path: Path) -> None:
    best = {"inception_v3": 0.01, "inception_resnet_v1": 0.1}

    def errors(config: TrainConfig) -> list[float]:
        if config.model_options.get("shortcut") is False:
            return [90.0, 90.5, 89.0 + config.lr]  # does not learn at any rate
        name = "inception_v3" if config.model == "inception_v3" else "inception_resnet_v1"
        return [90.0, 60.0, 20.0 + 10 * abs(math.log10(config.lr / best[name]))]

    compare = CompareConfig(
        pairs=[PAIR, ["inception_resnet_v1_no_shortcut", "inception_resnet_v1"]],
        train={"input_size": 75, "max_val_images": 100},
        models={"inception_v3": {"lr": 0.5}, **NO_SHORTCUT},
    )
    sweep = SweepConfig(
        models=[*PAIR, "inception_resnet_v1_no_shortcut"],
        lrs=[0.01, 0.03, 0.1],
        seeds=[0],
        train={"holdout_fraction": 0.1},
    )
    specs = plan_sweep(sweep, compare, tmp_path)
    assert len(specs) == 9 and all(s.settings["holdout_fraction"] == 0.1 for s in specs)
    assert sorted({s.settings["lr"] for s in specs}) == [0.01, 0.03, 0.1]  # the sweep's rates replace the entry's
    train_fn, calls = fake_train(errors=errors)
    result = run_sweep(sweep, compare, tmp_path, preset="mini", train_fn=train_fn, log=None)
    assert len(calls) == 9 and all(c.holdout_fraction == 0.1 for c in calls)
    assert {k: v for k, v in result.chosen.items() if k in PAIR} == best
    chosen = json.loads((tmp_path / "chosen.json").read_text())["models"]
    assert chosen["inception_v3"] == {"lr": 0.01} and chosen["inception_resnet_v1"] == {"lr": 0.1}
    report = (tmp_path / "report.md").read_text()
    assert "held-out" in report and "0.01 (chosen)" in report and "at the edge of the grid" in report
    assert "`inception_resnet_v1_no_shortcut`: no rate tried took the held-out error clearly below" in report
    check_png(tmp_path / "sweep.png")
    with pytest.raises(ValueError, match="holdout_fraction must lie in"):
        SweepConfig(models=PAIR, lrs=[0.01, 0.03, 0.1], train={}).validate()
    with pytest.raises(ValueError, match="at least 3"):
        SweepConfig(models=PAIR, lrs=[0.01, 0.03]).validate()


# -- presets and the command line ------------------------------------------------------------------------------
def test_presets_are_valid_and_wide_enough() -> None:
    assert {"cpu", "cpu-evidence", "gpu", "imagenet"} <= set(preset_names())
    for name in ("cpu", "cpu-evidence", "gpu", "imagenet"):
        preset = load_preset(name)
        compare = preset.compare
        assert len(compare.seeds) >= 3 and compare.levels
        for model in compare.model_names:
            TrainConfig.from_dict({**compare.settings(model), "seed": 0}).resolved()
        residuals = {pair[1] for pair in compare.pairs}
        for residual in residuals:  # the paper's partner, and (but in the demo) the network's no-shortcut self
            partners = [pair[0] for pair in compare.pairs if pair[1] == residual]
            assert name == "cpu" or any(
                compare.settings(p)["model"] == residual
                and compare.settings(p).get("model_options", {}).get("shortcut") is False
                for p in partners
            )
            assert any(p.startswith("inception_v") for p in partners)
        if "scaling" in preset.sections:
            assert max(check_width(preset.scaling)) >= 1000
            assert sorted(preset.scaling.scales) == [0.1, 0.2, 0.3, 1.0]
        if "sweep" in preset.sections and preset.sweep.models:  # every paired entry swept (variants reuse rates)
            assert set(preset.sweep.models) == {entry for pair in compare.pairs for entry in pair}
        if compare.lr_source:  # rates chosen by a sweep: every entry carries its own
            assert all("lr" in compare.models.get(m, {}) for m in compare.model_names)


def test_demo_preset_is_the_evidence_design_with_fewer_seeds() -> None:
    demo, evidence = load_preset("cpu").compare, load_preset("cpu-evidence").compare
    assert len(demo.seeds) >= 6 and len(evidence.seeds) >= 12 and demo.parallel == 2
    assert demo.train == evidence.train and demo.levels == evidence.levels  # the same runs, fewer of them
    assert all(demo.settings(m) == evidence.settings(m) for m in demo.model_names)
    assert demo.pairs[0] == ["inception_v3", "inception_resnet_v1"]
    assert "scaling" not in load_preset("cpu").sections  # the old scaling regime is gone from the demo


def test_evidence_preset_holds_both_pairs_the_fair_control_and_dense_validation() -> None:
    preset = load_preset("cpu-evidence")
    compare, sweep = preset.compare, preset.sweep
    assert ["inception_v3", "inception_resnet_v1"] in compare.pairs
    assert ["inception_v4", "inception_resnet_v2_paper"] in compare.pairs
    fair = [p for p, r in compare.pairs if compare.settings(p).get("model_options", {}).get("residual_scale") == 1.0]
    assert {compare.settings(p)["model"] for p in fair} == {"inception_resnet_v1", "inception_resnet_v2_paper"}
    assert all(compare.settings(p)["model_options"]["shortcut"] is False for p in fair)
    train = compare.train
    assert train["validate_every_steps"] <= 10 and train["validate_spacing"] <= 0.1 and train["log_every_steps"] == 1
    assert compare.time_steps > 0 and train["threads"] == 1
    assert len(sweep.seeds) >= 2 and sweep.choose_by == "mean_error" and sweep.widen >= 1
    assert set(sweep.models) == {name for pair in compare.pairs for name in pair}


def test_overrides_reach_the_right_section() -> None:
    section = with_overrides(load_preset("cpu").compare, ["epochs=2", "seeds=[4]", "train.lr=0.01"])
    assert section.train["epochs"] == 2 and section.seeds == [4] and section.train["lr"] == 0.01
    scaling = with_overrides(load_preset("scaling-cpu").scaling, ["death.min_points=5", "scales=[1.0]"])
    assert scaling.death.min_points == 5 and scaling.scales == [1.0]
    with pytest.raises(ValueError, match="neither a study setting"):
        with_overrides(section, ["no_such_thing=1"])
    with pytest.raises(ValueError, match="unknown model"):
        with_overrides(section, ['pairs=[["inception_v3", "resnet50"]]'])


def test_a_model_option_is_set_among_the_study_s_model_options() -> None:
    scaling = load_preset("scaling-cpu").scaling
    section = with_overrides(scaling, ["model_options.width_multiplier=0.5", "train.model_options.blocks=[1, 1, 1]"])
    assert section.train["model_options"] == {"width_multiplier": 0.5, "blocks": [1, 1, 1]}
    assert scaling.train["model_options"] == {"width_multiplier": 1.0}  # the preset's own is untouched
    compare = load_preset("cpu").compare
    with pytest.raises(ValueError, match=r"an option of the model.*--set model_options.width_multiplier=0.25"):
        with_overrides(compare, ["width_multiplier=0.25"])
    with pytest.raises(ValueError, match=r"'aux_logits' \(an option of the model: put it in model_options\)"):
        CompareConfig(pairs=[PAIR], train={"aux_logits": True}).validate()


def test_cli_presets_and_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "presets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("cpu", "gpu", "imagenet"))
    assert main(["study", "presets", "gpu"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "gpu"
    assert (
        main(["study", "scaling", "--preset", "scaling-cpu", "--print-config", "--seeds", "3,4", "--set", "lrs=[1.0]"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["seeds"] == [3, 4] and printed["lrs"] == [1.0]
    assert main(["study", "scaling", "--preset", "cpu", "--print-config"]) == 2  # the demo preset has no scaling
