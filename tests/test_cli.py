"""The command line as a newcomer meets it: one set of shared flags, hints that name real flags, help that
states defaults without markup, ``--version``, ``--print-config`` with resolved values, and ``--class-map``."""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inception_resnet
import inception_resnet as ir
from inception_resnet.cli import build_parser, main
from inception_resnet.cli.options import INFERENCE_FLAG_CHOICES, SHARED, is_switch
from inception_resnet.data import ImageFolderDataset, apply_class_map, read_class_map
from inception_resnet.weights import save_weights

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = Path(inception_resnet.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]")
# Flags of other programs that our messages quote: hf download, torchrun, nvidia-smi; "--flag" is a placeholder.
OTHER_PROGRAMS = {"--local-dir", "--nproc_per_node", "--max-restarts", "--query-gpu", "--format", "--flag"}
# The commands each shared flag belongs to (study's three training sections take --data).
EXPECTED = {
    "model": {"eval", "train", "predict", "export", "bench"},
    "model_option": {"eval", "train", "predict", "export", "bench"},
    "weights": {"eval", "train", "predict", "export"},
    "num_classes": {"eval", "train", "predict", "export"},
    "class_map": {"eval"},
    "device": {"eval", "train", "predict", "bench"},
    "batch_size": {"eval", "train", "predict", "bench"},
    "workers": {"eval", "train"},
    "precision": {"eval", "train", "bench", "predict", "export"},
    "no_optimize": {"eval", "predict", "bench"},
    "backend": {"eval", "predict", "bench"},
    "calibration": {"eval", "predict", "export"},
    "calibration_images": {"eval", "predict", "export"},
    "data": {"eval", "train", "study compare", "study sweep", "study scaling"},
}
# The inference commands add int8 to the one --precision flag (train cannot run it).
INFERENCE_COMMANDS = {"eval", "predict", "bench"}


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its command words, the top-level one as ''."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: str) -> None:
        found[words] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{words} {name}".strip())

    walk(build_parser(), "")
    return found


def flags_in(text: str) -> set[str]:
    return set(FLAG.findall(text))


def assert_flags_exist(message: str, command: str) -> None:
    """Every --flag a message names is a flag of ``command`` (or of a program it tells the user to run)."""
    known = set(commands()[command]._option_string_actions)
    unknown = flags_in(message) - known - OTHER_PROGRAMS
    assert not unknown, f"`{command}` hint names {sorted(unknown)}, which `{command}` does not have: {message}"


