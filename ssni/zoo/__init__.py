"""The embedded default models: how they were made (training and model-card scripts, kept out of the library
proper), and the files that ship with their weights."""

from __future__ import annotations

from pathlib import Path

__all__ = ["embedded_calibration"]


def embedded_calibration(model_name: str) -> Path | None:
    """The calibration file shipped for the embedded weights of registry model `model_name`, or None."""
    from ssni.zoo.mnist import CALIBRATION

    return {"mnist-ddpm": CALIBRATION}.get(model_name)
