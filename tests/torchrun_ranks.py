"""`segue train` as torchrun runs it, keeping each rank's final weights for tests/test_train.py:

    torchrun --nproc_per_node 2 tests/torchrun_ranks.py FOLDER train ARGS...

Each rank saves the weights of the model it trained to FOLDER/rank-N.pt, so the test can see
that DDP kept the ranks' copies equal (only rank 0 writes checkpoints).
"""

import os
import sys
from pathlib import Path
from typing import Any

import torch

import engine.training.train
from bridge.cli import main

built: list[torch.nn.Module] = []
build_model = engine.training.train.build_model


def build_and_keep(config: dict[str, Any]) -> torch.nn.Module:
    model = build_model(config)
    built.append(model)
    return model


if __name__ == "__main__":
    engine.training.train.build_model = build_and_keep
    status = main(sys.argv[2:])
    [model] = built
    weights = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    torch.save(weights, Path(sys.argv[1]) / f"rank-{os.environ['RANK']}.pt")
    sys.exit(status)
