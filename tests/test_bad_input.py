"""Bad input and faults at every entry point (issue 15): each case asserts the class of its outcome.

Two outcome classes only, both checked precisely:

* ``error``: a non-zero exit (2 for a refused command, argparse's 2 for a malformed flag) whose message on
  stderr names the problem (a regular expression per case), and no traceback;
* ``handled``: the command succeeds (or reports per-file failures) and its result is the right one: files
  counted once, unsafe files skipped and counted, 16-bit pictures decoded like 8-bit ones, nothing partial
  left on disk, a stale lock taken over.

The command-line cases run in-process through :func:`inception_resnet.cli.main` on tiny models
(``width_multiplier=0.125``, 75-pixel inputs) and synthetic or 40-pixel data, so the whole table stays small
enough for CI. Faults that need a full disk or a read-only mount are simulated by making the file-system
call fail with the matching ``errno`` (the tests may run as root, for whom permission bits mean nothing).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inception_resnet as ir
from inception_resnet import files
from inception_resnet.cli import main
from inception_resnet.data import build_dataset, build_loader, subset
from inception_resnet.data.decoding import CorruptImageError, decode_file, max_image_pixels
from inception_resnet.evaluation.evaluate import evaluate
from inception_resnet.training import TrainConfig, train
from inception_resnet.training.checkpoint import (
    CheckpointError,
    CheckpointManager,
    load_checkpoint,
    save_checkpoint,
)
from inception_resnet.training.rundir import LOCK_NAME, RunDirectoryBusy, RunLock
from inception_resnet.weights.export import export_model
from inception_resnet.weights.loading import load_weights, save_weights

TINY = ["--model-option", "width_multiplier=0.125", "--input-size", "75"]
TRAIN = [
    "train",
    "--model",
    "inception_v4",
    "--model-option",
    "width_multiplier=0.125",
    "--input-size",
    "75",
    "--data",
    "synthetic:16:2",
    "--batch-size",
    "8",
    "--epochs",
    "1",
    "--threads",
    "1",
    "--workers",
    "0",
    "--no-progress",
    "--no-tensorboard",
    "--ema-decay",
    "0",
    "--log-every-steps",
    "1",
]


# -- files of every kind -------------------------------------------------------------------------------
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int, depth: int = 8, color: int = 0) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))


def lying_png(width: int, height: int) -> bytes:
    """A complete, tiny PNG whose header claims ``width`` x ``height`` grey pixels but holds 64 bytes of data."""
    return png_header(width, height) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")


def black_png(width: int, height: int) -> bytes:
    """A valid all-black grey PNG of any size, compressed row by row (a small file without a big buffer)."""
    compressor, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    parts = [compressor.compress(row) for _ in range(height)] + [compressor.flush()]
    return png_header(width, height) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def picture(seed: int, size: int = 40) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def make_data(root: Path, per_class: int = 2) -> Path:
    """``root/{train,val}/{a,b}/<i>.png``: 40-pixel RGB pictures."""
    for split in ("train", "val"):
        for k, name in enumerate("ab"):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(picture(10 * k + i)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Data, weights and one file of each hostile kind, shared by the cases of this module."""
    root = tmp_path_factory.mktemp("world")
    paths = {"root": root, "data": make_data(root / "data")}
    shutil.copytree(paths["data"] / "val", root / "onlyval" / "val")
    paths["onlyval"] = root / "onlyval"
    torch.manual_seed(0)
    two = ir.create_model("inception_v4", width_multiplier=0.125, num_classes=2)
    paths["w2"] = save_weights(two, root / "w2.safetensors")
    paths["w1000"] = save_weights(ir.create_model("inception_v4", width_multiplier=0.125), root / "w1000.safetensors")
    torch.save({"model": two.state_dict(), "classes": ["a", "b"]}, root / "trained_ab.pth")
    paths["trained_ab"] = root / "trained_ab.pth"
    state = two.state_dict()
    state["features.0.conv.weight"] = torch.full_like(state["features.0.conv.weight"], float("nan"))
    torch.save(state, root / "nan.pth")
    paths["nan"] = root / "nan.pth"
    images = root / "images"
    images.mkdir()
    grey = (np.linspace(0, 1, 40 * 40).reshape(40, 40) * 65535).astype(np.uint16)
    Image.fromarray(grey).save(images / "g16.png")  # 16 bits per pixel
    Image.fromarray((grey >> 8).astype(np.uint8)).save(images / "g8.png")  # the same picture at 8 bits
    Image.fromarray(picture(99)).save(images / "ok.png")
    os.mkfifo(images / "pipe.png")
    (images / "huge.png").write_bytes(black_png(10000, 10000))  # 100 million pixels, a 0.1 MB file
    (images / "liar.png").write_bytes(lying_png(100000, 100000))
    (images / "liar_small.png").write_bytes(lying_png(100, 100))  # too little data: crashed torchvision's decoder
    (images / "text.jpg").write_text("this is not an image")
    (images / "empty.png").write_bytes(b"")
    (images / "cut.png").write_bytes((images / "ok.png").read_bytes()[:300])
    os.symlink("loop.png", images / "loop.png")
    os.symlink("nowhere.png", images / "dangling.png")
    (images / "folder.png").mkdir()
    paths["images"] = images
    return paths


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit status, stdout, stderr); argparse's exits become statuses."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_error(capsys, argv: list[str], pattern: str, status: int = 2) -> str:
    """The ``error`` outcome: the status, a message matching ``pattern``, no traceback."""
    code, _out, err = run_cli(capsys, argv)
    assert code == status, f"exit {code} (expected {status}) for {argv}; stderr: {err[-2000:]}"
    assert re.search(pattern, err, re.S), f"{pattern!r} not in stderr of {argv}: {err[-2000:]}"
    assert "Traceback" not in err
    return err


