"""The small trained network the inference checks run on: GoogLeNet (or another model) at a fraction of its width,
trained by our own trainer on 2,048 Fashion-MNIST images for 3 epochs at 75 px.

Its outputs are those of a network that learned something (a random one gives near-ties that make top-1
agreement meaningless), and it trains in well under a minute on two cores. The precision and deployment tests
(``tests/conftest.py``) and ``benchmarks/int8_export_agreement.py`` share it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..training import TrainConfig, train

__all__ = ["train_fashion_network"]


def train_fashion_network(
    run_dir: str | os.PathLike, model: str = "googlenet", width: float = 0.25, threads: int = 1
) -> Path:
    """Train the network into ``run_dir``; returns its best checkpoint (a RuntimeError if training did not end)."""
    run = train(
        TrainConfig.from_dict(
            dict(
                model=model,
                model_options={"width_multiplier": width},
                data="fashion-mnist",
                input_size=75,
                max_train_images=2048,
                max_val_images=500,
                epochs=3,
                batch_size=32,
                recipe="sgd",
                lr=1.6,
                warmup_epochs=0.0,
                ema_decay=0.0,
                color_distortion=False,
                threads=threads,
                num_workers=0,
                deterministic=True,
                progress=False,
                tensorboard=False,
                log_every_steps=0,
                run_dir=str(run_dir),
            )
        )
    )
    if run.best_checkpoint is None:
        raise RuntimeError(f"training ended {run.status}; no trained network")
    return Path(run.best_checkpoint)
