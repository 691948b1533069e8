"""CPU inference in fp32, bf16 and int8: the plan per CPU (fallbacks simulated), the answers against fp32, the
calibration images, and the accuracy of a network trained on Fashion-MNIST by our own trainer.

Tolerances, stated once here:

* fp32 path: within 1e-4 of the plain model (the rewrites are exact up to rounding);
* bf16 path on random weights: within 3% of the largest logit;
* trained network, Fashion-MNIST validation (5,000 of its 10,000 images, class-balanced): top-1 agreement with
  fp32 at least 98.5% (bf16) and 97% (int8); top-1 error within 0.2 points (bf16) and 0.5 points (int8) of
  fp32's (issue #17);
* the same network on photographs (``skimage.data``): the largest logit difference at most 5% (bf16) and
  15% (int8) of the largest fp32 logit, and the same top-1 class.
"""

from __future__ import annotations

import copy
import time
import warnings

import pytest
import torch

from inception_resnet import create_model
from inception_resnet.data import build_dataset, subset
from inception_resnet.data.calibration import load_calibration
from inception_resnet.inference import optimize_for_inference
from inception_resnet.inference import precision as precision_module
from inception_resnet.inference.precision import InferenceModel, cpu_features, have_openvino, plan_inference
from inception_resnet.inference.quantize import calibration_batches

pytestmark = pytest.mark.usefixtures("one_thread")

FULL = {"x86": True, "bf16": True, "vnni": True, "amx": False, "onednn": True}
NO_BF16_NO_VNNI = {**FULL, "bf16": False, "vnni": False}
NATIVE = cpu_features()
# The kernel tests ask for the bf16 and int8 paths as on a CPU that has everything: oneDNN runs them on any
# x86 CPU with AVX-512 or AVX2 (emulating what the CPU lacks, slower), so they run on every test machine.


def tiny(name: str = "inception_resnet_v2", width: float = 0.25) -> torch.nn.Module:
    return create_model(name, width_multiplier=width, num_classes=10).eval()


def images(count: int, size: int = 75, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def logits(model: torch.nn.Module, x: torch.Tensor, chunk: int = 250) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(x[i : i + chunk]).float() for i in range(0, len(x), chunk)])


# -- the plan ---------------------------------------------------------------------------------------------------
def test_the_plan_follows_the_cpu_and_says_what_was_chosen() -> None:
    assert plan_inference("bf16", features=FULL).precision == "bf16"
    assert plan_inference("int8", features=FULL).compiled and not plan_inference("fp32", features=FULL).compiled
    assert plan_inference("fp32", compile=True, features=FULL).compiled
    bf16 = plan_inference("bf16", features=NO_BF16_NO_VNNI)
    assert bf16.precision == "fp32" and bf16.fell_back and "AVX512-BF16" in str(bf16)
    assert str(bf16).startswith("bf16 was asked for") and "running fp32 CPU inference: oneDNN fp32" in str(bf16)
    int8 = plan_inference("int8", features=NO_BF16_NO_VNNI)
    assert int8.precision == "fp32" and "VNNI" in str(int8) and not int8.compiled
    arm = plan_inference("int8", features={**FULL, "x86": False})
    assert arm.precision == "fp32" and "x86" in str(arm)
    with pytest.raises(ValueError, match="fp32, bf16, int8"):
        plan_inference("fp16")
    assert set(NATIVE) == set(FULL) and all(isinstance(v, bool) for v in NATIVE.values())