def fill(argv: list[str], paths: dict[str, Path]) -> list[str]:
    return [str(a).format(**{k: str(v) for k, v in paths.items()}) for a in argv]


# -- eval: arguments -------------------------------------------------------------------------------------
EVAL = ["eval", "--model", "inception_v4", *TINY, "--data", "{data}", "--workers", "0", "--quiet"]
Case = namedtuple("Case", "name argv pattern status", defaults=(2,))
EVAL_ERRORS = [
    Case(
        "missing data folder", ["eval", "--model", "inception_v4", *TINY, "--data", "{root}/nothing"], "does not exist"
    ),
    Case("data is a file", ["eval", "--model", "inception_v4", *TINY, "--data", "{w2}"], "not a directory"),
    Case("unknown model", ["eval", "--model", "inception_v9", *TINY, "--data", "{data}"], "unknown model"),
    Case("no model", ["eval", "--data", "{data}"], "give a model with --model"),
    Case("weights file missing", [*EVAL, "--weights", "{root}/none.pth"], "weights file not found"),
    Case("weights not weights", [*EVAL, "--weights", "{data}/val/a/0.png"], "could not be read as a PyTorch"),
    Case("weights hold NaN", [*EVAL, "--weights", "{nan}"], "NaN or infinite values"),
    Case(
        "width text",
        ["eval", "--model", "inception_v4", "--model-option", "width_multiplier=abc", "--data", "{data}"],
        "width_multiplier must be a number",
    ),
    Case(
        "width NaN",
        ["eval", "--model", "inception_v4", "--model-option", "width_multiplier=NaN", "--data", "{data}"],
        "width_multiplier must be a finite number",
    ),
    Case(
        "width negative",
        ["eval", "--model", "inception_v4", "--model-option", "width_multiplier=-1", "--data", "{data}"],
        r"width_multiplier must lie in \(0, 16\]",
    ),
    Case("pretrained as option", [*EVAL, "--model-option", "pretrained=5"], "pretrained is not a network option"),
    Case("num_classes as option", [*EVAL, "--model-option", "num_classes=2.5"], "give it with --num-classes"),
    Case("aux_logits text", [*EVAL, "--model-option", "aux_logits=yes"], "aux_logits must be true or false"),
    Case("unknown option", [*EVAL, "--model-option", "depth=3"], "has no option 'depth'"),
    Case("option without value", [*EVAL, "--model-option", "width_multiplier"], "expected KEY=VALUE"),
    Case("batch size 0", [*EVAL, "--batch-size", "0"], "batch_size must be at least 1"),
    Case("crop set 7", [*EVAL, "--crops", "7"], "invalid choice"),
    Case("limit 0", [*EVAL, "--limit", "0"], "limit must be at least 1"),
    Case("workers -1", [*EVAL, "--workers", "-1"], "num_workers must be 0 or more"),
    Case("input channels 0", [*EVAL, "--in-chans", "0"], "in_chans must be at least 1"),
    Case(
        "input too small",
        [
            "eval",
            "--model",
            "inception_v4",
            "--model-option",
            "width_multiplier=0.125",
            "--input-size",
            "10",
            "--data",
            "{data}",
            "--workers",
            "0",
            "--quiet",
        ],
        "too small; the minimum is 75x75",
    ),
    Case("device unknown", [*EVAL, "--device", "tpu"], "device type"),
    Case("json in missing folder", [*EVAL, "--json", "{root}/nothing/r.json"], "does not exist"),
    Case("json is a folder", [*EVAL, "--json", "{root}"], "is a folder"),
    Case("json and csv the same", [*EVAL, "--json", "{root}/r.txt", "--csv", "{root}/r.txt"], "the same file"),
    Case(
        "split without folder",
        ["eval", "--model", "inception_v4", *TINY, "--data", "{onlyval}", "--split", "train"],
        "has val/ but no train/ folder",
    ),
    Case(
        "class names differ",
        [
            "eval",
            "--model",
            "inception_v4",
            *TINY,
            "--weights",
            "{trained_ab}",
            "--data",
            "{root}/fruit",
            "--workers",
            "0",
            "--quiet",
        ],
        r"trained on classes \[a, b\].*\[apple, zebra\].*--ignore-class-names",
    ),
]


@pytest.mark.parametrize("case", EVAL_ERRORS, ids=[c.name for c in EVAL_ERRORS])
def test_eval_refuses(case: Case, world, capsys, one_thread) -> None:
    fruit = world["root"] / "fruit"
    if not fruit.exists():
        shutil.copytree(world["data"], fruit)
        (fruit / "val" / "a").rename(fruit / "val" / "apple")
        (fruit / "val" / "b").rename(fruit / "val" / "zebra")
    assert_error(capsys, fill(case.argv, world), case.pattern, case.status)


# -- eval: data folders with hostile entries ---------------------------------------------------------------
def link_loop(val: Path) -> None:
    os.symlink(".", val / "a" / "s1")


