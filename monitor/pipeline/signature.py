"""MinHash signatures of an article's text, for near-duplicate search.

Shingles are word 3-grams of stemmed tokens from the title and the *lead* of the body: copies of
a wire story share their opening paragraphs even when one outlet trims the end, adds a
paragraph or wraps the page in boilerplate; whole-body shingles would let those edits dominate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasketch import MinHash

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


def minhash(shingle_set: set[bytes]) -> MinHash:
    m = MinHash(num_perm=NUM_PERM, seed=_SEED, scheme=_SCHEME)
    if shingle_set:
        m.update_batch(list(shingle_set))
    return m


def from_values(values: Sequence[int]) -> MinHash:
    values_arr = np.asarray(values, dtype=np.uint64)
    return MinHash(num_perm=NUM_PERM, seed=_SEED, hashvalues=values_arr, scheme=_SCHEME)


def signature(title_stems: Sequence[str], body_stems: Sequence[str]) -> tuple[int, ...]:
    return tuple(int(v) for v in minhash(shingles(title_stems, body_stems)).hashvalues)
