"""Train a GPT-2 or Mamba model on ABC tunes: music21's corpus and/or your own folders.

Tunes are read in the canonical form Segue's prompts take (music21 + Segue's ABC writer); that
conversion is cached in $SEGUE_HOME/cache (default ~/.segue/cache), so only the first run pays
for it. The run folder (--out, default $SEGUE_HOME/models/NAME) gets checkpoint/ (the latest,
for --resume), best/ (lowest validation loss, float16: the one to use or ship), metrics.jsonl
and loss.png. `segue continue --model NAME` then finds the model by name.

examples:
  segue train                                    gpt2-6m on the bundled corpus (~13,000 tunes)
  segue train --preset mamba-6m --steps 20000 --name my-mamba
  segue train --data ~/tunes --no-corpus --name mine     only your folder (ABC, MusicXML, MIDI)
  segue train --architecture gpt2 --layers 4 --width 128 --heads 4 --block-size 128
  segue train --init-from segue-gpt2-6m --name better    start from the shipped weights
  segue train --name my-mamba --resume           continue after an interruption (or kill)
  segue train --name my-mamba --resume --steps 40000    ... and train for longer
  segue train --limit-tunes 200 --steps 50 --out /tmp/try   a quick try
  segue train --preset gpt2-6m --steps 1000000 --minutes 480 --threads 1   8 hours, then stop
  torchrun --nproc_per_node 4 -m bridge train --preset gpt2-60m     several GPUs (DDP)

Presets: gpt2-6m, gpt2-60m, mamba-6m, mamba-60m (about 6M and 60M parameters). The batch
size is per process; the learning rate warms up for --warmup steps, then decays (cosine) to a
tenth. On CUDA, training runs in bf16 (fp16 where bf16 is missing). A kill loses at most the
steps since the last checkpoint; --resume continues exactly where that checkpoint was.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from bridge.cli import PRESET_NAMES, show_engine_notices

SUMMARY = "train a model on the bundled corpus and/or your own folders of tunes"

# Options that map onto engine.training.train.TrainConfig fields of the same name (dest).
CONFIG_OPTIONS = ("preset", "architecture", "layers", "width", "heads", "dropout", "data",
                  "limit_tunes", "augment", "fill", "block_size", "batch_size", "steps",
                  "minutes", "lr", "warmup", "weight_decay", "grad_clip", "eval_every",
                  "eval_batches", "checkpoint_every", "log_every", "seed", "init_from",
                  "device", "threads", "workers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--preset", choices=PRESET_NAMES,
                       help="a named size (default gpt2-6m unless --architecture is given)")
    model.add_argument("--architecture", choices=["gpt2", "mamba"],
                       help="build your own size with --layers/--width (and --heads for gpt2)")
    model.add_argument("--layers", type=int, help="number of layers")
    model.add_argument("--width", type=int, help="embedding (hidden) size")
    model.add_argument("--heads", type=int, help="attention heads (gpt2)")
    model.add_argument("--dropout", type=float, help="dropout (gpt2; default 0)")
    model.add_argument("--init-from", metavar="MODEL",
                       help="start from this model's weights (a name or checkpoint folder; "
                            "same architecture and sizes, the vocabulary may grow) instead "
                            "of random ones")

    data = parser.add_argument_group("data")
    data.add_argument("--data", action="append", metavar="DIR",
                      help="a folder of ABC, MusicXML or MIDI files (repeatable)")
    data.add_argument("--no-corpus", dest="bundled", action="store_false", default=None,
                      help="leave out music21's bundled corpus (train on --data only)")
    data.add_argument("--limit-tunes", type=int, metavar="N",
                      help="use only the first N training tunes (and N/10 validation tunes)")
    data.add_argument("--augment", type=int, metavar="K",
                      help="add K transpositions of each training tune (0-6; default 0)")
    data.add_argument("--fill", type=float, metavar="SHARE",
                      help="share of training windows made into fill-in-the-middle examples, "
                           "so the model can fill a gap (0-1; default 0)")

    run = parser.add_argument_group("training")
    run.add_argument("--block-size", type=int, help="context length in tokens (default 256)")
    run.add_argument("--batch-size", type=int, help="sequences per step and process (16)")
    run.add_argument("--steps", type=int, help="optimizer steps in all (default 5000)")
    run.add_argument("--minutes", type=float,
                     help="a time budget: stop after this many minutes of training (all "
                          "sessions of the run together), the learning rate decaying over it")
    run.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    run.add_argument("--warmup", type=int, help="warmup steps (default 200)")
    run.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.1)")
    run.add_argument("--grad-clip", type=float, help="gradient norm clip (default 1.0)")
    run.add_argument("--seed", type=int, help="random seed (default 1337)")

    output = parser.add_argument_group("output")
    output.add_argument("--name", help="the model's name (default: the preset)")
    output.add_argument("--out", metavar="DIR",
                        help="run folder (default $SEGUE_HOME/models/NAME)")
    output.add_argument("--resume", action="store_true",
                        help="continue the run in the run folder from its last checkpoint")
    output.add_argument("--eval-every", type=int, help="validate every N steps (250)")
    output.add_argument("--eval-batches", type=int, help="validation batches (default 20)")
    output.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps (500)")
    output.add_argument("--log-every", type=int, help="log metrics every N steps (10)")
    output.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no progress bar (for logs)")

    machine = parser.add_argument_group("machine")
    machine.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                         help="where to train (default auto: cuda, mps, then cpu)")
    machine.add_argument("--threads", type=int, help="CPU threads for torch")
    machine.add_argument("--workers", type=int,
                         help="processes for the one-time ABC conversion (default 2)")


def run(args: argparse.Namespace) -> int:
    from engine.errors import SegueError
    from engine.home import segue_home
    from engine.training.train import TrainConfig, train

    given = {name for name in (*CONFIG_OPTIONS, "bundled", "progress")
             if getattr(args, name) is not None}
    values = {name: getattr(args, name) for name in given}
    if args.architecture and not args.preset:
        values["preset"] = None
    if values.get("minutes") is not None and values["minutes"] <= 0:
        raise SegueError("--minutes must be above 0")
    for name in ("steps", "batch_size", "block_size", "eval_every", "checkpoint_every",
                 "log_every", "eval_batches"):
        if name in values and values[name] < 1:
            raise SegueError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= values.get("fill", 0) <= 1:
        raise SegueError("--fill is a share of the windows, from 0 to 1")
    if not 0 <= values.get("augment", 0) <= 6:
        raise SegueError("--augment must be between 0 and 6 transpositions")
    name = args.name or values.get("preset", "gpt2-6m") or f"{args.architecture}-custom"
    out = args.out or str(segue_home() / "models" / name)
    command = shlex.join(["segue", *sys.argv[1:]])
    show_engine_notices()
    train(TrainConfig(out=out, command=command, **values), given, resume=args.resume)
    return 0
