#!/usr/bin/env bash
# Fill .whl/ with the wheels bench/gpu_check.sh installs on a GPU machine that has no package registry:
# TRL and datasets (the TRL side of the bench), pytest (the gpu tests), click and matplotlib (`train`, `eval`).
# The GPU image already has torch, transformers, accelerate, numpy, huggingface-hub, tqdm, pyyaml, jinja2.
#
#   bash bench/gpu_wheels.sh 3.12        # the GPU machine's Python version (bench/gpu_check.sh prints it)
#
# Binary wheels (pyarrow ~40 MB, pandas, matplotlib, xxhash) are for that Python on manylinux x86_64;
# the whole folder is about 70 MB, so leave out what the image already has (SKIP="matplotlib ...").
set -eu
PYVER=${1:?usage: bash bench/gpu_wheels.sh PYTHON_VERSION (e.g. 3.12)}
cd "$(dirname "$0")/.."
mkdir -p .whl
PKGS="trl datasets pyarrow pandas python-dateutil six tzdata dill multiprocess xxhash fsspec filelock psutil
      pytest iniconfig pluggy packaging click matplotlib contourpy cycler fonttools kiwisolver pillow pyparsing"
for p in $PKGS; do
    case " ${SKIP:-} " in *" $p "*) continue ;; esac
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        --dest .whl "$p"
done
du -sh .whl
