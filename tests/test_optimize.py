"""Speed optimisations keep every output: BN/scale folding, merged 1x1 heads, oneDNN packing; the harness."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import inception_resnet as ir
from inception_resnet import bench
from inception_resnet.cli import main as cli_main
from inception_resnet.inference import (
    ProjectThenPool,
    commute_pool_projections,
    fold_batchnorm,
    fold_residual_scale,
    fuse_branches,
    is_fused,
    optimize_for_inference,
    unfuse_branches,
)
from inception_resnet.inference.onednn import OneDNNConv2d, OneDNNConvAdd, pack_for_cpu
from inception_resnet.models.layers import ConvBNReLU, Mixed, ScaledResidual, Widths

ALL_MODELS = ir.list_models()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These small inputs gain nothing from a second thread, and one thread keeps them fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(name: str, **kwargs) -> nn.Module:
    """A quarter-width model whose BatchNorms have non-trivial statistics and affine parameters."""
    model = ir.create_model(name, width_multiplier=0.25, num_classes=7, drop_rate=0.0, **kwargs)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=generator) * 0.4 - 0.2)
    return model


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("name", ALL_MODELS)
def test_optimize_for_inference_and_onednn_give_the_plain_output(name: str) -> None:
    model = small(name).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batchnorms = count(model, nn.BatchNorm2d)
    x = torch.randn(2, 3, 80, 80)
    optimized = optimize_for_inference(model)
    packed = optimize_for_inference(model, onednn=True)  # without the 1x1 merge by default
    fused_packed = optimize_for_inference(model, fuse=True, onednn=True)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(optimized(x), expected, atol=1e-4, rtol=0)
        assert torch.allclose(packed(x), expected, atol=1e-4, rtol=0)
        assert torch.allclose(packed(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-4, rtol=0)
        assert torch.allclose(fused_packed(x), expected, atol=1e-4, rtol=0)
    assert packed.optimization_report.groups_fused == 0 and fused_packed.optimization_report.groups_fused >= 1
    report = optimized.optimization_report
    assert report.batchnorms_folded == batchnorms and count(optimized, nn.BatchNorm2d) == 0
    assert report.groups_fused >= 1 and report.convs_fused >= 2 * report.groups_fused
    assert report.scales_folded == sum(b.scale != 1.0 for b in model.modules() if isinstance(b, ScaledResidual))
    assert all(b.scale == 1.0 for b in optimized.modules() if isinstance(b, ScaledResidual))
    assert packed.optimization_report.convs_packed == count(packed, OneDNNConv2d) > 0
    assert count(packed, nn.Conv2d) == 0 and not any(p.requires_grad for p in optimized.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    assert not is_fused(model) and is_fused(optimized)


def assert_same_training_step(plain: nn.Module, fused: nn.Module, x: torch.Tensor) -> None:
    """Train-mode forward and backward in fp64: outputs, input/parameter gradients and BN statistics agree."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, out2 = plain(x1), fused(x2)
    out1.square().mean().backward()
    out2.square().mean().backward()
    assert torch.allclose(out1, out2, atol=1e-10, rtol=0)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10, rtol=1e-8)
    for (key, p), q in zip(plain.named_parameters(), fused.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), key
        assert p.grad is None or torch.allclose(p.grad, q.grad, atol=1e-10, rtol=1e-8), key
    for (key, a), b in zip(plain.state_dict().items(), fused.state_dict().values(), strict=True):
        assert torch.allclose(a.double(), b.double(), atol=1e-12, rtol=0), key  # weights, BN running statistics


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fused_branches_train_exactly_like_the_plain_blocks(name: str) -> None:
    plain = small(name).train()
    fused = copy.deepcopy(plain)
    report = fuse_branches(fused)
    assert report.groups_fused >= 1 and is_fused(fused)
    assert list(fused.state_dict()) == list(plain.state_dict())
    assert [p.data_ptr() for p in fused.parameters()] != [p.data_ptr() for p in plain.parameters()]
    x = torch.randn(2, 3, 80, 80)
    with torch.no_grad():
        assert torch.allclose(fused.eval()(x), plain.eval()(x), atol=1e-5, rtol=0)
    seen: set[type] = set()
    for path, block in fused.named_modules():
        if not hasattr(type(block), "_fused_base") or type(block) in seen:
            continue
        seen.add(type(block))  # one block per generated forward: each distinct rewrite is checked
        reference = copy.deepcopy(plain.get_submodule(path)).double().train()
        candidate = copy.deepcopy(block).double().train()
        channels = next(m for m in reference.modules() if isinstance(m, nn.Conv2d)).in_channels
        assert_same_training_step(reference, candidate, torch.randn(4, channels, 9, 9, dtype=torch.float64))
    assert len(seen) >= 1
    assert unfuse_branches(fused) == report.groups_fused and not is_fused(fused)


