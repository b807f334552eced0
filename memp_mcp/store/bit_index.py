"""Binary codes of key vectors held in memory, searched by Hamming distance.

sqlite-vec's `bit[]` table holds the same codes on disk, and stays the index of record; scanning it
costs ~16 ms per query at 200,000 keys on a 2-core machine, much of it keeping the k best. The same
scan over codes in memory, one 64-bit word column at a time with numpy, takes ~2.5 ms. The store
keeps this index in step with the database (see SQLiteStore.vector_search) and falls back on
sqlite-vec while it loads.

While it holds few keys it also holds their float vectors and ranks by exact cosine: there, the
binary codes' ranking buys no time and loses neighbours (see EXACT_SEARCH_MAX_KEYS in
store/sqlite/binary_codes.py for the figures).

This module knows nothing of SQL: it takes codes (and vectors) and answers nearest keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_INITIAL_CAPACITY = 1024


class BitIndex:
    """Key ids with their namespace, procedure, binary code and whether their procedure is active,
    appended in key id order; with their float vectors too while there are at most `max_vectors`.

    Not thread-safe on its own: the store calls it under its lock.
    """

    def __init__(self, code_bytes: int, dim: int = 0, max_vectors: int = 0) -> None:
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
        self._procedure_ids = np.zeros(_INITIAL_CAPACITY, dtype=np.int64)
        # Unit-length rows (a cosine is a dot product); None once the index holds more keys than
        # `max_vectors`, for good (the memory goes back, searches go by binary code).
        self.max_vectors = max_vectors
        self._vectors: np.ndarray | None = (
            np.zeros((_INITIAL_CAPACITY, dim), dtype=np.float32) if dim > 0 and max_vectors > 0 else None
        )

    @property
    def holds_vectors(self) -> bool:
        """Whether `nearest_by_cosine` can answer (every key's float vector is held)."""
        return self._vectors is not None

    def add(
        self,
        key_ids: Sequence[int],
        namespaces: Sequence[str],
        codes: Sequence[bytes],
        active: Sequence[bool],
        procedure_ids: Sequence[int] | None = None,
        vectors: Sequence[bytes] | None = None,
    ) -> None:
        """Append keys, whose ids must all be above every id already held. `vectors` (float32 bytes)
        keep the exact search going; without them, or past `max_vectors` keys, it stops."""
        count = len(key_ids)
        if count == 0:
            return
        if not len(namespaces) == len(codes) == len(active) == count:
            raise ValueError("key_ids, namespaces, codes and active must have the same length")
        for extra in (procedure_ids, vectors):
            if extra is not None and len(extra) != count:
                raise ValueError("procedure_ids and vectors must have one entry per key")
        if min(key_ids) <= self.last_key_id:
            raise ValueError(f"key ids must grow: got {min(key_ids)} after {self.last_key_id}")
        self._reserve(self.size + count)
        end = self.size + count
        self._key_ids[self.size : end] = key_ids
        self._namespaces[self.size : end] = [self._namespace_code(n) for n in namespaces]
        self._active[self.size : end] = active
        self._columns[:, self.size : end] = self._words(codes).T
        self._procedure_ids[self.size : end] = procedure_ids if procedure_ids is not None else 0
        if self._vectors is not None:
            if vectors is None or procedure_ids is None or end > self.max_vectors:
                self._vectors = None
            else:
                self._vectors[self.size : end] = self._unit_rows(vectors)
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

    def nearest_by_cosine(self, namespace: str, vector: Sequence[float] | np.ndarray, count: int) -> list[int]:
        """Ids of the nearest key of each of the `count` procedures of `namespace` whose nearest key
        has the highest cosine with `vector`, best first (ties to the older key). Needs
        `holds_vectors`."""
        if self._vectors is None:
            raise ValueError("this index holds no float vectors")
        size = self.size
        namespace_code = self._namespace_codes.get(namespace)
        if size == 0 or namespace_code is None or count <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        # One product over the whole contiguous block (selecting the namespace's rows first would
        # copy them: slower than the product itself); other namespaces and inactive keys sink.
        # einsum, not `@`: numpy's BLAS splits a product this size over threads, which on a busy
        # 2-core machine waited 9-18 ms at the 95th percentile for 2,000-10,000 keys (einsum: ~1 ms).
        similarities = np.einsum("ij,j->i", self._vectors[:size], query / norm if norm else query)
        similarities[(self._namespaces[:size] != namespace_code) | ~self._active[:size]] = -np.inf
        eligible = int(np.count_nonzero(similarities > -np.inf))
        if eligible == 0:
            return []
        # The best keys first, as few as will hold `count` procedures (a procedure has a few keys).
        taken = min(eligible, 4 * count)
        while True:
            top = np.argpartition(-similarities, taken - 1)[:taken] if taken < size else np.arange(size)
            top = top[similarities[top] > -np.inf]
            ranked = top[np.lexsort((self._key_ids[top], -similarities[top]))]
            _, first = np.unique(self._procedure_ids[ranked], return_index=True)
            if len(first) >= count or taken >= eligible:
                return [int(key_id) for key_id in self._key_ids[ranked[np.sort(first)[:count]]]]
            taken = min(eligible, 4 * taken)

    def _unit_rows(self, vectors: Sequence[bytes]) -> np.ndarray:
        rows = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(vectors), -1)
        if self._vectors is None or rows.shape[1] != self._vectors.shape[1]:
            raise ValueError(f"a vector has {rows.shape[1]} dimensions, this index holds another size")
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms == 0, 1.0, norms)

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
        self._procedure_ids = np.resize(self._procedure_ids, capacity)
        if self._vectors is not None:
            vectors = np.zeros((capacity, self._vectors.shape[1]), dtype=np.float32)
            vectors[: self.size] = self._vectors[: self.size]
            self._vectors = vectors
        columns = np.zeros((self.words, capacity), dtype=np.uint64)
        columns[:, : self.size] = self._columns[:, : self.size]
        self._columns = columns
