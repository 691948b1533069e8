"""What an evaluation reports and how it is computed: :class:`EvalResult`, running top-1/top-5 sums, ensemble averaging.

The protocol itself (crop sets, ensembles, percentages) is described in :mod:`inception_resnet.evaluation.evaluate`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..files import write_text_atomic
from ..markdown import table


@dataclass
class EvalResult:
    """Metrics of one evaluation; accuracies and errors are percentages (0-100)."""

    top1_accuracy: float
    top5_accuracy: float
    num_images: int
    num_skipped: int = 0
    loss: float = float("nan")
    crops: int = 1
    models: list[str] = field(default_factory=list)
    ensemble_weights: list[float] = field(default_factory=list)
    top5_k: int = 5
    dataset: str = ""
    seconds: float = 0.0
    per_class_accuracy: dict[str, float] | None = None
    skipped_files: list[str] = field(default_factory=list)
    probabilities: torch.Tensor | None = field(default=None, repr=False)
    targets: torch.Tensor | None = field(default=None, repr=False)
    run: dict[str, Any] = field(default_factory=dict)  # what ran (precision used, backend, input size...)

    @property
    def top1_error(self) -> float:
        return 100.0 - self.top1_accuracy

    @property
    def top5_error(self) -> float:
        return 100.0 - self.top5_accuracy

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else 0.0

    @property
    def label(self) -> str:
        """The models, ``" + "``-joined, with their weights when they are not equal."""
        if len(set(self.ensemble_weights)) > 1:
            return " + ".join(f"{w:.3g} x {m}" for m, w in zip(self.models, self.ensemble_weights, strict=True))
        return " + ".join(self.models) or "model"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (no tensors)."""
        return {
            "models": list(self.models),
            "ensemble_weights": list(self.ensemble_weights),
            "crops": self.crops,
            "dataset": self.dataset,
            "num_images": self.num_images,
            "num_skipped": self.num_skipped,
            "top1_error": self.top1_error,
            "top5_error": self.top5_error,
            "top1_accuracy": self.top1_accuracy,
            "top5_accuracy": self.top5_accuracy,
            "top5_k": self.top5_k,
            "loss": None if math.isnan(self.loss) else self.loss,
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            "per_class_accuracy": self.per_class_accuracy,
            "skipped_files": list(self.skipped_files),
            **({"run": self.run} if self.run else {}),
        }

    def format_table(self) -> str:
        """A paper-style table (errors and accuracies in %), plus per-class accuracy when computed."""
        header = [
            "models",
            "crops",
            "images",
            "skipped",
            "top-1 err",
            f"top-{self.top5_k} err",
            "top-1 acc",
            f"top-{self.top5_k} acc",
            "loss",
        ]
        row = [
            self.label,
            str(self.crops),
            str(self.num_images),
            str(self.num_skipped),
            f"{self.top1_error:.2f} %",
            f"{self.top5_error:.2f} %",
            f"{self.top1_accuracy:.2f} %",
            f"{self.top5_accuracy:.2f} %",
            f"{self.loss:.4f}",
        ]
        lines = table(header, [row], pad=True).split("\n")
        lines.append(
            f"{self.num_images} images in {self.seconds:.1f} s ({self.images_per_second:.1f} images/s)"
            + (f" on {self.dataset}" if self.dataset else "")
        )
        if self.per_class_accuracy:
            lines.append("")
            rows = [[name, f"{acc:.2f} %"] for name, acc in self.per_class_accuracy.items()]
            lines.extend(table(["class", "top-1 acc"], rows, pad=True).split("\n"))
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON, whole or not at all (a failure names the cause)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n", "the JSON results")

    def csv_row(self) -> dict[str, Any]:
        """One CSV row: the summary, then ``class_accuracy/<name>`` columns when per-class was computed."""
        row = {
            key: value
            for key, value in self.to_dict().items()
            if key not in ("per_class_accuracy", "skipped_files", "run")
        }
        row["models"] = " + ".join(self.models)
        row["ensemble_weights"] = " ".join(f"{w:.6g}" for w in self.ensemble_weights)
        for name, accuracy in (self.per_class_accuracy or {}).items():
            row[f"class_accuracy/{name}"] = accuracy
        return row

    def write_csv(self, path: str | Path) -> None:
        """Write :meth:`csv_row` with its header, whole or not at all (a failure names the cause)."""
        row = self.csv_row()
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
        write_text_atomic(path, buffer.getvalue(), "the CSV results")


