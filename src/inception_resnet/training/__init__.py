"""Training: ``train(TrainConfig(...))`` and its parts (see :mod:`.trainer` for the recipes and the run directory).

* :mod:`.config` - :class:`TrainConfig` and the recipes; :mod:`.trainer` - ``train`` and the loop;
* :mod:`.setup` - from a configuration to the run's parts (:mod:`.parts`: network, loaders, optimiser,
  schedule, averaged weights, :mod:`.progress`), with :mod:`.run_data` (the datasets and their checks) and
  :mod:`.resume` (the run directory and what to resume from);
* :mod:`.checkpoint_state` - what a checkpoint holds, saved and restored; :mod:`.checkpoint` - checkpoint files;
* :mod:`.validation` - validation during training (step-0 and every-N-step, BatchNorm statistics recomputed);
* :mod:`.step` - one optimiser step; :mod:`.summary` - what a run reports; :mod:`.rundir` - the run
  directory's files;
* :mod:`.optimizers`, :mod:`.ema`, :mod:`.distributed`, :mod:`.rng`, :mod:`.finetune`, :mod:`.probes`,
  :mod:`.stopping` (signals, non-finite errors), :mod:`.plots` (training curves of runs, drawn).

Its layer (beside ``evaluation/``, above ``data/``) and the path from a model name to a trained
checkpoint: docs/architecture.md.
"""

from .checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from .config import RECIPES, TrainConfig, config_for_resume, field_help, field_types
from .ema import ModelEma
from .finetune import freeze_body, load_pretrained
from .optimizers import LRSchedule, RMSpropTF, build_optimizer, param_groups, scale_lr
from .probes import ProbeContext, StepProbe
from .rundir import RunLog, load_run_config
from .step import StepRunner, TrainingModule, classification_loss
from .stopping import CRASH_ENV, NonFiniteLossError, StopRequest
from .summary import TrainSummary
from .trainer import Trainer, train
from .validation import recompute_batchnorm

__all__ = [
    "CRASH_ENV",
    "RECIPES",
    "CheckpointManager",
    "LRSchedule",
    "ModelEma",
    "NonFiniteLossError",
    "ProbeContext",
    "RMSpropTF",
    "RunLog",
    "StepProbe",
    "StepRunner",
    "StopRequest",
    "TrainConfig",
    "TrainSummary",
    "Trainer",
    "TrainingModule",
    "build_optimizer",
    "classification_loss",
    "config_for_resume",
    "field_help",
    "field_types",
    "freeze_body",
    "load_checkpoint",
    "load_pretrained",
    "load_run_config",
    "param_groups",
    "recompute_batchnorm",
    "save_checkpoint",
    "scale_lr",
    "train",
]
