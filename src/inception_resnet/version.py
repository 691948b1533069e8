"""The package version: one place, at the bottom layer, read by ``inception_resnet.__version__``,
:mod:`inception_resnet.environment` and the packaging metadata (pyproject.toml). See docs/architecture.md."""

__version__ = "0.1.0"