def test_a_cpu_without_bf16_or_vnni_gets_the_fp32_path_with_a_warning(monkeypatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_features", lambda: dict(NO_BF16_NO_VNNI))
    model = tiny("inception_v4")
    x = images(3)
    expected = logits(model, x)
    for asked in ("bf16", "int8"):
        with pytest.warns(UserWarning, match=f"{asked} was asked for"):
            fast = optimize_for_inference(model, precision=asked, calibration=images(4, seed=1))
        assert isinstance(fast, InferenceModel) and fast.precision == "fp32" and fast.input_dtype == torch.float32
        assert torch.allclose(logits(fast, x), expected, atol=1e-4)


def test_precision_arguments_are_checked() -> None:
    model = tiny("inception_v4")
    with pytest.raises(ValueError, match="calibration= and compile= go with precision="):
        optimize_for_inference(model, compile=True)
    with pytest.raises(ValueError, match="fp32 model"):
        optimize_for_inference(copy.deepcopy(model).double(), precision="fp32")
    with pytest.raises(ValueError, match="calibration"):
        list(calibration_batches(None))
    with pytest.raises(ValueError, match="4-d"):
        list(calibration_batches(torch.zeros(3, 75, 75)))
    with pytest.raises(TypeError, match="image tensors"):
        list(calibration_batches(["not an image"]))


# -- fp32 and bf16 ----------------------------------------------------------------------------------------------
def test_fp32_path_equals_the_model_and_is_an_inference_only_cpu_module() -> None:
    model = tiny()
    x = images(5)
    fast = optimize_for_inference(model, precision="fp32")
    assert fast.plan.precision == "fp32" and fast.optimization_report.convs_packed > 0
    assert torch.allclose(logits(fast, x), logits(model, x), atol=1e-4)
    assert logits(fast, x.contiguous(memory_format=torch.channels_last)).dtype == torch.float32
    assert fast.model_name == model.model_name and fast.num_classes == 10 and fast.metadata == model.metadata
    assert fast.eval() is fast and not fast.training
    with pytest.raises(ValueError, match="cannot be trained"):
        fast.train()
    with pytest.raises(ValueError, match="on the CPU as built"):
        fast.to(torch.bfloat16)
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.deepcopy(fast)
    with pytest.raises(ValueError, match="4-d batch"):
        fast(x[0])
    assert all(p.requires_grad for p in model.parameters())  # the original is untouched


def test_bf16_path_runs_bfloat16_onednn_kernels_close_to_fp32() -> None:
    model = tiny()
    x = images(4)
    expected = logits(model, x)
    fast = optimize_for_inference(model, precision="bf16", features=FULL)
    assert fast.plan.precision == "bf16" and fast.input_dtype == torch.bfloat16
    assert fast.optimization_report.convs_packed > 0
    packed = [m for m in fast.modules() if hasattr(m, "packed_weight")]
    assert packed and all(m.packed_weight.dtype == torch.bfloat16 for m in packed)
    out = logits(fast, x)
    assert out.dtype == torch.float32
    assert (out - expected).abs().max() <= 0.03 * expected.abs().max()


# -- int8 -------------------------------------------------------------------------------------------------------
def test_int8_calibration_observes_exactly_the_images_given() -> None:
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        get_default_x86_inductor_quantization_config,
    )

    model = tiny("googlenet")
    given = images(40, seed=3, scale=0.5)
    drawn: list[torch.Tensor] = []

    def batches():  # (images, labels) pairs, as a DataLoader yields them; records what was drawn
        for chunk in given.split(16):
            drawn.append(chunk)
            yield chunk, torch.zeros(len(chunk), dtype=torch.long)

    fast = optimize_for_inference(model, precision="int8", calibration=batches(), compile=False, features=FULL)
    assert fast.plan.calibration_images == 40 and torch.equal(torch.cat(drawn), given)
    graph = fast.quantized_graph.graph
    source = next(n for n in graph.nodes if n.op == "placeholder")
    first = next(n for n in source.users if "quantize_per_tensor" in str(n.target))
    scale, zero_point = first.args[1], first.args[2]
    observer = get_default_x86_inductor_quantization_config().input_activation.observer_or_fake_quant_ctr()
    for chunk in given.split(16):  # the same observer fed exactly the given images, in the same batches
        observer(chunk)
    expected_scale, expected_zero_point = observer.calculate_qparams()
    assert scale == pytest.approx(float(expected_scale), rel=1e-6) and zero_point == int(expected_zero_point)
    wider = optimize_for_inference(model, precision="int8", calibration=4 * given, compile=False, features=FULL)
    wider_first = next(
        n
        for n in next(n for n in wider.quantized_graph.graph.nodes if n.op == "placeholder").users
        if "quantize_per_tensor" in str(n.target)
    )
    assert wider_first.args[1] == pytest.approx(4 * scale, rel=0.05)  # the range follows the images, nothing else
    with pytest.raises(ValueError, match="no images"):
        optimize_for_inference(model, precision="int8", calibration=iter([]), features=FULL)


# -- accuracy on a trained network --------------------------------------------------------------------------------
def photographs(transform) -> torch.Tensor:
    import skimage.data

    views = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat"):
        image = torch.from_numpy(getattr(skimage.data, name)())
        views.append(transform(image.permute(2, 0, 1) if image.dim() == 3 else image.unsqueeze(0))[0])
    return torch.stack(views)


