"""Binary codes of key vectors held in memory, searched by Hamming distance.

sqlite-vec's `bit[]` table holds the same codes on disk, and stays the index of record; scanning it
costs ~16 ms per query at 200,000 keys on a 2-core machine, much of it keeping the k best. The same
scan over codes in memory, one 64-bit word column at a time with numpy, takes ~2.5 ms. The store
keeps this index in step with the database (see SQLiteStore.vector_search) and falls back on
sqlite-vec while it loads.

This module knows nothing of SQL: it takes codes and answers nearest keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_INITIAL_CAPACITY = 1024


class BitIndex:
    """Key ids with their namespace, binary code and whether their procedure is active, appended in
    key id order.

    Not thread-safe on its own: the store calls it under its lock.
    """

    def __init__(self, code_bytes: int) -> None:
        # Codes are padded to whole 64-bit words and stored word by word (one contiguous column per
        # word), so a distance is a few whole-array XOR + popcount passes.
        self.words = max(1, -(-code_bytes // 8))
        self.code_bytes = code_bytes
        self.size = 0
        self.last_key_id = 0
        self._key_ids = np.zeros(_INITIAL_CAPACITY, dtype=np.int64)
        self._namespaces = np.zeros(_INITIAL_CAPACITY, dtype=np.int32)
        self._active = np.zeros(_INITIAL_CAPACITY, dtype=np.bool_)
        self._columns = np.zeros((self.words, _INITIAL_CAPACITY), dtype=np.uint64)
        self._namespace_codes: dict[str, int] = {}

    def add(
        self, key_ids: Sequence[int], namespaces: Sequence[str], codes: Sequence[bytes], active: Sequence[bool]
    ) -> None:
        """Append keys, whose ids must all be above every id already held."""
        count = len(key_ids)
        if count == 0:
            return
        if not len(namespaces) == len(codes) == len(active) == count:
            raise ValueError("key_ids, namespaces, codes and active must have the same length")
        if min(key_ids) <= self.last_key_id:
            raise ValueError(f"key ids must grow: got {min(key_ids)} after {self.last_key_id}")
        self._reserve(self.size + count)
        end = self.size + count
        self._key_ids[self.size : end] = key_ids
        self._namespaces[self.size : end] = [self._namespace_code(n) for n in namespaces]
        self._active[self.size : end] = active
        self._columns[:, self.size : end] = self._words(codes).T
        self.size = end
        self.last_key_id = int(max(key_ids))

    def set_inactive(self, key_ids: Sequence[int]) -> None:
        """Mark exactly these keys (of deprecated procedures) as not to be found; all others as active."""
        held = self._key_ids[: self.size]
        self._active[: self.size] = True
        wanted = np.asarray(key_ids, dtype=np.int64)
        positions = np.searchsorted(held, wanted)  # ids are held in ascending order
        inside = positions < self.size
        found = positions[inside][held[positions[inside]] == wanted[inside]]
        self._active[found] = False

    def nearest(self, namespace: str, code: bytes, count: int) -> list[int]:
        """Ids of the `count` keys of `namespace` with the fewest differing bits from `code`, nearest first."""
        size = self.size
        namespace_code = self._namespace_codes.get(namespace)
        if size == 0 or namespace_code is None or count <= 0:
            return []
        query = self._words([code])[0]
        distances = np.bitwise_count(self._columns[0, :size] ^ query[0]).astype(np.uint16)
        for word in range(1, self.words):
            distances += np.bitwise_count(self._columns[word, :size] ^ query[word])
        # Other namespaces' keys and inactive ones are pushed past any real distance (a code has at
        # most 64 * words bits).
        distances[(self._namespaces[:size] != namespace_code) | ~self._active[:size]] = np.iinfo(np.uint16).max
        if count < size:
            # Every key as near as the count-th one, so that ties go to the older key, not to chance.
            cutoff = distances[np.argpartition(distances, count - 1)[count - 1]]
            chosen = np.flatnonzero(distances <= cutoff)
        else:
            chosen = np.arange(size)
        chosen = chosen[distances[chosen] != np.iinfo(np.uint16).max]
        order = chosen[np.lexsort((self._key_ids[chosen], distances[chosen]))][:count]
        return [int(key_id) for key_id in self._key_ids[order]]

    def _namespace_code(self, namespace: str) -> int:
        return self._namespace_codes.setdefault(namespace, len(self._namespace_codes))

    def _words(self, codes: Sequence[bytes]) -> np.ndarray:
        """The codes as rows of 64-bit words, zero-padded (equal padding adds no distance)."""
        for code in codes:
            if len(code) != self.code_bytes:
                raise ValueError(f"a code has {len(code)} bytes, this index holds {self.code_bytes}")
        padded = b"".join(code.ljust(self.words * 8, b"\0") for code in codes)
        return np.frombuffer(padded, dtype=np.uint64).reshape(len(codes), self.words)

    def _reserve(self, needed: int) -> None:
        capacity = self._key_ids.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        self._key_ids = np.resize(self._key_ids, capacity)
        self._namespaces = np.resize(self._namespaces, capacity)
        self._active = np.resize(self._active, capacity)
        columns = np.zeros((self.words, capacity), dtype=np.uint64)
        columns[:, : self.size] = self._columns[:, : self.size]
        self._columns = columns
