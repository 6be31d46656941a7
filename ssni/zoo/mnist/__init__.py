"""The embedded MNIST default: its trainers (`train`, the `ssni train-*` commands) and model-card numbers
(`model_card`, `python -m ssni.zoo.mnist.model_card`). The weights load with `ssni.models.load("mnist-ddpm")` and
`ssni.models.load("mnist-classifier")`; `CALIBRATION` is the clean-statistics file made for the shipped `mnist-ddpm`.
"""

from ssni.models.registry import EMBEDDED_WEIGHTS_DIR

CALIBRATION = EMBEDDED_WEIGHTS_DIR / "mnist_calibration.json"

__all__ = ["CALIBRATION"]