def two_link_loops(val: Path) -> None:
    os.symlink(".", val / "a" / "s1")
    os.symlink("..", val / "b" / "up")


def fifo(val: Path) -> None:
    os.mkfifo(val / "b" / "pipe.png")


def self_link(val: Path) -> None:
    os.symlink("self.png", val / "b" / "self.png")


def dangling(val: Path) -> None:
    os.symlink("gone.png", val / "b" / "gone.png")


def duplicate(val: Path) -> None:
    os.symlink("../a/0.png", val / "b" / "twice.png")


def lying_header(val: Path) -> None:
    (val / "b" / "liar.png").write_bytes(lying_png(100000, 100000))


def lying_small(val: Path) -> None:
    (val / "b" / "liar.png").write_bytes(lying_png(100, 100))


def truncated(val: Path) -> None:
    (val / "b" / "cut.png").write_bytes((val / "b" / "0.png").read_bytes()[:200])


def sixteen_bit(val: Path) -> None:
    grey = (np.linspace(0, 1, 40 * 40).reshape(40, 40) * 65535).astype(np.uint16)
    Image.fromarray(grey).save(val / "b" / "g16.png")


FOLDER_CASES = [  # (name, change to DATA/val, images counted, files skipped)
    ("one link loop", link_loop, 4, 1),
    ("two link loops", two_link_loops, 4, 2),
    ("named pipe", fifo, 4, 1),
    ("link to itself", self_link, 4, 1),
    ("dangling link", dangling, 4, 1),
    ("second link to a file", duplicate, 4, 1),
    ("header claims 10^10 pixels", lying_header, 4, 1),
    ("header claims more data than the file has", lying_small, 4, 1),
    ("truncated file", truncated, 4, 1),
    ("16-bit picture", sixteen_bit, 5, 0),
]


@pytest.mark.parametrize("name, change, images, skipped", FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES])
def test_eval_counts_each_file_once_and_skips_unsafe_ones(
    name, change, images, skipped, tmp_path, capsys, one_thread
) -> None:
    data = make_data(tmp_path / "data")
    change(data / "val")
    started = time.perf_counter()
    code, out, err = run_cli(capsys, [*fill(EVAL, {"data": data}), "--json", tmp_path / "r.json"])
    assert code == 0, err
    assert time.perf_counter() - started < 60  # never hangs
    result = json.loads((tmp_path / "r.json").read_text())
    assert (result["num_images"], result["num_skipped"]) == (images, skipped)
    assert "Traceback" not in err


def test_eval_pixel_limit_is_configurable(tmp_path, capsys, monkeypatch, one_thread) -> None:
    data = make_data(tmp_path / "data")
    Image.fromarray(picture(5, size=60)).save(data / "val" / "b" / "big.png")  # 3600 pixels; the others 1600
    monkeypatch.setenv("INCEPTION_RESNET_MAX_PIXELS", "2000")
    code, _out, err = run_cli(capsys, [*fill(EVAL, {"data": data}), "--json", tmp_path / "r.json"])
    result = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and (result["num_images"], result["skipped_files"]) == (4, [str(data / "val/b/big.png")])
    monkeypatch.setenv("INCEPTION_RESNET_MAX_PIXELS", "many")
    assert_error(capsys, fill(EVAL, {"data": data}), "INCEPTION_RESNET_MAX_PIXELS='many' is not a whole number")


def test_eval_class_names_can_be_overridden_with_a_warning(world, capsys, one_thread) -> None:
    fruit = world["root"] / "fruit2"
    shutil.copytree(world["data"], fruit)
    (fruit / "val" / "a").rename(fruit / "val" / "apple")
    (fruit / "val" / "b").rename(fruit / "val" / "zebra")
    argv = [
        "eval",
        "--model",
        "inception_v4",
        *TINY,
        "--weights",
        world["trained_ab"],
        "--data",
        fruit,
        "--workers",
        "0",
        "--quiet",
        "--ignore-class-names",
    ]
    with pytest.warns(UserWarning, match="trained on classes"):
        code, out, _err = run_cli(capsys, argv)
    assert code == 0 and "| 4 " in out
    same = [
        "eval",
        "--model",
        "inception_v4",
        *TINY,
        "--weights",
        world["trained_ab"],
        "--data",
        world["data"],
        "--workers",
        "0",
        "--quiet",
    ]
    code, out, err = run_cli(capsys, same)  # the same class names: no question asked
    assert code == 0 and "trained on classes" not in err


# -- predict: one call, every kind of file ---------------------------------------------------------------
PREDICT_FILES = [  # (file in the world's images folder, what the error must say)
    ("pipe.png", "a named pipe"),
    ("huge.png", r"10000x10000 = 100,000,000 pixels, more than the limit"),
    ("liar.png", "more than the limit"),
    ("liar_small.png", "could not be decoded"),
    ("text.jpg", "not an image file"),
    ("empty.png", "an empty file"),
    ("cut.png", "could not be decoded"),
    ("loop.png", "symbolic link loop"),
    ("dangling.png", "broken symbolic link"),
    ("folder.png", "a folder"),
    ("missing.png", "no such file"),
]


@pytest.fixture(scope="module")
def predict_report(world) -> dict:
    images = world["images"]
    argv = [
        "predict",
        *(images / name for name, _ in PREDICT_FILES),
        images / "ok.png",
        images / "g8.png",
        images / "g16.png",
        "--model",
        "inception_v4",
        "--weights",
        world["w1000"],
        *TINY,
        "--json",
        "--topk",
        "3",
    ]
    started = time.perf_counter()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return {
        "code": code,
        "report": json.loads(out.getvalue()),
        "stderr": err.getvalue(),
        "seconds": time.perf_counter() - started,
    }


