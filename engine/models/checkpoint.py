"""Checkpoints: a folder with the weights, the config and the tokenizer, written atomically.

    <checkpoint>/model.safetensors   weights (float32, or float16 to ship small)
    <checkpoint>/config.json         {"format", "architecture", "preset", "model" (see
                                      engine.models.model), "tokenizer", "block_size", "dtype",
                                      "parameters", "training": {...summary}, and optionally
                                      "sampling": {"temperature", "top_p", "top_k",
                                      "chord_tones", "register_lean", "chord_fit",
                                      "drafts"}: what a request that sets none of them gets,
                                      any may be left out (`sampling_defaults`)}
    <checkpoint>/tokenizer.json
    <checkpoint>/training_state.pt   optional: optimizer, step, RNG, elapsed time (resume only)

A checkpoint is written into a hidden temporary folder beside its place and renamed into it,
so a kill at any moment leaves the previous checkpoint or the new one, never half of one (a
kill between moving the old one aside and the new one in leaves `.<name>.old`, which
`recover` puts back; a kill while writing leaves `.<name>.tmp-PID`, which `recover` removes
once that process is gone, at the next save, load or resume). Only model.safetensors,
config.json and tokenizer.json are needed to use a model; ship those three.

Models are found by name in the shipped folder engine/checkpoints/<name>/ and in
$SEGUE_HOME/models/<name>/ (default ~/.segue/models); a name may also be a path. A training run
folder (with best/ and checkpoint/ inside, as `segue train` writes) stands for its best
checkpoint. Only the default model's weights ship; others are made by a script (`RECIPES`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.errors import ParameterError, SegueError
from engine.home import segue_home
from engine.models.tokenizer import TOKENIZER_FILE, CharTokenizer
from engine.settings import LIMITS, check

FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.pt"
# The sampling of a model whose config.json names none (chord_tones:
# engine.models.chord_tones, register_lean: engine.models.register_lean, chord_fit:
# engine.models.chord_fit; 0 = off; drafts: engine.models.drafts, 1 = the first draft).
DEFAULT_SAMPLING: dict[str, float] = {"temperature": 1.0, "top_p": 0.95, "top_k": 0,
                                      "chord_tones": 0.0, "register_lean": 0.0,
                                      "chord_fit": 0.0, "drafts": 1}
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_MODEL = "segue-gpt2-6m"
TOKENIZERS = {"char": CharTokenizer}
# Models Segue knows but does not ship: the script that makes each into $SEGUE_HOME/models.
RECIPES = {"segue-open": "bash scripts/make_segue_open.sh (about 70 CPU minutes; "
                         "docs/models/segue-open.md)"}
RUN_CHECKPOINTS = ("best", "checkpoint")  # inside a training run folder, in order of preference


def load_tokenizer(folder: str | os.PathLike[str]) -> CharTokenizer:
    """The tokenizer saved in `folder`, of whatever kind its tokenizer.json names;
    SegueError ("corrupt checkpoint") if the file is not one."""
    path = Path(folder) / TOKENIZER_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
        kind = data.get("kind")
    except (OSError, ValueError, AttributeError) as error:
        raise SegueError(f"{path}: corrupt checkpoint, cannot read the tokenizer "
                         f"({error})") from None
    if kind not in TOKENIZERS:
        raise SegueError(f"{path}: corrupt checkpoint, unknown tokenizer kind {kind!r}")
    alphabet = data.get("alphabet")
    if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet):
        raise SegueError(f"{path}: corrupt checkpoint, the tokenizer has no alphabet of "
                         "distinct characters")
    return TOKENIZERS[kind].load(Path(folder))


def fsync_folder(folder: Path) -> None:
    """Flush every file of `folder`, and the folder itself, to disk."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def recover(path: Path) -> None:
    """Put back a checkpoint left aside by a kill in the middle of replacing it, and remove
    the temporary folders of writers that were killed."""
    old = path.parent / f".{path.name}.old"
    if not path.exists() and old.is_dir():
        os.replace(old, path)
    if path.parent.is_dir():
        for leftover in path.parent.glob(f".{path.name}.tmp-*"):
            if not writer_alive(leftover):
                shutil.rmtree(leftover, ignore_errors=True)