def test_bf16_and_int8_keep_the_fp32_answers_of_a_trained_network(fashion_network) -> None:
    started = time.perf_counter()
    model, transform = fashion_network
    val = subset(build_dataset("fashion-mnist", "val", lambda image: transform(image)[0], download=False), 5000)
    x = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor([val[i][1] for i in range(len(val))])
    photos = photographs(transform)
    reference, reference_photos = logits(model, x), logits(model, photos)
    error = 100 * (reference.argmax(1) != labels).float().mean().item()
    assert error < 45  # the network learned something, so that agreement means something
    calibration = load_calibration("fashion-mnist", transform, 256, download=False)  # training images
    bounds = {"bf16": (98.5, 0.2, 0.05), "int8": (97.0, 0.5, 0.15)}
    for precision, (agreement_min, error_change_max, photo_max) in bounds.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a fallback on CPUs without bf16/VNNI: then fp32 is compared
            fast = optimize_for_inference(model, precision=precision, calibration=calibration)  # as users get it
        out, out_photos = logits(fast, x), logits(fast, photos)
        if fast.plan.compiled:  # int8: compiled once for batches of 250; smaller ones padded, larger ones split
            assert fast.batch_size == 250 and torch.allclose(logits(fast, x[:600], chunk=600), out[:600], atol=1e-5)
            with pytest.raises(ValueError, match="quantized for inputs of shape"):
                fast(images(1, size=99))
        timing = f"{time.perf_counter() - started:.1f} s"
        agreement = 100 * (out.argmax(1) == reference.argmax(1)).float().mean().item()
        change = 100 * (out.argmax(1) != labels).float().mean().item() - error
        photo_diff = (out_photos - reference_photos).abs().max().item()
        print(
            f"{fast.plan.precision}: agreement {agreement:.2f}%, top-1 error {error:.2f}% {change:+.2f} points, "
            f"largest photo logit difference {photo_diff:.4f} (fp32 logits up to "
            f"{reference_photos.abs().max().item():.2f}); {timing}"
        )
        assert agreement >= agreement_min and abs(change) <= error_change_max
        assert photo_diff <= photo_max * reference_photos.abs().max().item()
        assert torch.equal(out_photos.argmax(1), reference_photos.argmax(1))
    print(f"accuracy check: {time.perf_counter() - started:.1f} s after training")


# -- the command line -----------------------------------------------------------------------------------------
TINY_EVAL = [
    "eval",
    "--model",
    "inception_v4",
    "--model-option",
    "width_multiplier=0.25",
    "--input-size",
    "75",
    "--limit",
    "2",
    "--device",
    "cpu",
    "--workers",
    "0",
    "--quiet",
    "--no-download",
]


def test_eval_on_the_cpu_runs_the_optimised_model_by_default_with_144_crops(capsys, monkeypatch, tmp_path) -> None:
    import inception_resnet.cli.eval as eval_command
    from inception_resnet.cli import main

    seen = []
    real_evaluate = eval_command.evaluate

    def spy(models, *args, **kwargs):
        seen.append((models, kwargs["precision"]))
        return real_evaluate(models, *args, **kwargs)

    monkeypatch.setattr(eval_command, "evaluate", spy)
    fast_json, plain_json = tmp_path / "fast.json", tmp_path / "plain.json"
    assert main([*TINY_EVAL, "--crops", "144", "--batch-size", "96", "--json", str(fast_json)]) == 0
    err = capsys.readouterr().err
    assert "note: inception_v4: fp32 CPU inference: oneDNN fp32 convolutions" in err
    ((models, amp),) = seen
    assert isinstance(models[0], InferenceModel) and models[0].precision == "fp32" and amp == "fp32"  # no autocast
    assert main([*TINY_EVAL, "--crops", "144", "--batch-size", "96", "--no-optimize", "--json", str(plain_json)]) == 0
    assert "CPU inference" not in capsys.readouterr().err and not isinstance(seen[1][0][0], InferenceModel)
    import json

    fast, plain = json.loads(fast_json.read_text()), json.loads(plain_json.read_text())
    assert fast["crops"] == plain["crops"] == 144 and fast["top1_error"] == plain["top1_error"]
    assert fast["loss"] == pytest.approx(plain["loss"], abs=1e-4)