def test_a_fused_network_trains_exactly_like_the_plain_one() -> None:
    plain = small("inception_resnet_v1").double().train()
    fused = copy.deepcopy(plain)
    fuse_branches(fused)
    assert_same_training_step(plain, fused, torch.randn(4, 3, 139, 139, dtype=torch.float64))


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v1"])
def test_torchscript_of_every_rewrite(name: str) -> None:
    model = small(name).eval()
    fused = copy.deepcopy(model)
    fuse_branches(fused)
    optimized = optimize_for_inference(model, onednn=True)
    x = torch.randn(2, 3, 75, 90)
    with torch.no_grad():
        expected = model(x)
        for variant in (fused, optimized):
            assert torch.allclose(torch.jit.script(variant)(x), expected, atol=1e-4, rtol=0)


def test_blocks_with_the_same_branches_in_another_order_script_correctly() -> None:
    def unit() -> ConvBNReLU:
        return ConvBNReLU(8, 8, 3, padding="same")

    first = Mixed(8, {"a": nn.MaxPool2d(3, 1, 1), "b": unit()})
    second = Mixed(16, {"b": unit(), "a": nn.MaxPool2d(3, 1, 1)})
    second["b"].conv = nn.Conv2d(16, 8, 3, padding=1, bias=False)
    model = nn.Sequential(first, second).eval()
    x = torch.randn(1, 8, 9, 9)
    with torch.no_grad():
        assert torch.equal(torch.jit.script(model)(x), model(x))


def test_fusion_merges_the_heads_that_share_an_input_and_keeps_the_rest() -> None:
    model = small("inception_v4").eval()
    optimized = optimize_for_inference(model)
    block_a = optimized.features[6]
    merged = [m for n, m in block_a.named_children() if n.startswith("fused_1x1_")]
    widths = Widths(0.25)
    # Fig 4's three 1x1 heads, and the pooling branch's projection, which reads the block input once commuted
    assert len(merged) == 1 and merged[0].out_channels == widths(96) + 2 * widths(64) + widths(96)
    assert isinstance(block_a, Mixed) and type(block_a).__name__ == "FusedMixed"
    x = torch.randn(1, block_a.in_channels, 9, 9)
    with torch.no_grad():
        assert torch.allclose(block_a(x), model.features[6](x), atol=1e-5)
    extractor = ir.create_model("inception_v4", width_multiplier=0.25, features_only=True).eval()
    fast = optimize_for_inference(extractor)
    image = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        for a, b in zip(fast(image), extractor(image), strict=True):
            assert torch.allclose(a, b, atol=1e-5)


def test_folding_is_generic_and_needs_eval_mode() -> None:
    seq = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 1), nn.BatchNorm2d(4))
    with torch.no_grad():
        for bn in (seq[1], seq[4]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(copy.deepcopy(seq))
    seq.eval()
    folded = copy.deepcopy(seq)
    assert fold_batchnorm(folded) == 2
    assert isinstance(folded[1], nn.Identity) and folded[0].bias is not None
    with torch.no_grad():
        assert torch.allclose(folded(x), seq(x), atol=1e-5)
    residual = small("inception_resnet_v1").eval()
    with pytest.raises(ValueError, match="eval"):
        fold_residual_scale(copy.deepcopy(residual).train())
    assert fold_residual_scale(residual) == 20


def test_pooling_branches_project_first_where_that_is_exact() -> None:
    # Inception-v4: 4 Inception-A, 7 Inception-B and 3 Inception-C blocks each end in avgpool -> 1x1
    for name, expected in (("inception_v4", 14), ("inception_resnet_v2", 1), ("inception_v3", 0)):
        plain = small(name).eval()
        for onednn in (False, True):
            optimized = optimize_for_inference(plain, onednn=onednn)
            assert optimized.optimization_report.pools_commuted == expected == count(optimized, ProjectThenPool)
        assert count(optimize_for_inference(plain, project_pools=False), ProjectThenPool) == 0
    fused = small("inception_v4").eval()
    fuse_branches(fused)  # a model fused at run time is unfused first, then optimised like any other
    with torch.no_grad():
        image = torch.randn(1, 3, 80, 80)
        assert torch.allclose(optimize_for_inference(fused)(image), fused(image), atol=1e-4, rtol=0)
    x = torch.randn(2, 16, 9, 9)
    for count_include_pad, commuted in ((False, 1), (True, 0)):  # counted zero padding would scale the bias
        branch = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=count_include_pad), ConvBNReLU(16, 8, 1))
        block = nn.Sequential(branch).eval()
        with torch.no_grad():
            branch[1].bn.running_mean.uniform_(-1, 1)
            expected = block(x)
        assert commute_pool_projections(block) == 0  # the BatchNorm must be folded first
        fold_batchnorm(block)
        assert commute_pool_projections(block) == commuted
        with torch.no_grad():
            assert torch.allclose(block(x), expected, atol=1e-5, rtol=0)


