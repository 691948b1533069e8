"""The networks; importing this package registers them with :mod:`inception_resnet.registry`."""

from . import inception_v4  # noqa: F401
