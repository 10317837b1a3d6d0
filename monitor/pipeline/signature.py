"""MinHash signatures of an article's text, for near-duplicate search.

Shingles are word 3-grams of stemmed tokens from the title and the *lead* of the body: copies of
a wire story share their opening paragraphs even when one outlet trims the end, adds a
paragraph or wraps the page in boilerplate; whole-body shingles would let those edits dominate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHash

NUM_PERM = 128
SHINGLE = 3
LEAD_TOKENS = 160
_SEED = 7
# Named explicitly: stored signatures must be rebuilt with the scheme that made them.
_SCHEME = "affine32"


def shingles(title_stems: Sequence[str], body_stems: Sequence[str]) -> set[bytes]:
    words = [*list(title_stems), "\x00", *list(body_stems[:LEAD_TOKENS])]
    if len(words) < SHINGLE + 1:
        return {" ".join(words).encode()} if any(words) else set()
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


# The permutations depend only on (num_perm, seed, scheme): generate them once, not per article.
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=_SEED, scheme=_SCHEME).permutations


def minhash(shingle_set: set[bytes]) -> MinHash:
    m = MinHash(num_perm=NUM_PERM, seed=_SEED, scheme=_SCHEME, permutations=_PERMUTATIONS)
    if shingle_set:
        m.update_batch(list(shingle_set))
    return m


def from_values(values: Sequence[int] | np.ndarray[Any, Any]) -> LeanMinHash:
    """A stored signature back as a MinHash for the LSH. LeanMinHash: a full MinHash would
    regenerate its 128 permutations on every construction, which dominated clustering time."""
    return LeanMinHash(seed=_SEED, hashvalues=np.asarray(values, dtype=np.uint64), scheme=_SCHEME)


def signature(title_stems: Sequence[str], body_stems: Sequence[str]) -> tuple[int, ...]:
    return tuple(int(v) for v in minhash(shingles(title_stems, body_stems)).hashvalues)
