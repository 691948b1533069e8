"""Export: safetensors that timm loads, ONNX checked with onnxruntime, TorchScript, and the refusals."""

from __future__ import annotations

import json

import onnx
import onnxruntime as ort
import pytest
import timm
import torch
from safetensors import safe_open

import inception_resnet as ir
from inception_resnet.cli import main
from inception_resnet.weights import save_weights
from inception_resnet.weights.export import check_exportable, export_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_safetensors_export_loads_in_timm_with_the_same_outputs(tmp_path) -> None:
    model = ir.create_model("inception_resnet_v2", aux_logits=True).eval()
    result = export_model(model, tmp_path / "irv2.safetensors", "safetensors")
    assert result.path == tmp_path / "irv2.safetensors" and result.path.is_file()
    assert any("auxiliary-head" in note for note in result.notes)  # timm's IR-v2 has no AuxLogits
    with safe_open(str(result.path), "pt") as f:
        header = f.metadata()
    assert header["format"] == "pt" and header["inception_resnet.model"] == "inception_resnet_v2"
    assert json.loads(header["inception_resnet.metadata"])["crop_pct"] == 0.8975
    reference = timm.create_model("inception_resnet_v2").eval()
    timm.models.load_checkpoint(reference, str(result.path), strict=True)  # how timm users load a file
    x = torch.randn(1, 3, 75, 75)
    with torch.no_grad():
        assert (reference(x) - model(x)).abs().max() <= 1e-4
    assert not list(tmp_path.glob("*.partial"))


def test_onnx_export_from_the_cli_has_a_dynamic_batch_and_matches_pytorch(tmp_path, capsys) -> None:
    model = ir.create_model("inception_v4", width_multiplier=0.25).eval()
    save_weights(model, tmp_path / "v4.safetensors")
    out = tmp_path / "v4.onnx"
    rc = main(
        [
            "export",
            "--model",
            "inception_v4",
            "--weights",
            str(tmp_path / "v4.safetensors"),
            "--format",
            "onnx",
            "--model-option",
            "width_multiplier=0.25",
            "--input-size",
            "75",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    assert "max abs difference from PyTorch" in capsys.readouterr().out
    graph = onnx.load(str(out)).graph
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch" and not batch_dim.dim_value
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        x = torch.randn(batch, 3, 75, 75)
        with torch.no_grad():
            expected = model(x)
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert got.shape == (batch, 1000) and (got - expected).abs().max() <= 1e-4
    before = out.read_bytes()
    rc = main(
        [
            "export",
            "--model",
            "inception_v4",
            "--weights",
            str(tmp_path / "v4.safetensors"),
            "--format",
            "onnx",
            "--model-option",
            "width_multiplier=0.25",
            "--output",
            str(out),
        ]
    )
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before  # an existing export is never lost


def test_torchscript_export_matches_pytorch(tmp_path) -> None:
    model = ir.create_model("inception_v3", width_multiplier=0.25, aux_logits=True).train()
    result = export_model(model, tmp_path / "v3.pt", "torchscript", input_size=75)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert model.training  # the caller's mode is restored
    loaded = torch.jit.load(str(result.path))
    x = torch.randn(3, 3, 75, 75)
    with torch.no_grad():
        assert (loaded(x) - model.eval()(x)).abs().max() <= 1e-4


def test_formats_that_cannot_represent_an_option_are_refused(tmp_path) -> None:
    aux = ir.create_model("inception_v3", width_multiplier=0.25, aux_logits=True)
    for fmt in ("onnx", "torchscript"):
        with pytest.raises(ValueError, match=r"cannot represent the training-mode output \(logits, aux_logits\)"):
            export_model(aux, tmp_path / f"x.{fmt}", fmt, train_mode=True)
    check_exportable(aux, "safetensors", train_mode=True)  # weights only: fine
    features = ir.create_model("inception_v3", width_multiplier=0.25, features_only=True)
    with pytest.raises(ValueError, match="TorchScript cannot represent a features_only model"):
        export_model(features, tmp_path / "f.pt", "torchscript")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(aux, tmp_path / "x.tflite", "tflite")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_model(aux, tmp_path / "missing" / "x.onnx", "onnx")
    assert not list(tmp_path.iterdir())
