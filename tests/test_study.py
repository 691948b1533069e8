"""The residual study: a miniature ``study compare`` end to end, the death detector, skipping and resuming runs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from inception_resnet.cli import main
from inception_resnet.study import (
    CompareConfig,
    DeathCriteria,
    detect_death,
    detect_run_death,
    load_preset,
    preset_names,
    run_compare,
    with_overrides,
)
from inception_resnet.study.runs import RunSpec, execute, run_all
from inception_resnet.study.scaling import check_width
from inception_resnet.study.stats import derive_levels, first_crossing, spread, time_to_level
from inception_resnet.training import NonFiniteLossError, TrainConfig, TrainSummary

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAIR = ["inception_v3", "inception_resnet_v1"]
MINI_TRAIN = {
    "data": "synthetic:96", "width_multiplier": 0.25, "input_size": 75, "epochs": 1, "batch_size": 32,
    "ema_decay": 0.0, "log_every_steps": 1, "keep_last": 1, "progress": False, "tensorboard": False, "threads": 1,
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
    preset = {"name": "mini", "description": "test", "compare": {"pairs": [PAIR], "seeds": [0, 1],
                                                              "train": MINI_TRAIN}}
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
    assert "seed spread" in report
    assert "- Command: `inception-resnet study compare --preset" in report


def test_mini_study_figure_is_a_drawn_png(mini_study: Path) -> None:
    check_png(mini_study / "curves-inception_v3-vs-inception_resnet_v1.png")


def test_mini_study_tables_have_finite_numbers_for_both_models(mini_study: Path) -> None:
    models = {row["model"]: row for row in read_csv(mini_study / "models.csv")}
    assert set(models) == set(PAIR)
    for row in models.values():
        assert row["seeds"] == "2"
        for key in ("final_top1_mean", "final_top5_mean", "final_loss_mean", "images_per_second_mean", "gmacs"):
            assert math.isfinite(float(row[key])), key
        assert 0.0 <= float(row["final_top1_mean"]) <= 100.0
        assert int(row["parameters"]) > 100_000
    # one epoch may leave a network at chance; then no level is reached by both, and the report says so
    levels = read_csv(mini_study / "levels.csv") if (mini_study / "levels.csv").is_file() else []
    for row in levels:
        assert math.isfinite(float(row["level_top1_error"])) and float(row["speedup_epochs"]) > 0
    report = (mini_study / "report.md").read_text()
    assert ("| top-1 error level % |" in report) == bool(levels)
    assert ("No error level was reached by both." in report) == (not levels)


def test_mini_study_keeps_raw_data_and_configuration(mini_study: Path) -> None:
    rows = read_csv(mini_study / "epochs.csv")
    assert sorted((r["model"], r["seed"]) for r in rows) == sorted((m, s) for m in PAIR for s in ("0", "1"))
    assert all(math.isfinite(float(r["val_top1_error"])) for r in rows)
    assert json.loads((mini_study / "epochs.json").read_text())[0]["model"] in PAIR
    study = json.loads((mini_study / "study.json").read_text())
    assert study["config"]["train"]["width_multiplier"] == 0.25 and study["config"]["seeds"] == [0, 1]
    assert "torch" in study["environment"]
    for model in PAIR:
        run = mini_study / "runs" / f"{model}-seed0"
        assert json.loads((run / "study_run.json").read_text())["status"] == "completed"
        assert (run / "steps.jsonl").is_file()


def test_mini_study_skips_finished_runs_when_started_again(mini_study: Path) -> None:
    def must_not_train(config: TrainConfig) -> TrainSummary:
        raise AssertionError(f"trained {config.run_dir} again")

    config = CompareConfig(pairs=[PAIR], seeds=[0, 1], train=dict(MINI_TRAIN, progress=True))  # progress: neutral
    result = run_compare(config, mini_study, train_fn=must_not_train, log=None)
    assert [r.status for r in result.records] == ["completed"] * 4
    assert not any(r.trained_now for r in result.records)
    assert result.pairs[0].residual.final_top1 is not None


def test_mini_study_refuses_to_mix_configurations(mini_study: Path) -> None:
    config = CompareConfig(pairs=[PAIR], seeds=[0], train=dict(MINI_TRAIN, epochs=2))
    with pytest.raises(ValueError, match="epochs: 1 -> 2"):
        run_compare(config, mini_study, log=None)


def test_study_with_a_baseline_trains_it_alike_and_reports_it(tmp_path: Path) -> None:
    preset = {"name": "mini", "description": "test", "compare": {"pairs": [PAIR], "seeds": [0], "train": MINI_TRAIN}}
    (tmp_path / "mini.json").write_text(json.dumps(preset))
    out = tmp_path / "compare"
    assert main(["study", "compare", "--preset", str(tmp_path / "mini.json"), "--out", str(out),
                 "--models", "googlenet"]) == 0
    run = out / "runs" / "googlenet-seed0"
    assert json.loads((run / "study_run.json").read_text())["status"] == "completed"
    pair_settings = json.loads((out / "runs" / "inception_v3-seed0" / "config.json").read_text())["config"]
    settings = json.loads((run / "config.json").read_text())["config"]
    assert settings["model"] == "googlenet" and settings["input_size"] == 75  # the study's size, not 224
    assert {k: v for k, v in settings.items() if k not in ("model", "run_dir")} == \
        {k: v for k, v in pair_settings.items() if k not in ("model", "run_dir")}
    models = {row["model"]: row for row in read_csv(out / "models.csv")}
    assert set(models) == {*PAIR, "googlenet"} and models["googlenet"]["role"] == "baseline"
    for key in ("final_top1_mean", "final_top5_mean", "final_loss_mean", "images_per_second_mean", "gmacs"):
        assert math.isfinite(float(models["googlenet"][key])), key
    assert models["googlenet"]["input_size"] == "75" and int(models["googlenet"]["parameters"]) > 10_000
    rows = [r for r in read_csv(out / "epochs.csv") if r["model"] == "googlenet"]
    assert [(r["seed"], r["pair"]) for r in rows] == [("0", "baselines")]
    assert math.isfinite(float(rows[0]["val_top1_error"]))
    assert any(r["model"] == "googlenet" for r in json.loads((out / "epochs.json").read_text()))
    check_png(out / "curves-baselines.png")
    report = (out / "report.md").read_text()
    assert "## Baselines" in report and "![baselines](curves-baselines.png)" in report
    assert "| `googlenet` | baseline | 1 |" in report
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
    with pytest.raises(ValueError, match="list of model names"):
        with_overrides(section, ["baselines=googlenet"])
    assert main(["study", "compare", "--preset", "cpu", "--models", "nope", "--print-config"]) == 2
    assert "compare.baselines: unknown model 'nope'; known:" in capsys.readouterr().err
    assert with_overrides(section, ['baselines=["googlenet", "bn_inception"]']).model_names[-2:] == \
        ["googlenet", "bn_inception"]


# -- runs: resuming, diverging, time limit -------------------------------------------------------------------
def fake_train(rows_per_run: int = 2, *, steps: list[dict] | None = None, errors=None):
    """A train() stand-in writing a run directory like the real one; records the configs it was given.

    ``errors(config)`` gives the run's top-1 error per epoch (default: 70, 60, ...).
    """
    calls: list[TrainConfig] = []

    def train_fn(config: TrainConfig) -> TrainSummary:
        calls.append(config)
        run_dir = Path(config.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        top1 = errors(config) if errors else [80.0 - 10 * e for e in range(1, rows_per_run + 1)]
        history = [{"epoch": e, "train_loss": 2.0 - 0.1 * e, "val_top1_error": err, "val_top5_error": err / 2,
                    "epoch_seconds": 3.0, "images_per_second": 10.0} for e, err in enumerate(top1, 1)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
        (run_dir / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps or []))
        derived = {"num_classes": 10, "input_size": config.input_size, "total_steps": len(steps or [])}
        (run_dir / "config.json").write_text(json.dumps({"config": config.to_dict(), "derived": derived}))
        return TrainSummary(str(run_dir), "completed", len(history), 10, history, 1, 60.0, 30.0, 6.0, 10.0,
                            None, None, config.to_dict(), math.log(10))

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
def test_level_table_and_verdict_follow_the_curves(tmp_path: Path, residual_faster: bool) -> None:
    def errors(config: TrainConfig) -> list[float]:
        fast = (config.model == "inception_resnet_v1") == residual_faster
        drop = 20.0 if fast else 10.0
        return [70.0 - drop * e - 0.5 * config.seed for e in range(3)]

    train_fn, calls = fake_train(errors=errors)
    config = CompareConfig(pairs=[PAIR], seeds=[0, 1, 2], train={"input_size": 75})
    result = run_compare(config, tmp_path, train_fn=train_fn, log=None)
    assert len(calls) == 6
    levels = read_csv(tmp_path / "levels.csv")
    assert [float(r["level_top1_error"]) for r in levels] == [60.0, 55.0, 50.0]  # worst run: 50.0
    for row in levels:
        assert (float(row["speedup_epochs"]) > 1.0) == residual_faster
    verdict = result.pairs[0].verdicts["faster_training"]
    assert verdict.startswith("agrees" if residual_faster else "disagrees")
    assert result.pairs[0].verdicts["similar_final_error"].startswith("differs")  # 20 points apart, 1 point spread
    report = (tmp_path / "report.md").read_text()
    assert verdict in report and "beyond the seed spread" in report


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
def test_time_to_level_interpolates_from_chance() -> None:
    assert first_crossing([(0, 90.0), (1, 70.0), (2, 50.0)], 60.0) == pytest.approx(1.5)
    assert first_crossing([(0, 90.0), (1, 70.0)], 60.0) is None
    rows = [{"epoch": 1, "val_top1_error": 50.0, "epoch_seconds": 10.0},
            {"epoch": 2, "val_top1_error": 30.0, "epoch_seconds": 10.0}]
    epochs, seconds = time_to_level(rows, "val_top1_error", 70.0, 90.0)
    assert epochs == pytest.approx(0.5) and seconds == pytest.approx(5.0)


def test_derived_levels_are_reached_by_every_run() -> None:
    runs = [[{"epoch": e, "err": v} for e, v in enumerate(curve, 1)]
            for curve in ([60.0, 41.23, 45.0], [70.0, 52.04], [50.0, 30.0])]
    levels = derive_levels(runs, "err", [0.0, 5.0, 50.0], chance=90.0)
    assert levels == [57.1, 52.1]  # 52.04 rounded up; 102.1 is above chance and dropped
    assert all(min(r["err"] for r in run) <= min(levels) for run in runs)
    a, b = spread([1.0, 2.0, 3.0]), spread([3.5, 4.0])
    assert a.std == pytest.approx(1.0) and not a.overlaps(b) and a.overlaps(spread([2.5]))


# -- presets and the command line ------------------------------------------------------------------------------
def test_presets_are_valid_and_wide_enough() -> None:
    assert {"cpu", "gpu", "imagenet"} <= set(preset_names())
    for name in ("cpu", "gpu", "imagenet"):
        preset = load_preset(name)
        assert len(preset.compare.seeds) >= 2
        for model in preset.compare.model_names:
            TrainConfig.from_dict({**preset.compare.train, "model": model}).resolved()
        assert max(check_width(preset.scaling)) >= 1000
        assert sorted(preset.scaling.scales) == [0.1, 0.2, 0.3, 1.0]


def test_overrides_reach_the_right_section() -> None:
    section = with_overrides(load_preset("cpu").compare, ["epochs=2", "seeds=[4]", "train.lr=0.01"])
    assert section.train["epochs"] == 2 and section.seeds == [4] and section.train["lr"] == 0.01
    scaling = with_overrides(load_preset("cpu").scaling, ["death.min_points=5", "scales=[1.0]"])
    assert scaling.death.min_points == 5 and scaling.scales == [1.0]
    with pytest.raises(ValueError, match="neither a study setting"):
        with_overrides(section, ["no_such_thing=1"])
    with pytest.raises(ValueError, match="unknown model"):
        with_overrides(section, ['pairs=[["inception_v3", "resnet50"]]'])


def test_cli_presets_and_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "presets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("cpu", "gpu", "imagenet"))
    assert main(["study", "presets", "gpu"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "gpu"
    assert main(["study", "scaling", "--preset", "cpu", "--print-config", "--seeds", "3,4", "--set", "lr=1.0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["seeds"] == [3, 4] and printed["train"]["lr"] == 1.0
