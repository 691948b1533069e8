"""Benchmark harness: our networks against timm's, side by side in one process, inference and training.

A *workload* fixes what is measured (network, inference or training, batch, input size, device, autocast
dtype, steps); a *candidate* fixes how one model runs it (our model or timm's, optimised or not,
channels_last, ``torch.compile`` mode and inductor options, TorchScript freezing, ONNX Runtime, a CUDA
graph), written as a spec such as ``timm+cl+compile`` (:func:`~.spec.parse_candidate`).

* :mod:`.spec` - workloads and candidates; :mod:`.prepare` - building a candidate and its timed step;
* :mod:`.harness` - timing in interleaved rounds and the result rows; :mod:`.report` - Markdown and JSON;
* :mod:`.fashion_network` - the small trained network the inference checks run on.

Its layer, above ``inference/`` and beside ``study/``, and what it may import: docs/architecture.md.
"""

from .harness import Result, benchmark_inference, compare_with_timm, run_workload, time_steps
from .prepare import Prepared, check_inductor_options, prepare
from .report import document, markdown_document, publish, to_markdown, write_results
from .spec import H200_BF16_TFLOPS, Candidate, Workload, forward_gflops, parse_candidate, with_workload

__all__ = [
    "H200_BF16_TFLOPS",
    "Candidate",
    "Prepared",
    "Result",
    "Workload",
    "benchmark_inference",
    "check_inductor_options",
    "compare_with_timm",
    "document",
    "forward_gflops",
    "markdown_document",
    "parse_candidate",
    "publish",
    "prepare",
    "run_workload",
    "time_steps",
    "to_markdown",
    "with_workload",
    "write_results",
]