@pytest.mark.parametrize("name, pattern", PREDICT_FILES, ids=[c[0] for c in PREDICT_FILES])
def test_predict_reports_each_unusable_file_and_goes_on(name, pattern, predict_report, world) -> None:
    errors = {Path(e["image"]).name: e["error"] for e in predict_report["report"]["errors"]}
    assert re.search(pattern, errors[name]), errors[name]
    assert f"{name}: " in predict_report["stderr"]


def test_predict_classifies_the_good_files_of_a_bad_batch(predict_report) -> None:
    assert predict_report["code"] == 1 and predict_report["seconds"] < 120
    names = [Path(p["image"]).name for p in predict_report["report"]["predictions"]]
    assert names == ["ok.png", "g8.png", "g16.png"]
    assert (
        f"{len(PREDICT_FILES)} of {len(PREDICT_FILES) + 3} file(s) could not be classified" in predict_report["stderr"]
    )
    assert "Traceback" not in predict_report["stderr"]


def test_predict_decodes_16_bit_pictures_like_8_bit_ones(predict_report, world) -> None:
    from inception_resnet.evaluation.predict import load_image

    sixteen, eight = load_image(world["images"] / "g16.png"), load_image(world["images"] / "g8.png")
    assert sixteen.dtype == torch.uint16 and eight.dtype == torch.uint8
    assert abs(sixteen.float().mean().item() / 65535 - eight.float().mean().item() / 255) < 0.01
    by_name = {Path(p["image"]).name: p["top"] for p in predict_report["report"]["predictions"]}
    assert [t["index"] for t in by_name["g16.png"]] == [t["index"] for t in by_name["g8.png"]]
    for a, b in zip(by_name["g16.png"], by_name["g8.png"], strict=True):
        assert abs(a["probability"] - b["probability"]) < 1e-3


PREDICT = ["predict", "{images}/ok.png", "--model", "inception_v4", "--weights", "{w1000}", *TINY]
PREDICT_ERRORS = [
    Case("topk 0", [*PREDICT, "--topk", "0"], "--topk must be at least 1"),
    Case("batch size 0", [*PREDICT, "--batch-size", "0"], "batch_size must be at least 1"),
    Case(
        "weights hold NaN",
        ["predict", "{images}/ok.png", "--model", "inception_v4", "--weights", "{nan}", "--num-classes", "2", *TINY],
        "NaN or infinite values",
    ),
    Case(
        "weights missing",
        ["predict", "{images}/ok.png", "--model", "inception_v4", "--weights", "{root}/x.pt"],
        "weights file not found",
    ),
    Case("no weights flag", ["predict", "{images}/ok.png", "--model", "inception_v4"], "--weights"),
    Case(
        "width text",
        [
            "predict",
            "{images}/ok.png",
            "--model",
            "inception_v4",
            "--weights",
            "{w1000}",
            "--model-option",
            "width_multiplier=abc",
        ],
        "width_multiplier must be a number",
    ),
    Case("classes mismatch weights", [*PREDICT, "--num-classes", "3"], "--num-classes 3 contradicts the weights"),
    Case("pretrained as option", [*PREDICT, "--model-option", "pretrained=true"], "not a network option"),
]


@pytest.mark.parametrize("case", PREDICT_ERRORS, ids=[c.name for c in PREDICT_ERRORS])
def test_predict_refuses(case: Case, world, capsys, one_thread) -> None:
    assert_error(capsys, fill(case.argv, world), case.pattern, case.status)


def test_predict_names_the_classes_the_weights_were_trained_on(world, capsys, one_thread) -> None:
    code, out, err = run_cli(
        capsys,
        [
            "predict",
            world["images"] / "ok.png",
            "--model",
            "inception_v4",
            "--weights",
            world["trained_ab"],
            "--num-classes",
            "2",
            *TINY,
            "--json",
        ],
    )
    assert code == 0, err
    labels = {t["label"] for t in json.loads(out)["predictions"][0]["top"]}
    assert labels == {"a", "b"}