def test_onednn_fuses_relu_and_the_residual_add() -> None:
    plain = small("inception_resnet_v2").eval()
    model = optimize_for_inference(plain, onednn=True)
    adds = [m for m in model.modules() if isinstance(m, OneDNNConvAdd)]
    assert len(adds) == count(plain, ScaledResidual)  # every up-projection takes the residual add
    assert sum(a.unary is None for a in adds) == 1  # the released last block has no ReLU
    projections = [p.conv for p in model.modules() if isinstance(p, ProjectThenPool)]  # pooled before the ReLU
    assert len(projections) == 1 and all(p.attr == "none" for p in projections)
    assert all(m.attr == "relu" for m in model.modules() if type(m) is OneDNNConv2d and m not in projections)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules() if type(m).__name__.startswith("OneDNN"))
    with pytest.raises(ValueError, match="eval"):
        pack_for_cpu(small("googlenet"))


def test_candidate_specs_round_trip_and_reject_nonsense() -> None:
    for spec in [
        "timm",
        "ours+opt+cl",
        "ours+opt+onednn",
        "timm+cl+compile",
        "ours+opt+cl+compile=max-autotune",
        "ours+opt+cl+compile+freezing+conv_1x1_as_mm",
        "ours+ort",
        "timm+jit",
        "ours+cl+graph",
    ]:
        assert bench.parse_candidate(spec).spec == spec
    assert bench.parse_candidate("ours+onednn+opt").channels_last
    for bad in [
        "keras",
        "timm+opt",
        "ours+freezing",
        "ours+jit+compile",
        "ours+compile=fast",
        "ours+onednn",
        "ours+compile+graph",
    ]:
        with pytest.raises(ValueError):
            bench.parse_candidate(bad)
    with pytest.raises(ValueError, match="not a torch._inductor.config option"):
        bench.check_inductor_options({"no_such_option": True})
    bench.check_inductor_options({"freezing": True, "triton.cudagraphs": False})


def test_run_workload_times_interleaved_candidates_and_reports_errors() -> None:
    options = (("width_multiplier", 0.25), ("num_classes", 7))
    workload = bench.Workload(
        "inception_resnet_v1",
        "infer",
        batch_size=2,
        input_size=75,
        steps=1,
        warmup=1,
        rounds=2,
        model_options=options,
        peak_tflops=1.0,
    )
    specs = ["ours", "ours+opt+cl", "ours+opt+onednn", "ours+ort", "ours+compile+no_such_option"]
    workload = bench.with_workload(workload, peak_tflops=1e-3)
    results = bench.run_workload(workload, [bench.parse_candidate(s) for s in specs])
    assert [r.candidate for r in results] == specs
    good, broken = results[:-1], results[-1]
    assert "no_such_option" in broken.error and broken.img_s is None
    for r in good:
        assert r.error is None and r.rounds == 2 and r.img_s > 0 and r.ratio is not None
        assert r.max_abs_diff < 1e-4 and r.tflops > 0 and r.mfu == pytest.approx(r.tflops / 1e-3, rel=1e-3)
        assert r.img_s == pytest.approx(2 / (r.ms_per_batch / 1e3), rel=1e-2) and r.ms_min <= r.ms_max
    assert good[0].ratio == 1.0 and good[0].baseline == "ours"
    table = bench.to_markdown(results)
    assert table.count("\n") == len(results) + 1 and "| `ours+opt+onednn` |" in table
    train = bench.run_workload(
        bench.with_workload(workload, mode="train", rounds=1),
        [bench.parse_candidate("ours"), bench.parse_candidate("ours+opt+cl")],
    )
    assert all(r.img_s > 0 and r.max_abs_diff is None and r.error is None for r in train)
    aux = bench.run_workload(
        bench.with_workload(
            workload, model="googlenet", mode="train", rounds=1, model_options=options + (("aux_logits", True),)
        ),
        [bench.parse_candidate("ours+cl")],
    )
    assert aux[0].error is None and aux[0].img_s > 0  # the auxiliary heads go through the trainer's loss
    assert train[0].tflops == pytest.approx(
        3
        * train[0].img_s
        * bench.forward_gflops("inception_resnet_v1", 75, width_multiplier=0.25, num_classes=7)
        / 1e3,
        rel=1e-3,
    )


