"""CPU deployment: the OpenVINO backend and ``backend="auto"`` of optimize_for_inference, and the deployment files
(OpenVINO IR, int8 IR and ONNX) with their checks against our fp32 model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from inception_resnet import create_model
from inception_resnet.data import build_dataset, subset
from inception_resnet.data.calibration import load_calibration
from inception_resnet.inference import autoselect, optimize_for_inference
from inception_resnet.inference import precision as precision_module
from inception_resnet.inference.deploy import export_deployment
from inception_resnet.inference.precision import InferenceModel

pytestmark = pytest.mark.usefixtures("one_thread")

FULL = {"x86": True, "bf16": True, "vnni": True, "amx": False, "onednn": True}


def tiny() -> torch.nn.Module:
    return create_model("googlenet", width_multiplier=0.25, num_classes=10).eval()


def tiny_flags(weights, num_classes: int = 10) -> list[str]:
    """The command-line flags that rebuild :func:`tiny` (with ``num_classes``) from its saved ``weights``, at 75 px."""
    model = ["--model", "googlenet", "--weights", str(weights), "--model-option", "width_multiplier=0.25"]
    return [*model, "--num-classes", str(num_classes), "--input-size", "75"]


def images(count: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(count, 3, 75, 75, generator=torch.Generator().manual_seed(seed))


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).float()


# -- the OpenVINO backend ---------------------------------------------------------------------------------------
def test_the_openvino_backend_gives_the_eager_outputs_in_each_precision() -> None:
    model = tiny()
    x = images(3)
    expected = logits(model, x)
    largest = expected.abs().max()
    calibration = images(16, seed=1)
    for precision, tolerance in (("fp32", 1e-4), ("bf16", 0.03), ("int8", 0.25)):
        fast = optimize_for_inference(
            model, precision=precision, backend="openvino", calibration=calibration, features=FULL
        )
        assert isinstance(fast, InferenceModel) and fast.plan.backend == "openvino"
        assert fast.plan.precision == precision and "OpenVINO" in str(fast.plan)
        out = logits(fast, x)
        assert out.dtype == torch.float32 and out.shape == expected.shape
        assert (out - expected).abs().max() <= tolerance * largest, precision
        assert torch.allclose(logits(fast, x[:1]), out[:1], atol=1e-5)  # a smaller batch: padded, same answer
        assert fast.model_name == "googlenet" and fast.num_classes == 10
    assert fast.plan.calibration_images == 16
    fp32 = optimize_for_inference(model, precision="fp32", backend="openvino")  # built at its first call's size
    larger = torch.randn(2, 3, 90, 90)
    assert torch.allclose(logits(fp32, larger), logits(model, larger), atol=1e-4)
    with pytest.raises(ValueError, match=r"built for inputs of shape \[3, 90, 90\]"):
        fp32(x)


def test_backend_and_precision_arguments_are_checked(monkeypatch) -> None:
    model = tiny()
    with pytest.raises(ValueError, match="backend must be one of auto, torch, openvino"):
        optimize_for_inference(model, precision="fp32", backend="onnx")
    with pytest.raises(ValueError, match="go with precision="):
        optimize_for_inference(model, backend="openvino")
    with pytest.raises(ValueError, match="leave out fuse"):
        optimize_for_inference(model, precision="fp32", fuse=True)
    with pytest.raises(ValueError, match="torch.compile"):
        optimize_for_inference(model, precision="fp32", backend="openvino", compile=True)
    monkeypatch.setattr(precision_module, "have_openvino", lambda int8=False: False)
    with pytest.raises(ImportError, match=r"pip install 'inception-resnet\[openvino\]'"):
        optimize_for_inference(model, precision="fp32", backend="openvino")


# -- auto -------------------------------------------------------------------------------------------------------
def test_auto_without_openvino_is_torch_with_a_one_line_note(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("INCEPTION_RESNET_CACHE", str(tmp_path))
    monkeypatch.setattr(autoselect, "have_openvino", lambda int8=False: False)
    model = tiny()
    fast = optimize_for_inference(model, precision="fp32", backend="auto")
    assert fast.plan.backend == "torch" and "\n" not in str(fast.plan)
    assert "auto: torch, as OpenVINO is not installed" in str(fast.plan)
    x = images(2)
    assert torch.allclose(logits(fast, x), logits(model, x), atol=1e-4)
    assert not (tmp_path / "backends.json").exists()  # nothing was measured


def test_auto_leaves_out_a_backend_that_cannot_run_the_model(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("INCEPTION_RESNET_CACHE", str(tmp_path))

    def refuse(*args):
        raise ValueError("the openvino backend runs classifiers")

    monkeypatch.setattr(autoselect, "build_openvino", refuse)
    fast = optimize_for_inference(tiny(), precision="fp32", backend="auto", example_input=images(1))
    assert fast.plan.backend == "torch"
    assert "openvino left out: the openvino backend runs classifiers" in str(fast.plan)


def test_auto_times_both_backends_once_and_remembers_the_choice(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("INCEPTION_RESNET_CACHE", str(tmp_path))
    built = []
    for name in ("build_torch", "build_openvino"):
        real = getattr(autoselect, name)
        monkeypatch.setattr(autoselect, name, lambda *a, real=real, name=name: built.append(name) or real(*a))
    model = tiny()
    fast = optimize_for_inference(model, precision="fp32", backend="auto", batch_size=2, example_input=images(1))
    assert sorted(built) == ["build_openvino", "build_torch"]
    assert f"auto: {fast.plan.backend}, measured fastest:" in str(fast.plan) and "per batch of 2" in str(fast.plan)
    cache = json.loads((tmp_path / "backends.json").read_text())
    ((identity, entries),) = cache.items()
    assert str(torch.get_num_threads()) + " threads" in identity
    ((key, entry),) = entries.items()
    assert key.startswith("googlenet ") and key.endswith(" 3x75x75 b2 fp32") and entry["backend"] == fast.plan.backend
    assert (
        set(entry["seconds"]) == {"torch", "openvino"}
        and min(entry["seconds"], key=entry["seconds"].get) == fast.plan.backend
    )
    x = images(2)
    assert torch.allclose(logits(fast, x), logits(model, x), atol=1e-4)
    built.clear()
    again = optimize_for_inference(model, precision="fp32", backend="auto", batch_size=2, example_input=images(1))
    assert built == [f"build_{fast.plan.backend}"] and "remembered in" in str(again.plan)
    assert torch.allclose(logits(again, x), logits(model, x), atol=1e-4)


# -- deployment files -------------------------------------------------------------------------------------------
def test_openvino_ir_export_round_trips_from_the_command_line(tmp_path, capsys) -> None:
    import openvino as ov

    from inception_resnet.cli import main
    from inception_resnet.weights import save_weights

    model = tiny()
    save_weights(model, tmp_path / "g.safetensors")
    output = tmp_path / "g.xml"
    common = [
        "export",
        *tiny_flags(tmp_path / "g.safetensors"),
        "--output",
        str(output),
    ]
    assert main([*common, "--format", "openvino"]) == 0
    assert "max abs difference from PyTorch" in capsys.readouterr().out
    assert output.is_file() and output.with_suffix(".bin").is_file()
    compiled = ov.Core().compile_model(str(output), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = images(5)  # another batch size than the check's: the batch dimension is dynamic
    assert torch.allclose(torch.from_numpy(compiled(x.numpy())[0]), logits(model, x), atol=1e-4)
    assert main([*common, "--format", "openvino"]) != 0 and "exists" in capsys.readouterr().err
    assert main([*common, "--format", "onnx", "--precision", "int8", "--overwrite"]) != 0
    assert "--precision int8 needs --calibration" in capsys.readouterr().err


def _check_set(transform) -> torch.Tensor:
    """Fashion-MNIST validation images: none of them is a calibration image (those come from the training split)."""
    val = subset(build_dataset("fashion-mnist", "val", lambda image: transform(image)[0], download=False), 300)
    return torch.stack([val[i][0] for i in range(len(val))])


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_exports_pass_their_agreement_check_and_refuse_a_bad_calibration(fashion_network, tmp_path, fmt) -> None:
    model, transform = fashion_network
    check = _check_set(transform)
    calibration = load_calibration("fashion-mnist", transform, 128, download=False)
    path = tmp_path / ("model.xml" if fmt == "openvino" else "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export_deployment(model, path, fmt, precision="int8", calibration=calibration, check_images=check)
    print(f"{fmt} int8: top-1 agreement {result.agreement:.1f}% on {len(check)} check images")
    assert result.agreement >= 97.0 and path.is_file()
    if fmt == "openvino":  # the IR reads back in a new OpenVINO runtime with the classes the check counted
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU")
        out = torch.from_numpy(compiled(check[:64].numpy())[0])
        with torch.no_grad():
            same = (out.argmax(1) == model(check[:64]).argmax(1)).float().mean().item()
        assert same >= 0.9
    bad = calibration[:8] * 0.02  # ranges observed on near-black images: every real image saturates
    refused = tmp_path / ("bad.xml" if fmt == "openvino" else "bad.onnx")
    with pytest.raises(
        ValueError,
        match=r"agrees with the fp32 model on the top-1 class of \d+\.\d% of 300 check "
        r"images, below the 97% required; nothing was written",
    ):
        export_deployment(model, refused, fmt, precision="int8", calibration=bad, check_images=check)
    assert not refused.exists() and not refused.with_suffix(".bin").exists()


def test_predict_runs_the_backend_asked_for_and_says_so(tmp_path, capsys) -> None:
    import skimage.data
    from PIL import Image

    from inception_resnet.cli import main
    from inception_resnet.weights import save_weights

    save_weights(tiny(), tmp_path / "g.safetensors")
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "coffee.png")
    command = [
        "predict",
        str(tmp_path / "coffee.png"),
        *tiny_flags(tmp_path / "g.safetensors"),
        "--device",
        "cpu",
        "--json",
        "--topk",
        "3",
    ]
    outputs = {}
    for backend in ("torch", "openvino"):
        assert main([*command, "--backend", backend]) == 0
        captured = capsys.readouterr()
        assert ("OpenVINO CPU plugin" in captured.err) == (backend == "openvino")
        outputs[backend] = json.loads(captured.out)
    torch_top, openvino_top = (outputs[b]["predictions"][0]["top"] for b in ("torch", "openvino"))
    assert [row["index"] for row in torch_top] == [row["index"] for row in openvino_top]
    assert all(abs(a["probability"] - b["probability"]) < 1e-4 for a, b in zip(torch_top, openvino_top, strict=True))


@pytest.mark.default_backend
def test_eval_and_predict_choose_the_backend_by_measurement_by_default(tmp_path, capsys) -> None:
    from inception_resnet.cli import main
    from inception_resnet.weights import save_weights

    two_classes = create_model("googlenet", width_multiplier=0.25, num_classes=2).eval()
    save_weights(two_classes, tmp_path / "g.safetensors")
    model_flags = tiny_flags(tmp_path / "g.safetensors", num_classes=2)
    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray((np.random.default_rng(i).random((40, 40, 3)) * 255).astype(np.uint8)).save(
                folder / label / f"{i}.png"
            )
    image = str(folder / "a" / "0.png")
    assert main(["predict", image, *model_flags, "--device", "cpu", "--json", "-b", "2"]) == 0
    first = capsys.readouterr()
    assert "(auto: " in first.err and "measured fastest" in first.err  # said on stderr, with the timings
    ran = json.loads(first.out)["run"]
    assert ran["backend_choice"].startswith("auto: ") and ran["precision"] == "fp32"
    chosen = ran["backend_choice"].split()[1].rstrip(",")
    assert chosen in ("torch", "openvino")
    # the choice is remembered for this model, batch and precision: the next command builds only that backend
    results = tmp_path / "eval.json"
    assert (
        main(["eval", "--data", str(folder), *model_flags, "--device", "cpu", "--json", str(results), "-b", "2"]) == 0
    )
    second = capsys.readouterr()
    assert f"(auto: {chosen}, " in second.err and "remembered in" in second.err
    (member,) = json.loads(results.read_text())["run"]["members"]
    assert member["backend_choice"].startswith(f"auto: {chosen}, ")


# -- the benchmark --------------------------------------------------------------------------------------------
def test_benchmark_candidates_choose_the_backend_of_our_precision_path(monkeypatch, benchmark_script) -> None:
    import importlib

    from inception_resnet.bench.spec import Workload, parse_candidate

    assert (
        parse_candidate("ours+int8+auto").engine == "auto"
        and parse_candidate("ours+bf16+openvino").spec == "ours+bf16+openvino"
    )
    for wrong in ("ours+auto", "ours+opt+ov+int8+auto", "ours+fp32+openvino+compile"):
        with pytest.raises(ValueError, match="'auto' and 'openvino' choose"):
            parse_candidate(wrong)
    prepare_module = importlib.import_module("inception_resnet.bench.prepare")
    seen: list[dict] = []

    def recording(model, **kwargs):
        seen.append(kwargs)
        return optimize_for_inference(model, **{**kwargs, "backend": "torch", "batch_size": None})

    monkeypatch.setattr(prepare_module, "optimize_for_inference", recording)
    workload = Workload(
        "googlenet",
        batch_size=3,
        input_size=75,
        steps=1,
        warmup=0,
        rounds=1,
        model_options=(("width_multiplier", 0.25), ("num_classes", 5)),
    )
    prepare_module.prepare(parse_candidate("ours+fp32+auto"), workload)
    assert seen[-1]["backend"] == "auto" and seen[-1]["batch_size"] == 3 and seen[-1]["precision"] == "fp32"
    suite = benchmark_script("bench_models")
    stages = suite.deploy_suite(["inception_v4"])
    assert [s.workload.batch_size for s in stages] == [1, 16]
    specs = set(stages[0].candidates)
    for precision in ("fp32", "bf16", "int8"):  # ours (auto and each backend) and the plain exports' peers
        suffix = "" if precision == "fp32" else f"+{precision}"
        assert {
            f"ours+{precision}+auto",
            f"ours+{precision}",
            f"ours+{precision}+openvino",
            f"timm+ov{suffix}",
            f"ours+ov{suffix}",
        } <= specs
    assert {"timm+ort", "ours+ort"} <= specs


def test_the_deploy_summary_sets_our_fastest_path_against_the_fastest_plain_export(benchmark_script) -> None:
    from inception_resnet.bench import Result

    suite = benchmark_script("bench_models")

    def row(spec: str, img_s: float, precision: str = "fp32", plan: str = "") -> Result:
        return Result(
            "v4 b1",
            "inception_v4",
            "infer",
            1,
            299,
            "cpu",
            None,
            spec,
            spec.split("+")[0],
            precision,
            img_s=img_s,
            extra={"plan": plan} if plan else {},
        )

    results = [
        row("timm", 5.0),
        row("ours+fp32", 9.0),
        row("ours+fp32+auto", 10.0, plan="fp32 CPU inference: x (auto: openvino, measured fastest: openvino 90 ms)"),
        row("ours+opt+ov", 12.0),  # our rewritten graph on OpenVINO: not a plain export, not a peer
        row("timm+ov", 9.0),
        row("ours+ov", 9.6),
        row("timm+ort", 7.0),
        row("ours+int8", 20.0, "int8"),
        row("timm+ov+int8", 25.0, "int8"),
    ]
    text = suite.deploy_summary(results)
    fp32_line, int8_line = (line for line in text.splitlines() if line.startswith("| v4 b1"))
    assert "`ours+fp32+auto`" in fp32_line and "`ours+ov`" in fp32_line and "1.04x" in fp32_line
    assert "missed by 1%" in fp32_line and "openvino, measured fastest: openvino 90 ms" in fp32_line
    assert "`ours+int8`" in int8_line and "`timm+ov+int8`" in int8_line and "0.80x" in int8_line