# -- train: settings refused before anything runs ----------------------------------------------------------
TRAIN_ERRORS = [
    Case("lr NaN", [*TRAIN, "--lr", "nan"], "lr must be a finite number"),
    Case("lr infinite", [*TRAIN, "--lr", "inf"], "lr must be a finite number"),
    Case("lr negative", [*TRAIN, "--lr", "-1"], "lr must be >= 0"),
    Case(
        "residual scale NaN",
        [*TRAIN, "--model", "inception_resnet_v2", "--model-option", "residual_scale=NaN"],
        "residual_scale must be a finite number",
    ),
    Case("width NaN", [*TRAIN, "--model-option", "width_multiplier=NaN"], "width_multiplier must be a finite number"),
    Case(
        "width negative", [*TRAIN, "--model-option", "width_multiplier=-0.5"], r"width_multiplier must lie in \(0, 16\]"
    ),
    Case("momentum NaN", [*TRAIN, "--momentum", "nan"], "momentum must be a finite number"),
    Case("decay epochs 0", [*TRAIN, "--decay-epochs", "0"], "decay_epochs must be > 0"),
    Case("epochs 0", [*TRAIN, "--epochs", "0"], "epochs must be at least 1"),
    Case("batch size 0", [*TRAIN, "--batch-size", "0"], "batch_size must be at least 1"),
    Case("label smoothing 1.5", [*TRAIN, "--label-smoothing", "1.5"], r"label_smoothing must lie in \[0, 1\)"),
    Case("precision fp64", [*TRAIN, "--precision", "fp64"], "invalid choice: 'fp64'"),
    Case("synthetic spec", [*TRAIN, "--data", "synthetic:abc"], "bad synthetic data spec"),
    Case("missing data", [*TRAIN, "--data", "{root}/nothing", "--run-dir", "{root}/r-missing"], "does not exist"),
    Case("config missing", [*TRAIN, "--config", "{root}/none.json"], "--config file not found"),
    Case("config not JSON", [*TRAIN, "--config", "{images}/text.jpg"], "is not valid JSON"),
    Case("resume file missing", [*TRAIN, "--resume", "{root}/none.pt"], "checkpoint to resume from not found"),
    Case("resume auto without run dir", [*TRAIN, "--resume", "auto"], "--resume auto needs --run-dir"),
    Case("pretrained as model option", [*TRAIN, "--model-option", "pretrained=x"], "not a network option"),
    Case(
        "negative block count",
        [*TRAIN, "--model", "inception_resnet_v2", "--model-option", "blocks=[-1,1,1]", "--run-dir", "{root}/r-blocks"],
        r"blocks\[0\] must be at least 0",
    ),
    Case("unknown model", [*TRAIN, "--model", "inception_v9"], "unknown model"),
    Case("input too small", [*TRAIN, "--input-size", "10", "--run-dir", "{root}/r-small"], "too small"),
]


@pytest.mark.parametrize("case", TRAIN_ERRORS, ids=[c.name for c in TRAIN_ERRORS])
def test_train_refuses(case: Case, world, capsys, monkeypatch, tmp_path, one_thread) -> None:
    monkeypatch.chdir(tmp_path)  # a run without --run-dir would make runs/ here
    assert_error(capsys, fill(case.argv, world), case.pattern, case.status)


def test_train_config_file_with_unknown_key(tmp_path, capsys, one_thread) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"lr": 0.1, "learning_rate": 0.1}))
    assert_error(capsys, [*TRAIN, "--config", tmp_path / "c.json"], "unknown training setting.*'learning_rate'")


def test_train_config_file_with_a_model_option_as_a_setting(tmp_path, capsys, one_thread) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"width_multiplier": 0.25}))
    pattern = r"unknown training setting.*'width_multiplier' \(an option of the model: put it in model_options\)"
    assert_error(capsys, [*TRAIN, "--config", tmp_path / "c.json"], pattern)


# -- train: run directories, checkpoints, disks --------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_lock(run_dir: Path, **owner) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_NAME).write_text(json.dumps({"started": time.time(), "torchrun_job": None, **owner}))


def test_a_second_run_on_a_locked_directory_stops_at_once_naming_the_first(tmp_path, capsys, one_thread) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with RunLock(run_dir):
        err = assert_error(
            capsys,
            [*TRAIN, "--run-dir", run_dir],
            rf"in use by another run: PID {os.getpid()} on "
            rf"host {re.escape(socket.gethostname())}",
        )
    assert not (run_dir / "checkpoints").exists() and "epoch" not in err


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys, one_thread) -> None:
    run_dir = tmp_path / "run"
    pid = dead_pid()
    write_lock(run_dir, pid=pid, host=socket.gethostname())
    code, out, err = run_cli(capsys, [*TRAIN, "--run-dir", run_dir])
    assert code == 0 and f"took over the lock of PID {pid}" in err and "completed" in out
    assert not (run_dir / LOCK_NAME).exists()  # released at the end


def test_a_lock_from_another_host_is_not_taken_over(tmp_path, capsys, one_thread) -> None:
    run_dir = tmp_path / "run"
    write_lock(run_dir, pid=1, host="another-machine")
    assert_error(capsys, [*TRAIN, "--run-dir", run_dir], rf"another host.*delete {re.escape(str(run_dir))}")


def test_a_lock_of_an_earlier_attempt_of_the_same_torchrun_job_is_taken_over(
    tmp_path, capsys, monkeypatch, one_thread
) -> None:
    run_dir = tmp_path / "run"
    write_lock(run_dir, pid=1, host="another-machine", torchrun_job="job-7")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-7")
    code, _out, err = run_cli(capsys, [*TRAIN, "--run-dir", run_dir])
    assert code == 0 and "an earlier attempt of this torchrun job" in err


def test_resume_auto_with_every_rolling_checkpoint_damaged_stops_and_keeps_best(tmp_path, capsys, one_thread) -> None:
    run_dir = tmp_path / "run"
    assert run_cli(capsys, [*TRAIN, "--run-dir", run_dir])[0] == 0
    manager = CheckpointManager(run_dir / "checkpoints")
    best = manager.best_path.read_bytes()
    for path in manager.checkpoints():
        path.unlink()  # best.pt is a hard link: replace the file rather than damage the shared bytes
        path.write_bytes(b"garbage")
    before = sorted(p.name for p in manager.directory.iterdir())
    assert_error(
        capsys,
        [*TRAIN, "--run-dir", run_dir, "--resume", "auto"],
        r"no intact checkpoint.*best\.pt is intact.*--resume",
    )
    assert manager.best_path.read_bytes() == best
    assert sorted(p.name for p in manager.directory.iterdir()) == before  # nothing renamed, nothing written
    manager.best_path.write_bytes(b"garbage too")
    assert_error(capsys, [*TRAIN, "--run-dir", run_dir, "--resume", "auto"], "start afresh with a new --run-dir")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["derived"]["resumed_from"] is None  # untouched since the first run


