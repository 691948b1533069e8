"""What a network records about itself for the users of its weights: :class:`ModelMetadata` (input geometry,
preprocessing, provenance), :class:`FeatureInfo` (one feature level of ``features_only``), and the same facts
in timm's ``pretrained_cfg`` keys (:func:`timm_pretrained_cfg`), so that
``timm.data.resolve_data_config({}, model=model)`` and ``timm.data.create_transform`` reproduce the model's
own evaluation preprocessing.

:class:`~inception_resnet.models.base.InceptionNet` holds them; see docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class FeatureInfo:
    """One feature level of ``features_only``: the module it taps, its channels and nominal stride."""

    module: str
    num_chs: int
    reduction: int


@dataclass(frozen=True)
class ModelMetadata:
    """What a user of the weights needs to know: input geometry, preprocessing, provenance."""

    name: str
    source: str
    input_size: tuple[int, int, int] = (3, 299, 299)
    min_input_size: int = 75
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    crop_pct: float = 0.875
    crop_mode: str = "center"
    interpolation: str = "bicubic"
    num_classes: int = 1000
    label_offset: int = 0
    weights: str | None = None
    extra: dict = field(default_factory=dict)

    def with_updates(self, **changes) -> ModelMetadata:
        return replace(self, **changes)


def timm_pretrained_cfg(
    meta: ModelMetadata, architecture: str, num_classes: int, first_conv: str | None, classifier: str | None
) -> dict:
    """The preprocessing and provenance of ``meta`` in timm's ``pretrained_cfg`` keys (a new dict).

    ``crop_mode`` is timm's name for the evaluation geometry ("center", "squash"); TF-slim's
    central-fraction crop (our "tf" crop mode) is timm's "squash" (both sides scaled to ``size / crop_pct``,
    then the centre crop), which gives the same region and scale up to rounding.
    """
    crop_mode = "squash" if meta.crop_mode == "tf" else meta.crop_mode
    hub_id = meta.extra.get("hub_tag")
    return {
        "architecture": architecture,
        "tag": hub_id.split(".", 1)[1] if hub_id and "." in hub_id else None,
        "hf_hub_id": hub_id,
        "source": meta.source,
        "weights": meta.weights,
        "input_size": tuple(meta.input_size),
        "fixed_input_size": False,
        "min_input_size": (meta.input_size[0], meta.min_input_size, meta.min_input_size),
        "interpolation": meta.interpolation,
        "crop_pct": meta.crop_pct,
        "crop_mode": crop_mode,
        "mean": tuple(meta.mean),
        "std": tuple(meta.std),
        "num_classes": num_classes,
        "label_offset": meta.label_offset,
        "first_conv": first_conv,
        "classifier": classifier,
    }
