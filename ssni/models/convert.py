"""`python -m ssni.models.convert NAME SRC DST`: convert a user's checkpoint to an ssni safetensors file.

Any registry model's checkpoint is loaded with that model's conventions (checked strictly) and its state dict
written with metadata `ssni_model=NAME`; `ssni.models.load(NAME, DST)` reads it back. `--edm-repo PATH` converts an
NVlabs/edm `.pkl` instead (this unpickles the file: see `ssni.models.formats.edm_pickle`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ssni.models.checkpoint import CheckpointError, save_safetensors
from ssni.models.formats.edm_pickle import convert_edm_pickle
from ssni.models.registry import load, spec

__all__ = ["convert_to_safetensors", "main"]


def convert_to_safetensors(name: str, src: str | Path, dst: str | Path, **load_options) -> Path:
    """Load `src` as registry model `name` (its conventions, strict checks) and write its state dict to `dst`.

    The file records `ssni_model=name` in its metadata; `ssni.models.load(name, dst)` reads it back. Returns dst."""
    if spec(name).family == "adm":
        load_options.setdefault("use_fp16", False)  # keep the file fp32 like the original; load() converts again
    model = load(name, src, **load_options)
    return save_safetensors(model.state_dict(), dst, {"ssni_model": name, "source": Path(src).name})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssni.models.convert", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="registry name, e.g. cifar10-ddpmpp-deep-continuous")
    parser.add_argument("src", help="original checkpoint file (or diffusers folder)")
    parser.add_argument("dst", help="output .safetensors file")
    parser.add_argument("--edm-repo", help="NVlabs/edm checkout: convert an EDM .pkl (UNPICKLES the file)")
    args = parser.parse_args(argv)
    try:
        if args.edm_repo:
            out = convert_edm_pickle(args.src, args.dst, edm_repo=args.edm_repo, name=args.name)
        else:
            out = convert_to_safetensors(args.name, args.src, args.dst)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
