"""The canonical text of sample tunes and scores, pinned by a digest.

Training data is cached by `engine.training.dataset.CANONICAL_VERSION`. When the readers or
the writer change what they make of a tune, this test fails: then raise CANONICAL_VERSION (so
caches are made anew) and put the new digest here. A refactoring that changes no text passes
unchanged.
"""

from __future__ import annotations

import hashlib

from engine.training.corpus import bundled_root, iter_tunes
from engine.training.dataset import CANONICAL_VERSION, canonical_or_none, job_of, texts_of

PINNED = (3, "65b21d6673f28b624ad70d92e36a04e4e1dd5c5f")
SCORES = ("bach/bwv66.6.mxl", "bach/bwv1.6.mxl")


def sample_texts() -> list[str]:
    tunes = list(iter_tunes())[::400]
    texts = [text for tune in tunes for text in texts_of(canonical_or_none(job_of(tune)))]
    for name in SCORES:
        texts += texts_of(canonical_or_none(("score", str(bundled_root() / name), 0)))
    return texts


def test_the_canonical_text_is_the_one_its_version_names():
    texts = sample_texts()
    assert len(texts) == len(list(iter_tunes())[::400]) + 2 * len(SCORES)
    digest = hashlib.sha1("\n\n".join(texts).encode()).hexdigest()
    assert (CANONICAL_VERSION, digest) == PINNED, (
        "the canonical text changed: raise CANONICAL_VERSION in engine/training/dataset.py and pin "
        f"({CANONICAL_VERSION + 1}, {digest!r}) here")
