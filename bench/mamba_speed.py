"""Mamba's fast path against transformers' own CPU fallback and a GPT-2 of the same size.

    python bench/mamba_speed.py                          # one thread, all figures, ~10 min
    python bench/mamba_speed.py --threads 2 --json out.json --skip-reference-training

Three models with random weights and the 96-symbol vocabulary, in one run on this machine:
the mamba-6m preset on segue's fast path (engine.models.mamba_fast), the same weights on
transformers' fallback (what `MambaForCausalLM` runs without the mamba-ssm kernels), and the
gpt2-6m preset. For each:

- train step: forward, backward and AdamW step at batch 16 x 256;
- prompt read: the logits after a 512-token prompt (batch 1, through each model's decoder);
- ms/token: generating one token at a time (batch 1, greedy) with the context at 512, 1024 and
  2048 tokens; the prompt is the context less the tokens timed, so that GPT-2 stays within its
  2048 positions. The median step of --tokens.

Figures are medians of --repeats runs after one warm-up; the fallback's training step (about
140 s) runs once, unwarmed. By default they are this process's CPU time (with one torch
thread, the work done, whatever the neighbours on a shared machine take); `--clock wall`
gives wall time. Prints a Markdown table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

CONTEXTS = (512, 1024, 2048)


def cpu_name() -> str:
    """The processor's model name (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(fn: Callable[[], object], repeats: int, warmup: int, clock: Callable[[], float],
          ) -> float:
    """Median time of `fn` in ms over `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = clock()
        fn()
        times.append((clock() - started) * 1000)
    return statistics.median(times)


def train_step_ms(model, batch, repeats: int, warmup: int, clock: Callable[[], float],
                  ) -> float:
    """One optimizer step on `batch` (forward, backward, AdamW)."""
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        model(batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    ms = timed(step, repeats, warmup, clock)
    model.eval()
    return ms


def token_ms(decoder, prompt, tokens: int, clock: Callable[[], float]) -> float:
    """Median ms of one decoding step after reading `prompt` (1, T)."""
    logits = decoder.prefill(prompt)
    times = []
    for _ in range(tokens):
        token = logits.argmax(-1)
        started = clock()
        logits = decoder.step(token)
        times.append((clock() - started) * 1000)
    return statistics.median(times)


def measure(name: str, model, decoder: Callable, args, train: bool, vocab: int) -> dict:
    """All figures for one model; `decoder()` makes a fresh incremental decoder."""
    import torch

    clock = CLOCKS[args.clock]
    gen = torch.Generator().manual_seed(0)
    figures: dict = {"parameters": sum(p.numel() for p in model.parameters())}
    if train:
        batch = torch.randint(0, vocab, (16, 256), generator=gen)
        repeats, warmup = (1, 0) if name == "reference" else (args.repeats, 1)
        figures["train_step_ms"] = train_step_ms(model, batch, repeats, warmup, clock)
        print(f"{name}: train step {figures['train_step_ms']:.0f} ms", flush=True)
    model.eval()
    prompt = torch.randint(0, vocab, (1, 512), generator=gen)
    figures["prompt_512_ms"] = timed(lambda: decoder().prefill(prompt), args.repeats, 1, clock)
    for context in CONTEXTS:
        prompt = torch.randint(0, vocab, (1, context - args.tokens), generator=gen)
        figures[f"token_ms_{context}"] = token_ms(decoder(), prompt, args.tokens, clock)
    print(f"{name}: {figures}", flush=True)
    return figures


def table(results: dict) -> str:
    """The Markdown table: one row a figure, one column a model, and fast / GPT-2."""
    fast, ref, gpt = results["mamba_fast"], results["reference"], results["gpt2"]

    def cell(figures: dict, key: str) -> str:
        return f"{figures[key]:,.1f}" if key in figures else "not run"

    rows = [("train step 16x256 (ms)", "train_step_ms", "within 3x"),
            ("read 512-token prompt (ms)", "prompt_512_ms", "within 2x")]
    rows += [(f"ms/token, context {c}", f"token_ms_{c}", "at most 1x" if c == 512 else "")
             for c in CONTEXTS]
    lines = ["| | Mamba fast path | transformers fallback | GPT-2 | fast / GPT-2 | target |",
             "|---|---:|---:|---:|---:|---|"]
    for label, key, target in rows:
        ratio = f"{fast[key] / gpt[key]:.2f}x" if key in fast and key in gpt else ""
        lines.append(f"| {label} | {cell(fast, key)} | {cell(ref, key)} | {cell(gpt, key)} "
                     f"| {ratio} | {target} |")
    flat = fast["token_ms_2048"] / fast["token_ms_512"]
    lines.append(f"\nMamba fast path ms/token, context 2048 / 512: {flat:.2f}x "
                 f"(GPT-2: {gpt['token_ms_2048'] / gpt['token_ms_512']:.2f}x).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32, help="decoding steps timed a context")
    parser.add_argument("--clock", choices=CLOCKS, default="cpu",
                        help="cpu: this process's CPU time (default); wall: wall time")
    parser.add_argument("--skip-reference-training", action="store_true",
                        help="leave out the fallback's ~140 s training step")
    parser.add_argument("--json", type=Path, default=Path("bench/mamba_speed.json"))
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import MambaForCausalLM

    from engine.files import write_text_atomic
    from engine.models.cached_decoder import CachedDecoder
    from engine.models.lm import decoder_for
    from engine.models.mamba_fast import path_label
    from engine.models.model import build_model, hf_config, model_config
    from engine.models.tokenizer import CharTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab = CharTokenizer().vocab_size
    mamba_config = model_config("mamba-6m", vocab_size=vocab)
    fast = build_model(mamba_config)
    reference = MambaForCausalLM(hf_config(mamba_config))
    reference.load_state_dict(fast.state_dict())
    gpt2 = build_model(model_config("gpt2-6m", vocab_size=vocab))

    load = os.getloadavg()
    results = {
        "mamba_fast": measure("mamba_fast", fast, lambda: decoder_for(fast), args, True, vocab),
        "reference": measure("reference", reference, lambda: CachedDecoder(reference), args,
                             not args.skip_reference_training, vocab),
        "gpt2": measure("gpt2", gpt2, lambda: decoder_for(gpt2), args, True, vocab),
    }
    machine = {"platform": platform.platform(), "processor": cpu_name(),
               "cpus": os.cpu_count(), "torch_threads": args.threads, "clock": args.clock,
               "torch": torch.__version__, "transformers": transformers.__version__,
               "mamba_path": path_label("cpu"), "load_average_before": load,
               "load_average_after": os.getloadavg()}
    report = table(results)
    print(f"\n{report}\n\n{machine}")
    write_text_atomic(args.json, json.dumps({"machine": machine, "results": results},
                                            indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
