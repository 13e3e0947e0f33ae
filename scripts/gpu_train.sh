#!/usr/bin/env bash
# Train the largest model Segue can ship on one GPU in 10 minutes, and leave its checkpoint in
# $OUT in pieces of at most 15 MB (the device tool brings back files of at most 16 MB).
#
# The model: GPT-2, 12 layers of width 320 (about 15M parameters, under 30 MB in float16),
# 1,024-character windows, on the bundled corpus and the CC0 collections, with a fifth of the
# windows made fill-in-the-middle examples, from random weights (no smaller model's weights
# fit it), for 9.5 minutes with the learning rate decaying over that time.
#
#   bash scripts/gpu_train.sh                  on the GPU machine, from the repository root
#   TINY=1 bash scripts/gpu_train.sh           the same steps at tiny size on a CPU (tested)
#
# Converting the corpus takes minutes on a fresh machine: build the cache here first with
# SEGUE_HOME=$PWD/.gpu-home segue corpus --stats --data ../shared/corpora/openscore-lieder \
#   --data ../shared/corpora/openscore-string-quartets
# and carry .gpu-home to the GPU machine. Put the pieces back together with
#   cat model.safetensors.part-* > model.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
export SEGUE_HOME=${SEGUE_HOME:-$PWD/.gpu-home}
CORPORA=${CORPORA:-$PWD/../shared/corpora}
RUN=$(mktemp -d)
PYTHON=${PYTHON:-python}

if [ "${TINY:-0}" = 1 ]; then
    SIZE=(--architecture gpt2 --layers 2 --width 32 --heads 2 --block-size 64 --batch-size 4
          --limit-tunes 30 --minutes "${MINUTES:-0.1}" --eval-every 5 --eval-batches 2
          --threads 1 --workers 1)
else
    SIZE=(--architecture gpt2 --layers 12 --width 320 --heads 5 --block-size 1024
          --batch-size 64 --augment 2 --fill 0.2 --minutes "${MINUTES:-9.5}" --eval-every 200
          --eval-batches 40 --checkpoint-every 500 --workers "$(nproc)"
          --data "$CORPORA/openscore-lieder" --data "$CORPORA/openscore-string-quartets")
fi

"$PYTHON" -m bridge train "${SIZE[@]}" --steps 1000000 --lr 1e-3 --warmup 100 --no-progress \
    --out "$RUN"
mkdir -p "$OUT"
cp "$RUN/best/config.json" "$RUN/best/tokenizer.json" "$RUN/metrics.jsonl" "$OUT/"
split -b 15M -d "$RUN/best/model.safetensors" "$OUT/model.safetensors.part-"
sha256sum "$RUN/best/model.safetensors" | cut -d' ' -f1 > "$OUT/model.safetensors.sha256"
rm -rf "$RUN"
ls -l "$OUT"
