"""The model zoo: the public DBP diffusion networks and classifiers, built from their original configurations and
loaded from the users' checkpoint files without running pickled code.

`build(name_or_family, ...)` gives random weights; `load(name, path, **overrides)` loads a checkpoint strictly;
`spec(name)` says what a registry model is (ε-network and its time label, denoiser, or classifier).
See `ssni.models.registry` for the names and the file conventions.
"""

from ssni.models.convert import CheckpointError, convert_to_safetensors
from ssni.models.registry import FAMILIES, PRESETS, ModelSpec, build, load, spec

__all__ = ["FAMILIES", "PRESETS", "CheckpointError", "ModelSpec", "build", "convert_to_safetensors", "load", "spec"]
