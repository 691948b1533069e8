"""Bad input, second round (issue 26): configuration paths typed and bounded, refused runs that write nothing,
image corner cases; then a seeded random round over every ``--set`` key and every ``TrainConfig`` field.

The outcome classes are those of ``tests/test_bad_input.py``: ``error`` (exit 2, a one-line message naming
the key, the file and the accepted range, no traceback) or ``handled`` (the right result). The files of the
cases are made once per module in a temporary folder; models are tiny (``width_multiplier=0.125``).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inception_resnet as ir
from inception_resnet.cli import main
from inception_resnet.data.decoding import CorruptImageError, decode_file
from inception_resnet.data.transforms import EvalTransform
from inception_resnet.study import load_preset, with_overrides
from inception_resnet.study.config import SECTIONS
from inception_resnet.study.presets import preset_names
from inception_resnet.study.runs import write_marker
from inception_resnet.training import TrainConfig
from inception_resnet.weights.loading import save_weights

TINY = ["--model-option", "width_multiplier=0.125", "--input-size", "75"]
TRAIN = [
    "train",
    "--model",
    "inception_v3",
    *TINY,
    "--data",
    "synthetic:8:2",
    "--batch-size",
    "4",
    "--epochs",
    "1",
    "--threads",
    "1",
    "--workers",
    "0",
    "--no-progress",
    "--no-tensorboard",
    "--run-dir",
    "{root}/never",
]
PRINT = ["--print-config"]


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_error(capsys, argv: list[str], pattern: str) -> str:
    """Exit 2, one line matching ``pattern`` on stderr, no traceback."""
    code, _out, err = run_cli(capsys, argv)
    assert code == 2, f"exit {code} for {argv}; stderr: {err[-2000:]}"
    assert re.search(pattern, err), f"{pattern!r} not in stderr of {argv}: {err[-2000:]}"
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if "error:" in line]
    assert len(message) == 1, err
    return err


class Evil:
    """A pickle that would run a command when loaded unsafely (it writes a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("config-world")
    paths = {"root": root}
    for name, text in {
        "list": "[]",
        "five": "5",
        "compare5": '{"compare": 5}',
        "train5": '{"compare": {"train": 5}}',
        "c_list": "[1, 2]",
        "c_text": '{"config": "abc"}',
        "c_lr": '{"lr": "x"}',
    }.items():
        (root / f"{name}.json").write_text(text)
        paths[name] = root / f"{name}.json"
    (root / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    paths["latin1"] = root / "latin1.json"
    os.mkfifo(root / "pipe.json")
    paths["pipe"] = root / "pipe.json"
    for name, document in {"empty_run": "{}", "broken_run": '{"config": {"lr": 0.1'}.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text(document)
        paths[name] = root / name
    for name, line in {"list_metrics": "[1, 2, 3]", "cut_metrics": '{"epoch": 1, "top1_err'}.items():
        (root / name).mkdir()
        (root / name / "metrics.jsonl").write_text('{"epoch": 0, "top1_error": 50.0}\n' + line + "\n")
        paths[name] = root / name
    data = root / "data" / "val"
    for k, name in enumerate("ab"):
        (data / name).mkdir(parents=True)
        pixels = (np.random.default_rng(k).random((40, 40, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(data / name / "0.png")
    paths["data"] = root / "data"
    (root / "map.txt").write_text("a 0\nb 99999999999\n")
    paths["map"] = root / "map.txt"
    torch.manual_seed(0)
    paths["w"] = save_weights(ir.create_model("inception_v4", width_multiplier=0.125), root / "w.safetensors")
    paths["marker"] = root / "pwned"
    torch.save({"state": Evil(paths["marker"])}, root / "evil.pth")
    paths["evil"] = root / "evil.pth"
    return paths


def fill(argv: list[str], paths: dict[str, Path]) -> list[str]:
    """``{name}`` in the arguments replaced by the world's path of that name (other braces kept: JSON values)."""
    return [re.sub(r"\{(\w+)\}", lambda m: str(paths.get(m.group(1), m.group(0))), str(a)) for a in argv]


Case = namedtuple("Case", "name argv pattern")
CASES = [
    # study presets and --set: the wrong type, a non-finite number, a value out of range
    Case(
        "set pairs 5",
        ["study", "compare", "--preset", "cpu", *PRINT, "--set", "pairs=5"],
        "compare.pairs must be a list, got 5",
    ),
    Case(
        "set pairs [5]",
        ["study", "compare", "--preset", "cpu", *PRINT, "--set", "pairs=[5]"],
        r"compare.pairs\[0\] must be a list, got 5",
    ),
    Case(
        "set seeds 5",
        ["study", "compare", "--preset", "cpu", *PRINT, "--set", "seeds=5"],
        "compare.seeds must be a list, got 5",
    ),
    Case(
        "set seeds huge",
        ["study", "compare", "--preset", "cpu", *PRINT, "--set", "seeds=[99999999999]"],
        r"compare.seeds\[0\] must be at least 0 and at most 4294967295",
    ),
    Case(
        "set models 5",
        ["study", "compare", "--preset", "cpu", *PRINT, "--set", "models=5"],
        "compare.models must be a mapping",
    ),
    Case(
        "set models x 5",
        ["study", "compare", "--preset", "cpu", *PRINT, "--set", 'models={"x":5}'],
        "compare.models.x must be a mapping",
    ),
    Case(
        "set train lr NaN",
        ["study", "compare", "--preset", "cpu", *PRINT, "--set", "train.lr=NaN"],
        "compare.train: lr must be a finite number",
    ),
    Case(
        "set scales 5",
        ["study", "scaling", "--preset", "scaling-cpu", *PRINT, "--set", "scales=5"],
        "scaling.scales must be a list, got 5",
    ),
    Case(
        "set scales 1e400",
        ["study", "scaling", "--preset", "scaling-cpu", *PRINT, "--set", "scales=[1e400,0.1]"],
        r"scaling.scales\[0\] must be a finite number, got inf",
    ),
    Case(
        "set death text",
        ["study", "scaling", "--preset", "scaling-cpu", *PRINT, "--set", "death.min_points=x"],
        "scaling.death.min_points must be a whole number, got 'x'",
    ),
    Case(
        "set death NaN",
        ["study", "scaling", "--preset", "scaling-cpu", *PRINT, "--set", "death.loss_tolerance=NaN"],
        "scaling.death.loss_tolerance must be a finite number",
    ),
    Case(
        "set lrs NaN",
        ["study", "sweep", "--preset", "cpu-evidence", *PRINT, "--set", "lrs=[NaN,0.1,0.2]"],
        r"sweep.lrs\[0\] must be a finite number, got nan",
    ),
    Case(
        "set lrs Infinity",
        ["study", "sweep", "--preset", "cpu-evidence", *PRINT, "--set", "lrs=[Infinity,0.1,0.2]"],
        r"sweep.lrs\[0\] must be a finite number, got inf",
    ),
    Case("preset []", ["study", "compare", "--preset", "{list}", *PRINT], r"list.json: a preset must be a JSON object"),
    Case("preset 5", ["study", "compare", "--preset", "{five}", *PRINT], r"five.json: a preset must be a JSON object"),
    Case(
        "preset compare 5",
        ["study", "compare", "--preset", "{compare5}", *PRINT],
        r"compare5.json: compare must be a mapping of the keys pairs, seeds",
    ),
    Case(
        "preset train 5",
        ["study", "compare", "--preset", "{train5}", *PRINT],
        r"train5.json: compare.train must be a mapping",
    ),
    Case(
        "preset not UTF-8", ["study", "compare", "--preset", "{latin1}", *PRINT], r"latin1.json is not valid JSON text"
    ),
    Case("preset a pipe", ["study", "compare", "--preset", "{pipe}", *PRINT], "pipe.json is not a regular file"),
    Case(
        "report only, no runs",
        ["study", "compare", "--preset", "cpu", "--out", "{root}/no-study", "--report-only"],
        r"no-study holds no finished run of this study; run the same command without --report-only",
    ),
    # train: --config files, a run's config.json, numbers beyond their bounds
    Case("config a list", [*TRAIN, "--config", "{c_list}"], r"c_list.json must hold a JSON object of training"),
    Case("config of text", [*TRAIN, "--config", "{c_text}"], r"c_text.json must hold a JSON object"),
    Case("config lr text", [*TRAIN, "--config", "{c_lr}"], r"c_lr.json: lr must be a number, got 'x'"),
    Case("config not UTF-8", [*TRAIN, "--config", "{latin1}"], r"latin1.json is not valid JSON text"),
    Case("config a pipe", [*TRAIN, "--config", "{pipe}"], "pipe.json is not a regular file"),
    Case(
        "resume, config.json {}",
        [*TRAIN, "--run-dir", "{empty_run}", "--resume", "auto"],
        r"empty_run/config.json is not a run's configuration",
    ),
    Case(
        "resume, config.json cut",
        [*TRAIN, "--run-dir", "{broken_run}", "--resume", "auto"],
        r"broken_run/config.json is damaged",
    ),
    Case(
        "seed beyond 64 bits",
        [*TRAIN, "--seed", "99999999999999999999999"],
        "seed must be at least 0 and at most 4294967295",
    ),
    Case(
        "blocks 10^8",
        [*TRAIN, "--model", "inception_resnet_v1", "--model-option", "blocks=[1,1,100000000]"],
        r"blocks\[2\] must be at least 0 and at most 100, got 100000000",
    ),
    Case(
        "train width 1e9",
        [*TRAIN, "--model-option", "width_multiplier=1e9"],
        r"width_multiplier must lie in \(0, 16\], got 1000000000",
    ),
    Case("train input 100000", [*TRAIN, "--input-size", "100000"], "input_size must be at least 1 and at most 4096"),
    # eval, predict, plot
    Case(
        "eval width 1e9",
        ["eval", "--model", "inception_v4", "--model-option", "width_multiplier=1e9", "--data", "{data}"],
        r"width_multiplier must lie in \(0, 16\]",
    ),
    Case(
        "eval input 100000",
        [
            "eval",
            "--model",
            "inception_v4",
            "--model-option",
            "width_multiplier=0.125",
            "--input-size",
            "100000",
            "--data",
            "{data}",
            "--workers",
            "0",
        ],
        "input_size must be at least 1 and at most 4096",
    ),
    Case(
        "class map index 10^11",
        ["eval", "--model", "inception_v4", *TINY, "--data", "{data}", "--class-map", "{map}", "--workers", "0"],
        r"map.txt: the index of 'b' must be at least 0 and at most 999999, got 99999999999",
    ),
    Case(
        "weights a pipe",
        ["predict", "{map}", "--model", "inception_v4", "--weights", "{pipe}", *TINY],
        "pipe.json is not a regular file",
    ),
    Case(
        "weights a code pickle",
        ["predict", "{map}", "--model", "inception_v4", "--weights", "{evil}", *TINY],
        r"evil.pth is not a plain weights file: its pickle names code to run \(posix.system\).*If you trust",
    ),
    Case("plot a list line", ["plot", "{list_metrics}"], r"list_metrics/metrics.jsonl, line 2: not a JSON object"),
    Case("plot a cut line", ["plot", "{cut_metrics}"], r"cut_metrics/metrics.jsonl, line 2: not a JSON object"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_configuration_is_refused_in_one_line(case: Case, world, capsys, monkeypatch, tmp_path, one_thread) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    assert_error(capsys, fill(case.argv, world), case.pattern)
    assert time.perf_counter() - started < 110  # nothing was built at the refused size (the campaign: 120 s)
    assert not (world["root"] / "never").exists() and not (world["root"] / "no-study").exists()
    assert not world["marker"].exists()  # the pickle's code never ran


def test_a_refused_study_leaves_study_json_as_it_was(world, capsys, tmp_path, one_thread) -> None:
    """The study of another setting (epochs) is refused before study.json is replaced."""
    from inception_resnet.study.compare import plan_compare

    out = tmp_path / "study"
    preset = tmp_path / "tiny.json"
    preset.write_text(
        json.dumps(
            {
                "compare": {
                    "pairs": [["inception_v3", "inception_resnet_v1"]],
                    "seeds": [0],
                    "train": {"epochs": 1, "data": "synthetic:8:2", "input_size": 75},
                }
            }
        )
    )
    section = load_preset(preset).compare
    for spec in plan_compare(section, out):  # a finished study of these settings
        spec.run_dir.mkdir(parents=True)
        write_marker(spec, "completed", "", {})
    (out / "study.json").write_text('{"the": "finished study"}')
    assert_error(
        capsys,
        ["study", "compare", "--preset", preset, "--out", out, "--set", "epochs=3"],
        "holds a run with other settings",
    )
    assert (out / "study.json").read_text() == '{"the": "finished study"}'


# -- images ----------------------------------------------------------------------------------------------
def test_a_float_tiff_decodes_like_its_16_bit_twin_or_is_refused(tmp_path) -> None:
    ramp = np.linspace(0, 1, 40 * 40, dtype=np.float32).reshape(40, 40)
    Image.fromarray(ramp, mode="F").save(tmp_path / "f.tiff")
    Image.fromarray(np.rint(ramp * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    decoded = decode_file(tmp_path / "f.tiff")
    assert decoded.dtype == torch.uint16 and decoded.float().max() > 60000  # never silently zero
    assert (decoded.int() - decode_file(tmp_path / "g16.png").int()).abs().max() <= 1  # rounding only
    Image.fromarray(ramp * 3, mode="F").save(tmp_path / "bright.tiff")
    with pytest.raises(CorruptImageError, match=r"intensities from 0 to 1 \(this one: 0 to 3\).*8 or 16 bits"):
        decode_file(tmp_path / "bright.tiff")


def test_an_extreme_aspect_ratio_stays_within_bounded_memory(tmp_path) -> None:
    Image.fromarray((np.random.default_rng(0).random((1, 60000)) * 255).astype(np.uint8)).save(tmp_path / "w.png")
    image = decode_file(tmp_path / "w.png")
    for style in ("center", "tf", "squash"):  # timm's shorter-side resize once asked for 28 GB
        assert EvalTransform(299, style=style)(image).shape == (3, 299, 299)
    ordinary = torch.randint(0, 255, (3, 300, 400), dtype=torch.uint8)  # below the cut: exactly as before
    assert EvalTransform(299, style="center")(ordinary).shape == (3, 299, 299)


def test_predict_classifies_odd_but_valid_files_beside_good_ones(world, capsys, tmp_path, one_thread) -> None:
    rng = np.random.default_rng(1)
    good = tmp_path / "ok.png"
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(good)
    Image.fromarray((rng.random((1, 6000)) * 255).astype(np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray((rng.random((6000, 1)) * 255).astype(np.uint8)).save(tmp_path / "tall.png")
    latin = tmp_path / os.fsdecode(b"caf\xe9.png")  # a name that is not UTF-8
    latin.write_bytes(good.read_bytes())
    ramp = np.linspace(0, 1, 40 * 40, dtype=np.float32).reshape(40, 40)
    Image.fromarray(ramp, mode="F").save(tmp_path / "f.tiff")
    Image.fromarray(np.rint(ramp * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    names = ["wide.png", "tall.png", latin.name, "ok.png", "f.tiff", "g16.png"]
    code, out, err = run_cli(
        capsys,
        [
            "predict",
            *(tmp_path / n for n in names),
            "--model",
            "inception_v4",
            "--weights",
            world["w"],
            *TINY,
            "--json",
        ],
    )
    assert code == 0 and "Traceback" not in err, err
    predictions = {Path(p["image"]).name: p["top"] for p in json.loads(out)["predictions"]}
    assert list(predictions) == names
    assert predictions[latin.name] == predictions["ok.png"]
    assert predictions["f.tiff"] == predictions["g16.png"]


# -- the random round --------------------------------------------------------------------------------------
ODD_VALUES = [
    "5",
    "-1",
    "0",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "99999999999999999999999",
    "0.5",
    "true",
    "null",
    "x",
    '""',
    "[]",
    "[5]",
    '["x"]',
    "[NaN]",
    "[1e400, 1]",
    "[[1, 2]]",
    "{}",
    '{"x": 5}',
    '{"x": {"y": []}}',
    "[0, 1, 2]",
    "[0.1, 0.2, 0.3]",
    "2.5",
    "[-3]",
]


def round_cases(count: int, seed: int = 26) -> list[tuple[str, str, str, str]]:
    """``count`` (preset, section, key, value) picks, drawn by a seeded generator over every key of every preset."""
    rng = random.Random(seed)
    keys = []
    for preset in preset_names():
        loaded = load_preset(preset)
        for name in loaded.sections:
            section = loaded.section(name)
            own = [f for f in section.__dataclass_fields__ if f != "train"]
            death = [f"death.{f}" for f in section.death.__dataclass_fields__] if name == "scaling" else []
            keys += [(preset, name, key) for key in (*own, *death, *(f"train.{f}" for f in TrainConfig.field_names()))]
    return [(*rng.choice(keys), rng.choice(ODD_VALUES)) for _ in range(count)]


def test_random_set_values_end_in_success_or_one_line_error() -> None:
    presets = {name: load_preset(name) for name in preset_names()}
    assert set(SECTIONS) == {"compare", "sweep", "scaling"}
    refused = 0
    for preset, section, key, value in round_cases(400):
        started = time.perf_counter()
        loaded = presets[preset]
        try:
            with_overrides(loaded.section(section), [f"{key}={value}"], compare=loaded.compare)
        except (ValueError, FileNotFoundError) as error:
            refused += 1
            assert "\n" not in str(error) and len(str(error)) < 2000, (key, value, str(error))
        assert time.perf_counter() - started < 5, (preset, section, key, value)
    assert refused > 200  # most odd values are refused (the others are valid settings)


def test_random_train_config_values_end_in_success_or_one_line_error() -> None:
    rng = random.Random(24)
    refused = 0
    for _ in range(300):
        name, text = rng.choice(TrainConfig.field_names()), rng.choice(ODD_VALUES)
        started = time.perf_counter()
        try:
            TrainConfig.from_dict({name: json.loads(text) if text != "x" else text}).resolved()
        except (ValueError, FileNotFoundError) as error:
            refused += 1
            assert "\n" not in str(error), (name, text, str(error))
        assert time.perf_counter() - started < 5, (name, text)
    assert refused > 150


def test_eval_refuses_a_huge_input_size_before_building_any_model(capsys, monkeypatch) -> None:
    import inception_resnet.cli.eval as eval_cli

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built before the input size was checked")

    monkeypatch.setattr(eval_cli, "build_member", no_build)
    assert main(["eval", "--model", "googlenet", "--data", "synthetic:8", "--input-size", "100000"]) == 2
    assert "input_size must be at least 1 and at most 4096, got 100000" in capsys.readouterr().err


def test_onnx_export_without_onnx_says_what_to_install(tmp_path, monkeypatch) -> None:
    import importlib.util

    from inception_resnet import create_model
    from inception_resnet.weights.export import export_model

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    model = create_model("googlenet", num_classes=3, width_multiplier=0.25)
    with pytest.raises(RuntimeError, match="needs the onnx package.*pip install onnx"):
        export_model(model, tmp_path / "m.onnx", "onnx")
    assert not (tmp_path / "m.onnx").exists()