def write_folder(root: Path, sizes: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, count in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


# -- one set of shared flags -----------------------------------------------------------------------------------
def test_shared_flags_have_one_spelling_in_every_command() -> None:
    parsers = commands()
    for key, flag in SHARED.items():
        having = {
            words
            for words, parser in parsers.items()
            if any(name in parser._option_string_actions for name in flag.names)
        }
        assert having == EXPECTED[key], (key, having)
        for words in having:
            actions = {id(parsers[words]._option_string_actions[name]) for name in flag.names}
            assert len(actions) == 1, f"{words}: {flag.names} are not one flag"
            action = parsers[words]._option_string_actions[flag.names[0]]
            choices = flag.kwargs.get("choices")
            if key == "precision" and words in INFERENCE_COMMANDS:
                choices = INFERENCE_FLAG_CHOICES
            if key == "precision" and words == "export":
                choices = ("fp32", "int8")  # what a deployment file holds
            assert action.choices == choices, (words, key)
            assert action.metavar == flag.kwargs.get("metavar"), (words, key)
    for words, parser in parsers.items():  # the old spellings are gone from every help
        shown = parser.format_help()
        for old in ("--amp", "--num-workers", "--option ", "--pretrained"):
            assert old not in shown, (words, old)


def test_device_defaults_to_auto_everywhere(tmp_path) -> None:
    parser = build_parser()
    image = tmp_path / "x.png"
    minimal = {
        "eval": ["eval", "--model", "inception_v4"],
        "predict": ["predict", str(image), "--model", "inception_v4", "--weights", "w.pth"],
        "bench": ["bench", "--model", "inception_v4"],
    }
    for words in minimal.values():
        assert parser.parse_args(words).device == "auto"
    from inception_resnet.training import TrainConfig

    assert not hasattr(parser.parse_args(["train"]), "device") and TrainConfig().device == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--precision", "bf32"])
    if not torch.cuda.is_available():
        assert main(["eval", "--model", "inception_v4", "--device", "cuda"]) == 2


def test_old_spellings_are_refused(capsys) -> None:
    parser = build_parser()
    for argv in (
        ["eval", "--model", "x", "--amp"],
        ["bench", "--model", "x", "--option", "a=1"],
        ["train", "--num-workers", "3"],
        ["train", "--pretrained", "w.pth"],
    ):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(argv)
        assert stop.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err, argv
    args = parser.parse_args(["train", "-b", "8", "-j", "2", "--data-dir", "d", "--precision", "bf16"])
    assert (args.batch_size, args.num_workers, args.data, args.precision) == (8, 2, "d", "bf16")


def test_export_takes_model_like_the_other_commands(tmp_path, capsys) -> None:
    weights = save_weights(ir.create_model("inception_v3", width_multiplier=0.25), tmp_path / "w.safetensors")
    common = ["--weights", str(weights), "--model-option", "width_multiplier=0.25", "--format", "safetensors"]
    assert main(["export", "--model", "inception_v3", *common, "-o", str(tmp_path / "a.safetensors")]) == 0
    from safetensors.torch import load_file

    a, w = load_file(str(tmp_path / "a.safetensors")), load_file(str(weights))
    assert a.keys() == w.keys() and all(torch.equal(a[k], w[k]) for k in a)
    with pytest.raises(SystemExit) as stop:  # the positional NAME of earlier versions is gone
        main(["export", "inception_v3", *common, "-o", str(tmp_path / "b.safetensors")])
    assert stop.value.code == 2 and "--model" in capsys.readouterr().err
    assert not (tmp_path / "b.safetensors").exists()


# -- every hint names a flag that exists -------------------------------------------------------------------------
def test_every_flag_quoted_in_the_source_exists() -> None:
    """Each --flag in any string of the package (messages, help, docstrings) is a flag of some command."""
    known = set().union(*(set(parser._option_string_actions) for parser in commands().values()))
    unknown: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for flag in flags_in(node.value) - known - OTHER_PROGRAMS:
                    unknown.setdefault(flag, set()).add(str(path.relative_to(SRC)))
    assert not unknown, unknown


def test_hints_name_flags_of_the_command_that_gives_them(tmp_path, capsys) -> None:
    data = write_folder(tmp_path / "three", {"a": 2, "b": 2, "c": 2})
    weights = save_weights(
        ir.create_model("inception_v3", width_multiplier=0.25, num_classes=10), tmp_path / "ten.safetensors"
    )

    def failing(command: list[str]) -> str:
        assert main(command) == 2
        return capsys.readouterr().err

    # weights that record 10 classes, data of 3: eval names both counts (--num-classes would contradict the weights)
    message = failing(
        [
            "eval",
            "--model",
            "inception_v3",
            "--weights",
            str(weights),
            "--model-option",
            "width_multiplier=0.25",
            "--data",
            str(data),
            "-j",
            "0",
        ]
    )
    assert "has 10 outputs" in message and "the data has 3 classes" in message
    assert_flags_exist(message, "eval")
    message = failing(["eval", "--weights", str(weights), "--num-classes", "3", "--data", str(data), "-j", "0"])
    assert "--num-classes 3 contradicts the weights" in message
    assert_flags_exist(message, "eval")
    # a folder with train/ only, evaluated on its missing val/ split
    split = tmp_path / "split"
    write_folder(split / "train", {"a": 1})
    message = failing(["eval", "--model", "inception_v3", "--data", str(split)])
    assert "--split train" in message
    assert_flags_exist(message, "eval")
    # training on a folder with val/ only (train used to suggest --split, which it does not have)
    (tmp_path / "val_only" / "val" / "a").mkdir(parents=True)
    message = failing(["train", "--data", str(tmp_path / "val_only"), "--print-config"])
    assert "has val/ but no train/ folder" in message
    assert_flags_exist(message, "train")
    message = failing(
        ["train", "--data", str(tmp_path / "val_only"), "--epochs", "1", "--run-dir", str(tmp_path / "run")]
    )
    assert "has val/ but no train/ folder" in message
    assert_flags_exist(message, "train")
    # a classifier that does not fit the data in training
    message = failing(
        [
            "train",
            "--model",
            "inception_v4",
            "--model-option",
            "width_multiplier=0.25",
            "--data",
            "synthetic:8:2",
            "--num-classes",
            "3",
            "--input-size",
            "75",
            "--run-dir",
            str(tmp_path / "run2"),
            "--no-tensorboard",
        ]
    )
    assert "--num-classes" in message
    assert_flags_exist(message, "train")


# -- help that helps ---------------------------------------------------------------------------------------------
def test_every_flag_has_help_with_its_default_and_no_markup() -> None:
    for words, parser in commands().items():
        text = parser.format_help()
        for markup in ("``", ":func:", ":class:", ":mod:", ":meth:", "`"):
            assert markup not in text, (words, markup)
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, (words, action.option_strings or action.dest)
            if action.option_strings and not is_switch(action) and not action.required:
                shown = formatter._expand_help(action)
                assert "default" in shown, (words, action.option_strings, shown)


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"inception-resnet {inception_resnet.__version__}"


def test_print_config_prints_the_values_the_run_will_use(tmp_path, capsys) -> None:
    data = write_folder(tmp_path / "data", {"a": 3, "b": 3, "c": 3})
    assert main(["train", "--model", "googlenet", "--data", str(data), "--print-config"]) == 0
    out = capsys.readouterr()
    printed = json.loads(out.out)
    options = printed["model_options"]
    assert (printed["num_classes"], printed["input_size"], options["width_multiplier"]) == (3, 224, 1.0)
    assert options["aux_logits"] is False and printed["val_fraction"] == 0.1
    assert "held out for validation" in out.err
    assert (
        main(
            [
                "train",
                "--model",
                "inception_resnet_v2",
                "--model-option",
                "width_multiplier=0.5",
                "--data",
                "synthetic:8:4",
                "--input-size",
                "99",
                "--print-config",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    options = printed["model_options"]
    assert (printed["num_classes"], printed["input_size"], options["width_multiplier"]) == (4, 99, 0.5)
    assert options["residual_scale"] == [0.17, 0.1, 0.2] and printed["lr"] == 0.045
    # what --print-config prints is a --config file for the same run
    (tmp_path / "c.json").write_text(json.dumps(printed))
    assert main(["train", "--config", str(tmp_path / "c.json"), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == printed


# -- --class-map ---------------------------------------------------------------------------------------------------
def test_class_map_files_in_three_formats(tmp_path) -> None:
    (tmp_path / "lines.txt").write_text("# ImageNet-style, one name per line\nzero\none\n\ntwo\n")
    (tmp_path / "pairs.txt").write_text("cat 3\ndog,1\n")
    (tmp_path / "map.json").write_text('{"cat": 3, "dog": 1}')
    assert read_class_map(tmp_path / "lines.txt") == {"zero": 0, "one": 1, "two": 2}
    assert read_class_map(tmp_path / "pairs.txt") == read_class_map(tmp_path / "map.json") == {"cat": 3, "dog": 1}
    dataset = apply_class_map(
        ImageFolderDataset(write_folder(tmp_path / "d", {"cat": 2, "dog": 1})), {"cat": 3, "dog": 1}
    )
    assert dataset.classes == ["0", "dog", "2", "cat"] and dataset.targets == [3, 3, 1]
    with pytest.raises(ValueError, match="1 class folder.* not in the class map: dog"):
        apply_class_map(ImageFolderDataset(tmp_path / "d"), {"cat": 0})


def test_eval_with_a_class_map_scores_a_subset_of_the_model_classes(tmp_path, capsys) -> None:
    """A 5-class model that always answers class 3, on a folder of 'cat' (index 3, 4 images) and 'dog'
    (index 1, 2 images): 4 of 6 right, and every image is scored against the model's own indices."""
    data = write_folder(tmp_path / "data", {"cat": 4, "dog": 2})
    (tmp_path / "map.txt").write_text("ant\ndog\nemu\ncat\nyak\n")
    model = ir.create_model("inception_v3", width_multiplier=0.25, num_classes=5)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 50.0, 0.0]))
    weights = save_weights(model, tmp_path / "five.safetensors")
    out_json = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                "--model",
                "inception_v3",
                "--weights",
                str(weights),
                "--model-option",
                "width_multiplier=0.25",
                "--data-dir",
                str(data),
                "--class-map",
                str(tmp_path / "map.txt"),
                "--input-size",
                "75",
                "-j",
                "0",
                "--per-class",
                "--quiet",
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    result = json.loads(out_json.read_text())
    assert result["num_images"] == 6
    assert result["top1_accuracy"] == pytest.approx(100 * 4 / 6)
    assert result["per_class_accuracy"] == {"dog": 0.0, "cat": 100.0}
    capsys.readouterr()
    (tmp_path / "short.txt").write_text("cat\n")
    assert (
        main(
            [
                "eval",
                "--model",
                "inception_v3",
                "--weights",
                str(weights),
                "--model-option",
                "width_multiplier=0.25",
                "--data",
                str(data),
                "--class-map",
                str(tmp_path / "short.txt"),
            ]
        )
        == 2
    )
    message = capsys.readouterr().err
    assert "not in --class-map" in message and "dog" in message
    assert_flags_exist(message, "eval")
