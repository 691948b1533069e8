"""Evaluation: top-1/top-5 error over a dataset (crop sets, ensembles), and classifying image files.

* :mod:`.evaluate` - ``evaluate`` (the paper's protocol) and ``evaluate_loader`` (per-epoch validation);
* :mod:`.forward` - running the models: autocast, the view-averaged softmax, ``predict_probabilities``;
* :mod:`.class_check` - the model's classes against the data's, in number and in name;
* :mod:`.metrics` - :class:`EvalResult` and the running sums behind it;
* :mod:`.predict` - ``predict_files``: the top classes of image files.

Its layer (beside ``training/``, above ``data/``) and the path from a weights file to a prediction:
docs/architecture.md.
"""

from .evaluate import evaluate, evaluate_loader
from .metrics import EvalResult
from .predict import PredictFailure, Prediction, class_names, format_predictions, imagenet_classes, predict_files

__all__ = [
    "EvalResult",
    "PredictFailure",
    "Prediction",
    "class_names",
    "evaluate",
    "evaluate_loader",
    "format_predictions",
    "imagenet_classes",
    "predict_files",
]