def test_precision_and_calibration_flags_reach_the_library(capsys, monkeypatch, tmp_path) -> None:
    import inception_resnet.cli.inference as inference_cli
    from inception_resnet.cli import main
    from inception_resnet.weights import save_weights

    calls = []
    real = inference_cli.optimize_for_inference
    quick = []  # True: build the fp32 model instead, once the arguments are recorded

    def spy(model, **kwargs):
        calls.append(kwargs)
        if quick:
            return real(model, precision="fp32")
        return real(model, **{**kwargs, "compile": False})  # the lowered int8 kernels: no compile wait here

    monkeypatch.setattr(inference_cli, "optimize_for_inference", spy)
    monkeypatch.setattr(precision_module, "cpu_features", lambda: dict(FULL))  # int8 as planned on any x86 CPU
    googlenet = [*TINY_EVAL[:2], "googlenet", *TINY_EVAL[3:]]
    assert main([*googlenet, "--precision", "int8", "--calibration-images", "8"]) == 0
    assert calls[-1]["precision"] == "int8" and calls[-1]["calibration"].shape == (8, 3, 75, 75)
    assert "int8 CPU inference" in capsys.readouterr().err
    quick.append(True)
    assert main([*TINY_EVAL, "--precision", "bf16", "--compile"]) == 0
    assert calls[-1]["precision"] == "bf16" and calls[-1]["calibration"] is None and calls[-1]["compile"] is True

    weights = tmp_path / "w.safetensors"
    save_weights(tiny("inception_v4"), weights)
    photos = tmp_path / "photos"
    photos.mkdir()
    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.coffee()).save(photos / "0.png")
    predict = [
        "predict",
        str(photos / "0.png"),
        "--model",
        "inception_v4",
        "--weights",
        str(weights),
        "--model-option",
        "width_multiplier=0.25",
        "--num-classes",
        "10",
        "--input-size",
        "75",
        "--device",
        "cpu",
        "--json",
    ]
    assert main([*predict, "--precision", "int8", "--calibration", str(photos)]) == 0
    assert calls[-1]["precision"] == "int8" and calls[-1]["calibration"].shape == (1, 3, 75, 75)
    out = capsys.readouterr()
    assert f"from {photos}" in out.err and '"predictions"' in out.out
    assert main([*predict, "--precision", "int8"]) == 2
    assert "--precision int8 needs --calibration" in capsys.readouterr().err
    assert main([*TINY_EVAL, "--precision", "int8", "--no-optimize"]) == 2
    assert "leave out --no-optimize" in capsys.readouterr().err


def test_bench_flags_choose_our_precision_candidates() -> None:
    from inception_resnet.cli import build_parser
    from inception_resnet.cli.bench import candidates_from_args, workload_from_args
    from inception_resnet.cli.inference import uses_fast_path

    parser = build_parser()

    def specs(*flags: str) -> list[str]:
        args = parser.parse_args(["bench", "--model", "inception_v4", "--device", "cpu", *flags])
        return [c.spec for c in candidates_from_args(args)]

    assert specs() == ["ours+fp32"] and specs("--precision", "int8", "--timm") == ["timm", "ours+int8"]
    assert specs("--precision", "bf16", "--compile") == ["ours+bf16+compile"]
    assert specs("--no-optimize", "--optimize", "--channels-last") == ["ours+opt+cl"]
    assert specs("--precision", "fp16") == ["ours"]
    args = parser.parse_args(["bench", "--model", "inception_v4", "--device", "cpu", "--precision", "bf16", "--timm"])
    assert workload_from_args(args).amp == "bf16"  # timm's row runs under autocast
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--precision", "int8"])
    with pytest.raises(ValueError, match="--device cpu"):
        uses_fast_path("int8", torch.device("cuda"), False)
    assert not uses_fast_path("bf16", torch.device("cuda"), False)