def writer_alive(folder: Path) -> bool:
    """Whether the process that named a temporary folder `.<name>.tmp-PID` may still be
    writing it (where processes cannot be asked, a folder a day old is taken for dead)."""
    pid = folder.name.rpartition("-")[2]
    if not pid.isdigit():
        return False
    if os.name != "posix":
        return time.time() - folder.stat().st_mtime < 86_400
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and is someone else's
        return True
    return True


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module,
                    tokenizer: CharTokenizer, config: dict[str, Any], *,
                    dtype: torch.dtype = torch.float32,
                    training_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint folder at `path` atomically; return its path.

    `config` holds at least "architecture", "model" and "block_size"; the format, tokenizer
    kind, dtype and parameter count are added here.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    old = path.parent / f".{path.name}.old"
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    try:
        seen: set[int] = set()
        weights = {}
        for name, tensor in model.state_dict().items():
            if tensor.data_ptr() in seen:  # tied weights (output = input embedding): once
                continue
            seen.add(tensor.data_ptr())
            weights[name] = tensor.detach().to("cpu", dtype if tensor.is_floating_point()
                                               else tensor.dtype).contiguous()
        save_file(weights, tmp / WEIGHTS_FILE, metadata={"format": "pt"})
        full = {"format": FORMAT, **config, "tokenizer": tokenizer.kind,
                "dtype": str(dtype).removeprefix("torch."),
                "parameters": sum(p.numel() for p in model.parameters())}
        (tmp / CONFIG_FILE).write_text(json.dumps(full, indent=2) + "\n", "utf-8")
        tokenizer.save(tmp)
        if training_state is not None:
            torch.save(training_state, tmp / STATE_FILE)
        fsync_folder(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def checkpoint_folder(path: Path) -> Path | None:
    """The checkpoint a folder stands for: itself, or a training run's best or last one."""
    for candidate in (path, *(path / name for name in RUN_CHECKPOINTS)):
        recover(candidate)
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return None


def model_roots() -> list[Path]:
    """Where models are looked up by name: shipped ones first, then the user's."""
    return [SHIPPED, segue_home() / "models"]


def resolve_model(name_or_path: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint folder for a model name or path (None: the default model)."""
    name = str(name_or_path or DEFAULT_MODEL)
    path = Path(name).expanduser()
    recover(path)
    if path.exists() or "/" in name or os.sep in name:
        if not path.is_dir():
            raise SegueError(f"{path}: no such checkpoint folder")
        found = checkpoint_folder(path)
        if found is None:
            raise SegueError(f"{path}: not a checkpoint (it has no {CONFIG_FILE})")
        return found
    for root in model_roots():
        if (root / name).is_dir() and (found := checkpoint_folder(root / name)) is not None:
            return found
    if (unmade := how_to_make(name)) is not None:
        raise SegueError(unmade)
    known = ", ".join(info["name"] for info in list_models()) or "none"
    raise SegueError(f"no model named {name!r} (models found: {known}); "
                     "give a checkpoint folder, or train one with `segue train`")


def how_to_make(name: str) -> str | None:
    """What to run to make a model Segue knows by name but does not ship (None: not one)."""
    recipe = RECIPES.get(name)
    return recipe and f"{name} is not shipped with Segue; make it once with {recipe}"


def read_config(folder: Path) -> dict[str, Any]:
    """A checkpoint's config.json; SegueError ("corrupt checkpoint") if it is not one."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise SegueError(f"{folder}: corrupt checkpoint, cannot read {CONFIG_FILE} "
                         f"({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise SegueError(f"{folder}: corrupt checkpoint, {CONFIG_FILE} has no model section")
    version, block_size = config.get("format", FORMAT), config.get("block_size")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SegueError(f"{folder}: corrupt checkpoint, {CONFIG_FILE} has format "
                         f"{version!r}"[:200])
    if version > FORMAT:
        raise SegueError(f"{folder}: checkpoint format {version} is newer than this "
                         "Segue understands; upgrade Segue")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise SegueError(f"{folder}: corrupt checkpoint, {CONFIG_FILE} has block_size "
                         f"{block_size!r}"[:200])
    return config


def sampling_defaults(config: dict[str, Any], folder: Path | str = "") -> dict[str, float]:
    """The sampling a checkpoint asks for when a request sets none: its config.json
    `"sampling": {"temperature": t, "top_p": p, "top_k": k, "chord_tones": w,
    "register_lean": r, "chord_fit": f, "drafts": n}` (any may be left out, each within the limits a
    request's setting has, `engine.settings.LIMITS`); SegueError if it is not such an entry."""
    entry = config.get("sampling", {})
    if not isinstance(entry, dict) or set(entry) - set(DEFAULT_SAMPLING):
        raise SegueError(f"{folder}: {CONFIG_FILE} \"sampling\" must be an object with "
                         f"{', '.join(DEFAULT_SAMPLING)} (any of them), not {entry!r}")
    for name, value in entry.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SegueError(f"{folder}: {CONFIG_FILE} sampling {name} must be a number, "
                             f"not {value!r}")
        try:
            check(name, value)
        except ParameterError as error:
            raise SegueError(f"{folder}: {CONFIG_FILE} sampling {error}") from None
    return {name: int(value) if LIMITS[name].whole else float(value)
            for name, value in entry.items()}


def write_sampling_defaults(folder: Path, sampling: dict[str, float]) -> None:
    """Record in a checkpoint's config.json the sampling it uses when a request sets none."""
    from engine.files import write_text_atomic

    config = read_config(folder)
    sampling_defaults({"sampling": sampling}, folder)  # refuse what a load would refuse
    config["sampling"] = sampling
    write_text_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")


def list_models() -> list[dict[str, Any]]:
    """Every model found by name: name, path, architecture, parameters, shipped, and the
    sampling it uses when a request sets none."""
    models = []
    for root in model_roots():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()
                             and not p.name.startswith(".")):
            found = checkpoint_folder(folder)
            if found is None:
                continue
            try:
                config = read_config(found)
                sampling = {**DEFAULT_SAMPLING, **sampling_defaults(config, found)}
            except SegueError:
                continue
            models.append({"name": folder.name, "path": str(found),
                           "architecture": config["model"].get("architecture"),
                           "parameters": config.get("parameters"),
                           "shipped": root == SHIPPED, "sampling": sampling})
    return models


def pick_device(device: str = "auto") -> torch.device:
    """"auto": CUDA, else Apple's MPS, else the CPU; or the device named."""
    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ParameterError("device", "cuda: no CUDA GPU is available here")
        if device == "mps" and not torch.backends.mps.is_available():
            raise ParameterError("device", "mps: Apple's MPS is not available here")
        if device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise SegueError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class Checkpoint:
    """A loaded model, ready for inference."""

    model: torch.nn.Module
    tokenizer: Any
    config: dict[str, Any]
    name: str
    path: Path
    device: torch.device

    @property
    def block_size(self) -> int:
        """The context length the model was trained on (tokens)."""
        return int(self.config["block_size"])


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """A checkpoint folder's model.safetensors; SegueError if it cannot be read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(folder / WEIGHTS_FILE)
    except (OSError, SafetensorError) as error:
        raise SegueError(f"{folder}: corrupt checkpoint, cannot read {WEIGHTS_FILE} "
                         f"({error})") from None


def load_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load model.safetensors into `model`; SegueError if it is damaged or does not fit."""
    weights = read_weights(folder)
    expected = model.state_dict()
    stored = {expected[n].data_ptr() for n in weights if n in expected}
    missing = {n for n, t in expected.items() if n not in weights and t.data_ptr() not in stored}
    unexpected = set(weights) - set(expected)
    wrong = [n for n in set(weights) & set(expected) if weights[n].shape != expected[n].shape]
    if missing or unexpected or wrong:
        detail = sorted(missing)[:1] or sorted(unexpected)[:1] or sorted(wrong)[:1]
        raise SegueError(f"{folder}: the weights do not fit the model in {CONFIG_FILE} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected, "
                         f"{len(wrong)} of the wrong shape, e.g. {detail[0]})")
    model.load_state_dict(weights, strict=False)


def warm_start(model: torch.nn.Module, name_or_path: str | os.PathLike[str]) -> Path:
    """Load another checkpoint's weights into a new `model` of the same shape; its folder.

    The new model's vocabulary may be larger (tokens appended at the end): the stored rows
    of the embedding are copied and the new rows keep their fresh initialization.
    """
    folder = resolve_model(name_or_path)
    weights = read_weights(folder)
    expected = model.state_dict()
    for name, stored in weights.items():
        target = expected.get(name)
        if target is None or stored.dim() != target.dim() or any(
                a > b for a, b in zip(stored.shape, target.shape, strict=True)) or (
                stored.shape[1:] != target.shape[1:]):
            raise SegueError(f"{folder}: cannot start from these weights: {name} has shape "
                             f"{tuple(stored.shape)}, the new model "
                             f"{None if target is None else tuple(target.shape)}")
        with torch.no_grad():
            target[: stored.shape[0]].copy_(stored.to(target.dtype))
    return folder


def load_checkpoint(name_or_path: str | os.PathLike[str] | None = None,
                    device: str = "auto", *, lean: bool = False) -> Checkpoint:
    """Load a model by name or path (None: the default), in eval mode and float32.

    lean: for inference only. A GPT-2 then comes as `engine.models.gpt2_fast.GPT2` (plain PyTorch,
    the same weights and numbers) and transformers is never imported, which saves seconds at
    start-up; a Mamba model is transformers' either way.
    """
    from engine.models.model import build_model

    folder = resolve_model(name_or_path)
    config = read_config(folder)
    tokenizer = load_tokenizer(folder)
    try:
        if lean and config["model"].get("architecture") == "gpt2":
            from engine.models.gpt2_fast import GPT2

            model: torch.nn.Module = GPT2(config["model"])
        else:
            model = build_model(config["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise SegueError(f"{folder}: corrupt checkpoint, bad model config ({error})") from None
    load_weights(model, folder)
    target = pick_device(device)
    model.to(target, torch.float32).eval()
    name = folder.parent.name if folder.name in RUN_CHECKPOINTS else folder.name
    return Checkpoint(model, tokenizer, config, name, folder, target)
