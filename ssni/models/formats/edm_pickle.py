"""NVlabs/edm network pickles (e.g. `edm-cifar10-32x32-uncond-vp.pkl`): a one-time, explicit conversion to safetensors.

The `.pkl` is a pickle of `dict(ema=<EDMPrecond module>, loss_fn=..., augment_pipe=..., dataset_kwargs=...)` written
with `torch_utils.persistence` (the class source is embedded), so reading it runs code: it is the one file ssni
unpickles, and only here, on request.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path

from ssni.models.checkpoint import CheckpointError, save_safetensors

__all__ = ["convert_edm_pickle"]


def convert_edm_pickle(
    src: str | Path, dst: str | Path, *, edm_repo: str | Path, key: str = "ema", name: str = "cifar10-edm-uncond-vp"
) -> Path:
    """One-time conversion of an NVlabs/edm network pickle to safetensors.

    THIS UNPICKLES `src`, which executes code embedded in the file: run it only on files you trust. `edm_repo` is
    your NVlabs/edm checkout; it is on `sys.path` only during the call (unpickling needs its `dnnlib` and
    `torch_utils`). Writes `pickle[key].state_dict()` (floating tensors as fp32) with metadata `ssni_model=name`,
    `edm_class` (the preconditioning class: only EDMPrecond loads, since VPPrecond/VEPrecond have the same keys
    but compute another function) and `edm_init_kwargs` (JSON of the constructor arguments, when available).
    """
    src, dst, edm_repo = Path(src), Path(dst), Path(edm_repo)
    if not src.is_file():
        raise FileNotFoundError(f"src: {src} does not exist")
    if not (edm_repo / "torch_utils").is_dir() or not (edm_repo / "dnnlib").is_dir():
        raise ValueError(f"edm_repo: {edm_repo} is not an NVlabs/edm checkout (needs dnnlib/ and torch_utils/)")
    sys.path.insert(0, str(edm_repo))
    try:
        with open(src, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - explicit, documented opt-in
    finally:
        sys.path.remove(str(edm_repo))
    if not isinstance(data, Mapping) or key not in data:
        found = list(data) if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(f"src: {src} has no {key!r} entry (found {found})")
    net = data[key]
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    metadata = {"ssni_model": name, "source": src.name, "edm_key": key, "edm_class": type(net).__name__}
    init_kwargs = getattr(net, "init_kwargs", None)
    if init_kwargs is not None:
        try:
            metadata["edm_init_kwargs"] = json.dumps(dict(init_kwargs))
        except TypeError:
            pass  # non-JSON kwargs: the strict load still checks the structure
    return save_safetensors(tensors, dst, metadata)
