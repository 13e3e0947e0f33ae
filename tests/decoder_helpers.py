"""Checks shared by the tests of Segue's decoders against transformers' own cache."""

from __future__ import annotations

import torch


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal within 1e-4, absolute: the tolerance every decoder is held to."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


def assert_same_logits(expected, actual, ids: torch.Tensor, steps: int) -> None:
    """Two decoders read the prompt `ids`, then `steps` greedy tokens: the same logits each time."""
    want, got = expected.prefill(ids), actual.prefill(ids)
    assert_close(got, want)
    for _ in range(steps):
        token = want.argmax(-1)
        want, got = expected.step(token), actual.step(token)
        assert_close(got, want)


def assert_forks_go_on_alike(make, ids: torch.Tensor, steps: int = 6) -> None:
    """A decoder from `make()` reads `ids`, then it and its fork go on, turn about, with
    different tokens: each gives the logits a fresh decoder gives on its tokens, to the bit."""
    original = make()
    original.prefill(ids)
    pairs = [(original, make()), (original.fork(), make())]
    for _, fresh in pairs:
        fresh.prefill(ids)
    for index in range(steps):
        for offset, (decoder, fresh) in enumerate(pairs):
            token = (ids[:, -1] + 7 * offset + index) % 96
            assert torch.equal(decoder.step(token), fresh.step(token))
    for offset, (decoder, fresh) in enumerate(pairs):
        several = (ids[:, :3] + 7 * offset) % 96
        assert torch.equal(decoder.extend(several), fresh.extend(several))