def test_a_fresh_run_never_replaces_an_earlier_runs_checkpoints(tmp_path, capsys, one_thread) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_cli(capsys, [*TRAIN, "--run-dir", first])[0] == 0
    assert run_cli(capsys, [*TRAIN, "--run-dir", second])[0] == 0
    assert_error(capsys, [*TRAIN, "--run-dir", first], "already holds checkpoints of an earlier run")
    foreign = CheckpointManager(second / "checkpoints").checkpoints()[-1]
    best = (first / "checkpoints" / "best.pt").read_bytes()
    assert_error(
        capsys,
        [*TRAIN, "--run-dir", first, "--resume", foreign, "--epochs", "2"],
        "holds checkpoints of another run, whose best.pt",
    )
    assert (first / "checkpoints" / "best.pt").read_bytes() == best


def test_weights_that_become_nan_are_never_saved(tmp_path, capsys, one_thread) -> None:
    sgd = ["--recipe", "sgd", "--warmup-epochs", "0", "--no-scale-lr"]
    run_dir = tmp_path / "run"
    err = assert_error(
        capsys,
        [*TRAIN, *sgd, "--lr", "3e38", "--checkpoint-every-steps", "1", "--run-dir", run_dir],
        r"weights became NaN or infinite .* no checkpoint was written with them\. No checkpoint",
    )
    assert not list((run_dir / "checkpoints").glob("*.pt")) and "last good" not in err
    assert run_cli(capsys, [*TRAIN, *sgd, "--lr", "0.01", "--run-dir", run_dir])[0] == 0
    newest = CheckpointManager(run_dir / "checkpoints").checkpoints()[-1]
    assert_error(
        capsys,
        [
            *TRAIN,
            *sgd,
            "--lr",
            "3e38",
            "--epochs",
            "2",
            "--checkpoint-every-steps",
            "1",
            "--run-dir",
            run_dir,
            "--resume",
            "auto",
        ],
        rf"NaN or infinite.*newest checkpoint, {re.escape(str(newest))}, has finite weights",
    )
    assert CheckpointManager(run_dir / "checkpoints").checkpoints()[-1] == newest


def enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_not_enough_room_for_a_checkpoint_is_found_before_training(tmp_path, capsys, monkeypatch, one_thread) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _p: usage._replace(free=100_000))
    run_dir = tmp_path / "run"
    assert_error(capsys, [*TRAIN, "--run-dir", run_dir], r"not enough free space for one checkpoint .* 97\.7 KiB free")
    assert not (run_dir / "steps.jsonl").exists()  # no step was trained


def test_a_full_disk_while_checkpointing_names_the_cause_and_leaves_no_file(
    tmp_path, capsys, monkeypatch, one_thread
) -> None:
    from inception_resnet.training import checkpoint

    class FillingFile(io.FileIO):
        """A file on a disk that fills up after 1000 bytes."""

        def write(self, data):
            if self.tell() > 1000:
                enospc()
            return super().write(data)

    monkeypatch.setattr(checkpoint, "open", lambda path, mode: FillingFile(path, "w"), raising=False)
    run_dir = tmp_path / "run"
    assert_error(
        capsys,
        [*TRAIN, "--run-dir", run_dir],
        r"cannot write checkpoint .*last-e0001.*no space left on the "
        "device; free some space",
    )
    assert not [p.name for p in (run_dir / "checkpoints").iterdir()]  # no temporary file, no partial checkpoint


def test_a_read_only_run_directory_is_found_before_training(tmp_path, capsys, monkeypatch, one_thread) -> None:
    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert_error(capsys, [*TRAIN, "--run-dir", tmp_path / "run"], "the file system is read-only; choose a writable")


# -- export -----------------------------------------------------------------------------------------------
EXPORT = ["export", "--model", "inception_v4", "--weights", "{w1000}", *TINY, "--no-check"]
EXPORT_ERRORS = [
    Case("output exists", [*EXPORT, "--format", "safetensors", "-o", "{w2}"], "exists; pass --overwrite"),
    Case(
        "output folder missing",
        [*EXPORT, "--format", "safetensors", "-o", "{root}/nothing/m.safetensors"],
        "does not exist",
    ),
    Case("output is a folder", [*EXPORT, "--format", "onnx", "-o", "{images}/folder.png"], "is a folder"),
    Case("format unknown", [*EXPORT, "--format", "tflite"], "invalid choice"),
    Case(
        "train mode to ONNX", [*EXPORT, "--format", "onnx", "--train-mode", "-o", "{root}/t.onnx"], "cannot represent"
    ),
    Case(
        "weights hold NaN",
        [
            "export",
            "--model",
            "inception_v4",
            "--weights",
            "{nan}",
            "--num-classes",
            "2",
            *TINY,
            "--format",
            "safetensors",
            "-o",
            "{root}/nan.safetensors",
        ],
        "NaN or infinite",
    ),
]


