#!/usr/bin/env bash
# Make segue-open, the model trained only on CC0 music, into $SEGUE_HOME/models/segue-open
# (default ~/.segue/models), where `--model segue-open` finds it. Its weights are not in git
# (only the default model's are); this is their recipe. Card: docs/models/segue-open.md.
#
#   bash scripts/make_segue_open.sh                   from the repository root or anywhere
#   bash scripts/make_segue_open.sh --threads 2       more threads, or any other `segue train`
#                                                     option (given last, so it wins)
#
# A GPT-2 of 6.9M parameters from random weights on the OpenScore Lieder (CC0 1.0, 1,460 songs
# for voice and piano; $LIEDER, default ../shared/corpora/openscore-lieder beside the
# repository), 1,157 steps of 8 x 512 characters, a fifth of them fill-in-the-middle windows.
# On one thread of a 2-core x86-64 CPU: about 35 minutes of both cores to read the songs the
# first time (cached in $SEGUE_HOME/cache), then about 70 minutes of training. Interrupted, it
# resumes from its last checkpoint when run again. It ends by recording the sampling chosen on
# validation (temperature 1.0, top_p 0.9, chord tones 1.5) in the model's config.json.
set -euo pipefail
cd "$(dirname "$0")/.."
LIEDER=${LIEDER:-$PWD/../shared/corpora/openscore-lieder}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
RUN="${SEGUE_HOME:-$HOME/.segue}/models/segue-open"
if [ ! -d "$LIEDER" ]; then
    echo "make_segue_open: no OpenScore Lieder at $LIEDER; set LIEDER to the folder" >&2
    exit 1
fi
RESUME=()
[ -f "$RUN/checkpoint/config.json" ] && RESUME=(--resume)

"$PYTHON" -m bridge train --preset gpt2-6m --no-corpus --data "$LIEDER" --fill 0.2 \
    --block-size 512 --batch-size 8 --lr 1e-3 --warmup 100 --steps 1157 --seed 1337 \
    --out "$RUN" "${RESUME[@]}" "$@"
"$PYTHON" -c 'import sys
from pathlib import Path
from engine.models.checkpoint import checkpoint_folder, write_sampling_defaults
write_sampling_defaults(checkpoint_folder(Path(sys.argv[1])),
                        {"temperature": 1.0, "top_p": 0.9, "chord_tones": 1.5})' "$RUN"
echo "segue-open is ready in $RUN: segue continue tune.abc --model segue-open"
