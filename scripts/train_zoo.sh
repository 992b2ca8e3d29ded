#!/usr/bin/env bash
# Reproduce every model of the advkit zoo from its recipe (recipes/NAME.toml).
#
#   scripts/train_zoo.sh                 # all models, one after another
#   scripts/train_zoo.sh mnist5k-pgdat   # just these
#
# Each run is checkpointed in $CKPT_DIR/NAME (resumable: rerun the script after an interruption) and
# writes src/advkit/zoo/checkpoints/NAME.safetensors with the recipe and test metrics in its metadata.
# Training is deterministic for a fixed seed and thread count; the shipped files were trained on CPU
# with OMP_NUM_THREADS=1 (timings in benchmarks/README.md, "Training").
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
ADVKIT="${ADVKIT:-advkit}"
CKPT_DIR="${CKPT_DIR:-.zoo-checkpoints}"
OUT_DIR="src/advkit/zoo/checkpoints"
MODELS=(mnist5k-standard mnist5k-pgdat mnist5k-noise0.25 mnist5k-trades mnist5k-noise0.5 fmnist-standard fmnist-pgdat)
[ "$#" -gt 0 ] && MODELS=("$@")

for name in "${MODELS[@]}"; do
  echo "== $name"
  "$ADVKIT" train "recipes/$name.toml" --name "$name" --out "$OUT_DIR/$name.safetensors" \
    --checkpoint-dir "$CKPT_DIR/$name" --resume-or-start --no-progress
done