@pytest.mark.parametrize("case", EXPORT_ERRORS, ids=[c.name for c in EXPORT_ERRORS])
def test_export_refuses(case: Case, world, capsys, one_thread) -> None:
    assert_error(capsys, fill(case.argv, world), case.pattern, case.status)


@pytest.mark.parametrize("fmt", ["safetensors", "onnx", "torchscript"])
def test_export_to_a_full_disk_says_so_and_writes_nothing(
    fmt, world, tmp_path, capsys, monkeypatch, one_thread
) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _p: usage._replace(free=50_000))
    assert_error(
        capsys,
        [*fill(EXPORT, world), "--format", fmt, "-o", tmp_path / f"m.{fmt}"],
        rf"not enough free space for the {fmt} export",
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", ["safetensors", "torchscript"])
def test_export_failing_mid_write_leaves_no_partial_file(fmt, world, tmp_path, capsys, monkeypatch, one_thread) -> None:
    def half_then_full(self, data):
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        enospc()

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_full)
    assert_error(
        capsys,
        [*fill(EXPORT, world), "--format", fmt, "-o", tmp_path / f"m.{fmt}"],
        rf"cannot write the {fmt} export .*no space left on the device",
    )
    assert not list(tmp_path.iterdir())


def test_export_to_a_read_only_folder_stops_before_exporting(world, tmp_path, capsys, monkeypatch, one_thread) -> None:
    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert_error(
        capsys,
        [*fill(EXPORT, world), "--format", "torchscript", "-o", tmp_path / "m.pt"],
        "cannot write the torchscript export in .*read-only",
    )
    assert not list(tmp_path.iterdir())


# -- the other commands --------------------------------------------------------------------------------------
OTHER_ERRORS = [
    Case("models: no match", ["models", "zzz*"], "no model matches"),
    Case("plot: not a run", ["plot", "{data}"], "holds no metrics"),
    Case("bench: threads -1", ["bench", "--model", "inception_v4", "--threads", "-1"], "--threads must be 0"),
    Case("bench: batch 0", ["bench", "--model", "inception_v4", "--batch-size", "0"], "must be positive"),
    Case("bench: json is a folder", ["bench", "--model", "inception_v4", "--json", "{root}"], "is a folder"),
    Case(
        "bench: option NaN",
        [
            "bench",
            "--model",
            "inception_v4",
            "--model-option",
            "width_multiplier=NaN",
            "--rounds",
            "1",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--input-size",
            "75",
        ],
        "width_multiplier must be a finite number",
    ),
    Case("study: unknown preset", ["study", "compare", "--preset", "nope"], "unknown preset"),
    Case(
        "study: seeds",
        ["study", "compare", "--preset", "cpu", "--seeds", "x,y", "--print-config"],
        "--seeds 'x,y': expected whole numbers",
    ),
    Case(
        "study: time limit NaN",
        ["study", "compare", "--preset", "cpu", "--time-limit", "nan", "--print-config"],
        "compare.time_limit_s must be a finite number, got nan",
    ),
    Case(
        "study: lr NaN",
        ["study", "compare", "--preset", "cpu", "--set", "train.lr=NaN", "--print-config"],
        "compare.train: lr must be a finite number",
    ),
    Case("no command", [], "required"),
]


@pytest.mark.parametrize("case", OTHER_ERRORS, ids=[c.name for c in OTHER_ERRORS])
def test_other_commands_refuse(case: Case, world, capsys, one_thread) -> None:
    assert_error(capsys, fill(case.argv, world), case.pattern, case.status)


# -- the Python API ------------------------------------------------------------------------------------------
def tiny(**options):
    return ir.create_model("inception_v4", width_multiplier=0.125, **options)


def infinite_variance(state: dict) -> dict:
    state["features.0.bn.running_var"] = torch.full_like(state["features.0.bn.running_var"], float("inf"))
    return state


def lock_twice(run_dir: Path) -> None:
    with RunLock(run_dir), RunLock(run_dir):
        pass