def test_timm_gets_our_weights_and_the_same_outputs() -> None:
    workload = bench.Workload(
        "inception_v3",
        "infer",
        batch_size=1,
        input_size=75,
        steps=1,
        warmup=0,
        rounds=1,
        model_options=(("num_classes", 5),),
    )
    timm_row, ours_row = bench.compare_with_timm(
        "inception_v3",
        ["timm", "ours+opt+cl"],
        mode="infer",
        batch_size=1,
        input_size=75,
        steps=1,
        warmup=0,
        rounds=1,
        model_options=workload.model_options,
    )
    assert timm_row.error is None and ours_row.error is None
    assert timm_row.max_abs_diff < 1e-4 and ours_row.max_abs_diff < 1e-4
    assert ours_row.baseline == "timm" and ours_row.ratio == pytest.approx(ours_row.img_s / timm_row.img_s, rel=1e-2)


def test_cli_writes_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    code = cli_main(
        [
            "bench",
            "--model",
            "googlenet",
            "--model-option",
            "width_multiplier=0.25",
            "--input-size",
            "75",
            "--batch-size",
            "2",
            "--optimize",
            "--channels-last",
            "--no-optimize",
            "--steps",
            "1",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--device",
            "cpu",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ]
    )
    assert code == 0
    doc = json.loads(out_json.read_text())
    command = doc["environment"]["command"]
    assert doc["environment"]["torch"] == torch.__version__
    assert command.startswith("inception-resnet bench --model googlenet")
    assert "--model-option width_multiplier=0.25" in command
    (row,) = doc["results"]
    assert row["candidate"] == "ours+opt+cl" and row["img_s"] > 0 and row["max_abs_diff"] < 1e-4
    assert "| googlenet infer fp32 b2 75px cpu | `ours+opt+cl` |" in out_md.read_text()
    assert "ours+opt+cl" in capsys.readouterr().out


def test_suites_are_valid_and_the_budget_skips_what_does_not_fit(tmp_path: Path, benchmark_script) -> None:
    suites = benchmark_script("bench_models")
    for stages in (suites.cpu_suite(["inception_v4"]), suites.gpu_suite(["inception_v4", "inception_resnet_v2"], True)):
        for stage in stages:
            for spec in stage.candidates:
                bench.parse_candidate(spec)
                dry = suites.dry_run_candidate(spec)
                assert "graph" not in dry and ("compile" not in dry or "backend=eager" in dry)
    for device in ("cpu", "cuda"):
        train = suites.train_suite(["inception_v4", "inception_resnet_v1"], device)
        assert {s.workload.mode for s in train} == {"train"} and {s.workload.amp for s in train} == {None, "bf16"}
        for stage in train:
            assert stage.workload.device == device and all(bench.parse_candidate(c) for c in stage.candidates)
            timm_rows = [c for c in stage.candidates if c.startswith("timm")]
            assert bool(timm_rows) == (stage.workload.model == "inception_v4")  # timm has no IR-v1
    gpu = suites.gpu_suite(["inception_v4", "inception_resnet_v2"])
    assert {s.workload.device for s in gpu} == {"cuda"} and {s.workload.amp for s in gpu} == {"bf16"}
    assert ("inception_v4", "train", 128) in {(s.workload.model, s.workload.mode, s.workload.batch_size) for s in gpu}
    stage = suites.dry_run_stage(suites.Stage(bench.Workload("googlenet"), ("ours", "ours+opt+cl+compile"), 1.0, 1e6))
    written = []
    results = suites.run_suite([stage], budget_s=60.0, write=written.append, log=lambda _m: None)
    assert results[0].img_s > 0 and results[1].error.startswith("skipped") and written[-1] == results


def test_gemm_peaks_measure_each_precision_and_say_which_kernel_is_missing(monkeypatch) -> None:
    from inception_resnet.bench.peak import gemm_peaks

    peaks = gemm_peaks(size=64, repeats=1)
    assert peaks["fp32"] == max(peaks["fp32_mm"], peaks.get("fp32_onednn", 0.0)) > 0
    assert peaks["bf16"] > 0

    def missing(*args, **kwargs):
        raise RuntimeError("no int8 matmul here")

    monkeypatch.setattr(torch, "_int_mm", missing)
    with pytest.warns(RuntimeWarning, match="int8_mm left out: RuntimeError: no int8 matmul here"):
        peaks = gemm_peaks(size=64, repeats=1)
    assert "int8_mm" not in peaks and peaks["fp32"] > 0