# -- metric arithmetic ----------------------------------------------------------------------------------
class MetricAccumulator:
    """Running top-1/top-5 hits, loss and per-class counts from log-probabilities and labels."""

    def __init__(self, classes: Sequence[str] | None = None, *, per_class: bool = False, keep: bool = False):
        self.classes = list(classes) if classes is not None else None
        self.per_class = per_class
        self.keep = keep
        self.count = 0
        self.top1 = 0
        self.top5 = 0
        self.nll = 0.0
        self.k = 5
        self.class_hits: torch.Tensor | None = None
        self.class_totals: torch.Tensor | None = None
        self.kept_probs: list[torch.Tensor] = []
        self.kept_targets: list[torch.Tensor] = []

    def update(self, log_probs: torch.Tensor, labels: torch.Tensor) -> None:
        log_probs = log_probs.detach().float().cpu()
        labels = labels.detach().cpu().long()
        num_classes = log_probs.shape[1]
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"a label ({int(labels.max())}) is outside the model's {num_classes} classes; build the model "
                "with as many classes as the data has"
            )
        self.k = min(5, num_classes)
        ranked = log_probs.topk(self.k, dim=1).indices
        hits1 = ranked[:, 0] == labels
        self.count += labels.numel()
        self.top1 += int(hits1.sum())
        self.top5 += int((ranked == labels[:, None]).any(1).sum())
        self.nll -= float(log_probs.gather(1, labels[:, None]).clamp_min(-1e4).sum())
        if self.per_class:
            if self.class_hits is None:
                self.class_hits = torch.zeros(num_classes, dtype=torch.long)
                self.class_totals = torch.zeros(num_classes, dtype=torch.long)
            self.class_totals += torch.bincount(labels, minlength=num_classes)
            self.class_hits += torch.bincount(labels[hits1], minlength=num_classes)
        if self.keep:
            self.kept_probs.append(log_probs.exp())
            self.kept_targets.append(labels)

    def per_class_accuracy(self) -> dict[str, float] | None:
        if not self.per_class or self.class_totals is None:
            return None
        names = self.classes or [str(i) for i in range(len(self.class_totals))]
        return {
            names[i]: 100.0 * int(self.class_hits[i]) / int(total)
            for i, total in enumerate(self.class_totals)
            if total > 0
        }

    def result(self, **details: Any) -> EvalResult:
        if self.count == 0:
            raise ValueError("no image could be evaluated (all files were skipped or the data is empty)")
        return EvalResult(
            top1_accuracy=100.0 * self.top1 / self.count,
            top5_accuracy=100.0 * self.top5 / self.count,
            num_images=self.count,
            loss=self.nll / self.count,
            top5_k=self.k,
            per_class_accuracy=self.per_class_accuracy(),
            probabilities=torch.cat(self.kept_probs) if self.keep else None,
            targets=torch.cat(self.kept_targets) if self.keep else None,
            **details,
        )


def ensemble_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Weights normalised to sum 1 (equal when ``None``); checked for length and sign."""
    if weights is None:
        return [1.0 / count] * count
    values = [float(w) for w in weights]
    if len(values) != count:
        raise ValueError(f"{len(values)} ensemble weights given for {count} models; give one per model")
    if any(w < 0 or not math.isfinite(w) for w in values) or sum(values) <= 0:
        raise ValueError(f"ensemble weights must be non-negative with a positive sum, got {values}")
    total = sum(values)
    return [w / total for w in values]


def average_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``(B, V, K)`` logits -> ``(B, K)`` log of the softmax averaged over the V views."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return torch.logsumexp(log_probs, dim=1) - math.log(logits.shape[1])


def combine_members(member_log_probs: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Log of the weighted mean of the members' probabilities (weights summing to 1)."""
    stacked = torch.stack(
        [
            lp + math.log(w) if w > 0 else torch.full_like(lp, -math.inf)
            for lp, w in zip(member_log_probs, weights, strict=True)
        ]
    )
    return torch.logsumexp(stacked, dim=0)