API_CASES = [  # (name, call, exception type, message pattern)
    ("num_classes negative", lambda w: tiny(num_classes=-1), ValueError, "num_classes must be at least 0"),
    ("num_classes fraction", lambda w: tiny(num_classes=2.5), ValueError, "num_classes must be a whole number"),
    ("num_classes bool", lambda w: tiny(num_classes=True), ValueError, "num_classes must be a whole number"),
    ("in_chans 0", lambda w: tiny(in_chans=0), ValueError, "in_chans must be at least 1"),
    ("drop_rate NaN", lambda w: tiny(drop_rate=float("nan")), ValueError, "drop_rate must be a finite number"),
    ("drop_rate 1.5", lambda w: tiny(drop_rate=1.5), ValueError, r"drop_rate must lie in \[0, 1\)"),
    (
        "width text",
        lambda w: ir.create_model("inception_v4", width_multiplier="abc"),
        ValueError,
        "width_multiplier must be a number",
    ),
    ("width NaN", lambda w: ir.create_model("inception_v4", width_multiplier=float("nan")), ValueError, "finite"),
    (
        "residual scale NaN",
        lambda w: ir.create_model("inception_resnet_v2", width_multiplier=0.125, residual_scale=float("nan")),
        ValueError,
        "finite",
    ),
    (
        "residual scales pair",
        lambda w: ir.create_model("inception_resnet_v2", width_multiplier=0.125, residual_scale=(0.1, 0.2)),
        ValueError,
        "triple",
    ),
    (
        "blocks negative",
        lambda w: ir.create_model("inception_resnet_v2", width_multiplier=0.125, blocks=(-1, 1, 1)),
        ValueError,
        r"blocks\[0\] must be at least 0",
    ),
    (
        "no last block",
        lambda w: ir.create_model("inception_resnet_v2", width_multiplier=0.125, blocks=(1, 1, 0)),
        ValueError,
        r"blocks\[2\] must be at least 1",
    ),
    ("aux_logits text", lambda w: tiny(aux_logits="yes"), ValueError, "aux_logits must be true or false"),
    ("unknown option", lambda w: tiny(depth=3), ValueError, "has no option 'depth'"),
    (
        "integer input",
        lambda w: tiny().eval()(torch.zeros(1, 3, 75, 75, dtype=torch.uint8)),
        ValueError,
        "expected a floating-point batch",
    ),
    ("3-d input", lambda w: tiny().eval()(torch.zeros(3, 75, 75)), ValueError, "expected a 4-d batch"),
    (
        "NaN state dict",
        lambda w: load_weights(tiny(num_classes=2), torch.load(w["nan"])),
        ValueError,
        "NaN or infinite values in 1 of",
    ),
    (
        "infinite running variance",
        lambda w: load_weights(tiny(), infinite_variance(tiny().state_dict())),
        ValueError,
        r"NaN or infinite values in 1 of .*features\.0\.bn\.running_var",
    ),
    ("split test", lambda w: build_dataset(w["data"], "test"), ValueError, "split must be one of"),
    ("dataset missing", lambda w: build_dataset(w["root"] / "nothing", "val"), FileNotFoundError, "does not exist"),
    (
        "loader batch 0",
        lambda w: build_loader(build_dataset(w["data"], "val"), 0),
        ValueError,
        "batch_size must be at least 1",
    ),
    ("subset of 0", lambda w: subset(build_dataset(w["data"], "val"), 0), ValueError, "at least 1 item"),
    (
        "pixel limit 0",
        lambda w: build_dataset(w["data"], "val", max_pixels=0),
        ValueError,
        "max_pixels must be a positive whole number",
    ),
    (
        "train lr NaN",
        lambda w: train({"lr": float("nan"), "data": "synthetic:8:2"}),
        ValueError,
        "lr must be a finite number",
    ),
    ("train unknown key", lambda w: train({"epoch": 3}), ValueError, "did you mean epochs"),
    (
        "train options clash",
        lambda w: TrainConfig(model_options={"num_classes": 3}).resolved(),
        ValueError,
        "--num-classes",
    ),
    ("decode a pipe", lambda w: decode_file(w["images"] / "pipe.png"), CorruptImageError, "named pipe"),
    ("decode a huge header", lambda w: decode_file(w["images"] / "liar.png"), CorruptImageError, "limit"),
    ("decode a link loop", lambda w: decode_file(w["images"] / "loop.png"), CorruptImageError, "link loop"),
    ("decode too little data", lambda w: decode_file(w["images"] / "liar_small.png"), CorruptImageError, "truncated"),
    ("pixel limit negative", lambda w: max_image_pixels(-5), ValueError, "max_pixels must be a positive whole"),
    ("load a damaged checkpoint", lambda w: load_checkpoint(w["w2"]), CheckpointError, "no integrity footer"),
    (
        "evaluate other classes",
        lambda w: evaluate(
            ir.create_model("inception_v4", width_multiplier=0.125, num_classes=2, pretrained=w["trained_ab"]),
            w["root"] / "fruit",
            input_size=75,
        ),
        ValueError,
        "trained on classes",
    ),
    (
        "evaluate limit 0",
        lambda w: evaluate(tiny(num_classes=2), w["data"], limit=0),
        ValueError,
        "limit must be at least 1",
    ),
    (
        "export to a missing folder",
        lambda w: export_model(tiny(), w["root"] / "nothing" / "m.onnx", "onnx"),
        FileNotFoundError,
        "does not exist",
    ),
    ("export format", lambda w: export_model(tiny(), w["root"] / "m.x", "tflite"), ValueError, "unknown export format"),
    ("lock taken twice", lambda w: lock_twice(w["root"] / "locked"), RunDirectoryBusy, "in use by another run"),
    (
        "atomic write to a missing folder",
        lambda w: files.write_text_atomic(w["root"] / "nothing" / "f.txt", "x"),
        OSError,
        "cannot write file .*the folder does not exist",
    ),
]


@pytest.mark.parametrize("name, call, error, pattern", API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_refuses(name, call, error, pattern, world, monkeypatch, one_thread) -> None:
    monkeypatch.delenv("INCEPTION_RESNET_MAX_PIXELS", raising=False)
    fruit = world["root"] / "fruit"
    if not fruit.exists():
        shutil.copytree(world["data"], fruit)
        (fruit / "val" / "a").rename(fruit / "val" / "apple")
        (fruit / "val" / "b").rename(fruit / "val" / "zebra")
    (world["root"] / "locked").mkdir(exist_ok=True)
    with pytest.raises(error, match=pattern):
        call(world)


def test_a_checkpoint_that_cannot_be_written_leaves_no_file(tmp_path, monkeypatch) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _p: usage._replace(free=10))
    with pytest.raises(OSError, match="not enough free space for the checkpoint c.pt") as caught:
        save_checkpoint({"w": torch.zeros(1000)}, tmp_path / "c.pt")
    assert caught.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())
