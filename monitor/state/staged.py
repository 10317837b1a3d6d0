"""Writes held back until the outputs they depend on are safe.

A Kafka stage must not record "done" in its table before the records it produced are
acknowledged by the broker: a crash in between would replay the input, find it "done" and
drop it. So a stage writes through a :class:`Staged` view, sends its outputs, awaits their
acknowledgement, then :meth:`Staged.flush` applies the writes.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
_DELETED = object()


class Staged(MutableMapping[K, V], Generic[K, V]):
    def __init__(self, backing: MutableMapping[K, V]) -> None:
        self.backing = backing
        self._writes: dict[K, object] = {}

    def __getitem__(self, key: K) -> V:
        if key in self._writes:
            value = self._writes[key]
            if value is _DELETED:
                raise KeyError(key)
            return value  # type: ignore[return-value]
        return self.backing[key]

    def __setitem__(self, key: K, value: V) -> None:
        self._writes[key] = value

    def __delitem__(self, key: K) -> None:
        if key not in self:
            raise KeyError(key)
        self._writes[key] = _DELETED

    def __contains__(self, key: object) -> bool:
        if key in self._writes:
            return self._writes[key] is not _DELETED
        return key in self.backing

    def __iter__(self) -> Iterator[K]:
        for key in self.backing:
            if key not in self._writes:
                yield key
        for key, value in list(self._writes.items()):
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self) -> None:
        """Apply the held writes to the backing mapping."""
        for key, value in self._writes.items():
            if value is _DELETED:
                self.backing.pop(key, None)
            else:
                self.backing[key] = value  # type: ignore[assignment]
        self._writes.clear()

    def discard(self) -> None:
        self._writes.clear()