def test_the_benchmark_times_our_precisions_as_the_library_builds_them_by_default(monkeypatch) -> None:
    import importlib

    from inception_resnet.bench.spec import Workload, parse_candidate

    prepare_module = importlib.import_module("inception_resnet.bench.prepare")  # the module, not the function

    seen: list[dict] = []

    def recording(model, **kwargs):
        seen.append(kwargs)
        return optimize_for_inference(model, **kwargs, features=FULL)

    monkeypatch.setattr(prepare_module, "optimize_for_inference", recording)
    workload = Workload(
        "googlenet",
        batch_size=1,
        input_size=75,
        steps=1,
        warmup=0,
        rounds=1,
        model_options=(("width_multiplier", 0.25), ("num_classes", 5)),
    )
    notes = {
        spec: prepare_module.prepare(parse_candidate(spec), workload).note
        for spec in ("ours+int8", "ours+bf16", "ours+bf16+compile")
    }
    # Without '+compile' the library decides: int8 compiled (as eval and predict run it), bf16 prepacked.
    assert [call["compile"] for call in seen] == [None, None, True]
    assert "torch.compile with freezing" in notes["ours+int8"] and "not compiled" not in notes["ours+int8"]
    assert "prepacked" in notes["ours+bf16"] and "torch.compile" in notes["ours+bf16+compile"]
    assert seen[0]["calibration"].shape[0] == 32 and seen[1]["calibration"] is None


def test_the_profile_benchmark_splits_the_time_into_convolutions_and_the_rest(tmp_path, benchmark_script) -> None:
    import json

    module = benchmark_script("profile_precision")
    assert module.is_kernel("onednn::qconv_pointwise") and module.is_kernel("mkldnn::_convolution_pointwise")
    assert not module.is_kernel("aten::cat") and not module.is_kernel("## Call CompiledFxGraph None ##")
    assert (
        module.main(
            [
                "--model",
                "googlenet",
                "--input-size",
                "75",
                "--precisions",
                "fp32",
                "--batch-sizes",
                "2",
                "--repeats",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    (written,) = tmp_path.glob("profile-precision-googlenet-*.json")
    (row,) = json.loads(written.read_text())["rows"]
    assert row["precision"] == "fp32" and row["batch"] == 2 and row["img_s"] > 0
    assert 0.5 * row["profiled_ms"] < row["conv_ms"] <= row["profiled_ms"]  # GoogLeNet is mostly convolutions
    assert "| fp32 | 2 |" in written.with_suffix(".md").read_text()


def test_the_accuracy_benchmark_trains_with_our_trainer_and_compares_every_backend_and_precision_with_fp32(
    tmp_path, benchmark_script
) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    # As a user runs it: a process of its own, where it loads OpenVINO (which must stay out of this process:
    # see the Makefile).
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "precision_accuracy.py"
    run_dir = tmp_path / "run"
    flags = ["--model", "googlenet", "--train-images", "64", "--val-images", "40", "--calibration-images", "8"]
    flags += ["--threads", "1", "--run-dir", str(run_dir), "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, str(script), *flags], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run_dir / "config.json").is_file()  # our trainer's run directory
    (written,) = tmp_path.glob("precision-accuracy-googlenet-*.json")
    rows = {(r["backend"], r["precision"]): r for r in json.loads(written.read_text())["rows"]}
    assert rows["eager", "fp32"]["agreement"] == 100.0 and rows["eager", "fp32"]["change"] == 0.0
    backends = ("torch", "openvino") if have_openvino(int8=True) else ("torch",)
    assert set(rows) == {("eager", "fp32")} | {(b, p) for b in backends for p in ("fp32", "bf16", "int8")}
    for backend in backends:
        assert rows[backend, "fp32"]["agreement"] == 100.0  # the fp32 paths compute the eager model's classes
        for precision in ("bf16", "int8"):
            row = rows[backend, precision]
            assert row["ran"] == plan_inference(precision, backend=backend).precision
            assert 0.0 <= row["agreement"] <= 100.0 and row["bound"] == {"bf16": 0.2, "int8": 0.5}[precision]
            assert row["change"] == pytest.approx(row["top1_error"] - rows["eager", "fp32"]["top1_error"])
            assert row["photo_diff"] >= 0.0
    assert rows["torch", "int8"]["plan"].startswith(
        "int8 CPU inference" if rows["torch", "int8"]["ran"] == "int8" else "int8 was asked for"
    )
    module = benchmark_script("precision_accuracy")
    # A run stopped before its last epoch (a signal, a time limit) reports nothing rather than a half-trained network.
    from types import SimpleNamespace

    module.train = lambda config: SimpleNamespace(status="stopped", best_checkpoint=None, exit_code=143)
    for stale in tmp_path.glob("precision-accuracy-*"):
        stale.unlink()
    assert module.main(["--model", "googlenet", "--out", str(tmp_path)]) == 143
    assert not list(tmp_path.glob("precision-accuracy-*"))
