"""The model zoo: the public DBP diffusion networks and classifiers, built from their original configurations and
loaded from the users' checkpoint files without running pickled code, plus the embedded MNIST models.

`build(name_or_family, ...)` gives random weights; `load(name, path=None, **overrides)` loads a checkpoint strictly
(None: the embedded weights); `spec(name)` says what a registry model is (ε-network and its time label, denoiser,
or classifier). See `ssni.models.registry` for the names and the file conventions.
"""

from ssni.models.checkpoint import CheckpointError
from ssni.models.convert import convert_to_safetensors
from ssni.models.registry import FAMILIES, PRESETS, ModelSpec, build, load, spec, weights_id

__all__ = [
    "FAMILIES",
    "PRESETS",
    "CheckpointError",
    "ModelSpec",
    "build",
    "convert_to_safetensors",
    "load",
    "spec",
    "weights_id",
]
