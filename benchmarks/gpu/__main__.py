"""`python -m benchmarks.gpu [--quick | --dry-run] OUT_DIR` (see benchmarks/gpu/__init__.py)."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path

from benchmarks.gpu import __doc__ as DESCRIPTION
from benchmarks.gpu.profiles import DRY_RUN, FULL, QUICK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", type=Path, help="folder for the results (.json, .md) and the log")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the 8-minute device check")
    size.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: every path that runs without CUDA")
    args = parser.parse_args(argv)
    profile = DRY_RUN if args.dry_run else QUICK if args.quick else FULL

    import torch

    if profile.device == "cuda" and not torch.cuda.is_available():
        print("python -m benchmarks.gpu needs a CUDA device (torch.cuda.is_available() is False); use --dry-run to "
              "check it on a CPU.", file=sys.stderr)  # fmt: skip
        return 2
    from benchmarks.gpu.results import markdown
    from benchmarks.gpu.run import Runner

    # A TERM (e.g. a job's time limit) unwinds like Ctrl-C, so that the running part and the build are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    data = Runner(profile, args.out_dir, shlex.join(["python", "-m", "benchmarks.gpu", *argv])).run()
    print("\n" + markdown(data))
    print(f"results: {args.out_dir}/gpu-{profile.name}-*.{{json,md,log}}")
    failed = [p for p in data["parts"] if p["status"] in ("failed", "timed out")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
