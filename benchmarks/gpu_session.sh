#!/usr/bin/env bash
# The prepared GPU run (issue 13): one call of the device tool, about 8 minutes on one H200.
#
#   here:   bash benchmarks/gpu_wheels.sh            # once: the wheels the GPU machine lacks, into .whl/
#   device: run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=600)
#
# Writes under $OUT: env.txt, cuda_tests.txt (the CUDA-marked tests), passes_cuda.txt (PreActResNet-18
# µs per image: eager, channels-last, frozen, bf16 autocast) and attacks_cuda.txt/.json (AutoAttack,
# APGD-CE and Square vs the official code and torchattacks at the same budgets, 500 MNIST images).
# Each step has its own time limit, so one that hangs cannot take the others' results with it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/advkit-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH="$PWD/src"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  python3 -c "import advkit, sys; print('advkit', advkit.__version__, sys.version.split()[0])"; } 2>&1 | tee "$OUT/env.txt"
echo "== CUDA-marked tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider -m cuda -rs tests/gpu tests/unit/test_rng.py 2>&1 | tee "$OUT/cuda_tests.txt"
echo "== PreActResNet-18 passes on the GPU"
timeout 90 python3 benchmarks/bench_scale.py passes --device cuda --batches 32,128,512 --reps 10 2>&1 | tee "$OUT/passes_cuda.txt"
echo "== attacks vs peers on the GPU (same budgets)"
timeout 300 python3 benchmarks/bench_attacks.py --device cuda --n 500 --threads 8 --only autoattack,apgd-ce,square \
  --libs advkit,pyautoattack,torchattacks --json "$OUT/attacks_cuda.json" 2>&1 | tee "$OUT/attacks_cuda.txt"
echo "== done"
