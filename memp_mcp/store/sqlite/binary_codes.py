"""The in-memory binary index of the key vectors, kept in step with the file across processes.

A server keeps every key's binary code in memory (store/bit_index.py) for the coarse vector search,
and while the file holds few keys their float vectors too, for an exact search; sqlite-vec answers
while it loads and whenever it is not current. New keys are found by id; any
other change to a vector, and any change of a procedure's status, is marked by the database's own
triggers in two epochs (migration 003), read before each search, whichever process made the change.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from memp_mcp.models import ProcedureStatus
from memp_mcp.store.bit_index import BitIndex
from memp_mcp.store.sqlite.connection import SQLiteConnection

logger = logging.getLogger(__name__)

VECTOR_EPOCH_KEY = "vector_epoch"
STATUS_EPOCH_KEY = "status_epoch"
# The in-memory binary index loads this many keys at a time: the first batch in the search that
# needs it, the rest in the background (sqlite-vec answers until it is whole), each batch holding
# the store's lock for a few milliseconds only.
BIT_INDEX_BATCH = 5_000
# Up to this many keys in the file (all namespaces), the index also holds every key's float vector
# (1.5 KB at 384 dimensions: 15 MB at the bound) and a search ranks all of the namespace's keys by
# exact cosine. The binary codes lose neighbours at every size measured: on copies of the 10,000-
# procedure latency database cut to 2,000 / 5,000 / 10,000 / 20,000 keys, the coarse search's 20
# procedures held 83% / 78% / 73% / 69% of the exact 20 (191 benchmark requests), its first was not
# the nearest for 10 / 15 / 19 / 31 of them. The exact search costs more with size: store search,
# k=20, median on this busy 2-core machine, exact vs coarse: 0.47 vs 0.40 ms at 2,000 keys, 0.9 vs
# 0.5 ms at 5,000, 1.5 vs 0.6 ms at 10,000, 3.1 vs 0.9 ms at 20,000. Up to 10,000 keys that is at
# most a millisecond more on a recall of ~20 ms (the query embedding); past it the cost grows
# with every key, and the memory with it, so large files keep the coarse search.
EXACT_SEARCH_MAX_KEYS = 10_000


class InMemoryCodes(SQLiteConnection):
    """The coarse search over binary codes held in memory."""

    # Guarded by the store's lock: the index, whether every key is in (`_bits_ready`), and the
    # epochs of the vectors and statuses it reflects.
    _bits: BitIndex | None = None
    _bits_epoch: str | None = None
    _bits_status_epoch: str | None = None
    _bits_ready = False

    def _nearest_keys_in_memory(
        self, namespace: str, query: bytes, wanted: int, coarse: int, bound: tuple[str, int] | None
    ) -> list[int] | None:
        """Keys for the exact rescoring to judge, or None when sqlite-vec must answer: while the
        index loads, and after a failure to load it (it is built again at the next search). With
        float vectors held, the nearest key of each of the `wanted` nearest procedures; otherwise the
        `coarse` keys nearest by binary code. `bound` is the database's model, as the caller read it."""
        with self._lock:
            if self._conn.in_transaction:
                return self._nearest_keys_in_transaction(namespace, query, wanted, coarse)
            if bound is None:
                return None
            try:
                index = self._current_bit_index(bound[1])
                if index is None:
                    return None
                return self._nearest_in(index, namespace, query, wanted, coarse)
            except self._index_errors() as exc:
                self._drop_bits(exc)
                return None

    def _index_errors(self) -> tuple[type[BaseException], ...]:
        """What loading or reading the index may raise and a search survives (sqlite-vec answers)."""
        return (ValueError, *self._errors)

    def _drop_bits(self, exc: BaseException) -> None:
        """Give up the index after a failure (the store's lock held): built again at the next search."""
        logger.warning("in-memory vector index dropped (sqlite-vec answers meanwhile): %s", exc)
        self._bits = None

    def _nearest_in(self, index: BitIndex, namespace: str, query: bytes, wanted: int, coarse: int) -> list[int]:
        if index.holds_vectors:
            return index.nearest_by_cosine(namespace, np.frombuffer(query, dtype=np.float32), wanted)
        return index.nearest(namespace, self._binary_code(query), coarse)

    def _nearest_keys_in_transaction(self, namespace: str, query: bytes, wanted: int, coarse: int) -> list[int] | None:
        """Inside a write transaction the index is read but never loaded (what the transaction wrote
        may yet be rolled back): its nearest committed keys, plus every key newer than it holds, for
        the exact rescoring to judge. None (sqlite-vec answers) when the index is not current."""
        index = self._bits
        if index is None or not self._bits_ready:
            return None
        if self._epochs() != (self._bits_epoch, self._bits_status_epoch):
            return None
        newer = self._execute(
            "SELECT id FROM procedure_keys WHERE id > ? AND vector IS NOT NULL LIMIT ?",
            (index.last_key_id, coarse + 1),
        ).fetchall()
        if len(newer) > coarse:
            return None  # too many keys it has not seen to pass them all to rescoring
        return self._nearest_in(index, namespace, query, wanted, coarse) + [int(r[0]) for r in newer]

    def _epochs(self) -> tuple[str, str]:
        """The vector epoch and the status epoch (see VECTOR_EPOCH_KEY and STATUS_EPOCH_KEY)."""
        found = self._meta_values(VECTOR_EPOCH_KEY, STATUS_EPOCH_KEY)
        return found.get(VECTOR_EPOCH_KEY, ""), found.get(STATUS_EPOCH_KEY, "")

    def _binary_code(self, query: bytes) -> bytes:
        """A float32 vector's binary code, quantised by sqlite-vec exactly as the stored keys were."""
        return bytes(self._execute("SELECT vec_quantize_binary(?)", (query,)).fetchone()[0])

    def _current_bit_index(self, dim: int) -> BitIndex | None:
        """The in-memory index brought up to date with the database, or None while it loads."""
        # Each epoch is read before the data it tags: a change racing with the load costs at most
        # one more load, never stale codes. (Both in one query: a recall reads them every time.)
        epoch, status_epoch = self._epochs()
        if self._bits is None or epoch != self._bits_epoch:
            # Key ids only grow and keys are never deleted: the largest bounds the count cheaply.
            keys = self._execute("SELECT max(id) FROM procedure_keys").fetchone()[0] or 0
            index = BitIndex(dim // 8, dim, EXACT_SEARCH_MAX_KEYS if keys <= EXACT_SEARCH_MAX_KEYS else 0)
            self._bits, self._bits_epoch, self._bits_status_epoch, self._bits_ready = index, epoch, None, False
            if self._load_bits(index):
                threading.Thread(
                    target=self._load_remaining_bits, args=(index,), name="bit-index-load", daemon=True
                ).start()
            else:
                self._bits_ready = True
        if not self._bits_ready:
            return None
        while self._load_bits(self._bits):  # keys other processes (or this one) added since
            pass
        if status_epoch != self._bits_status_epoch:
            inactive = self._execute(
                "SELECT k.id FROM procedures p CROSS JOIN procedure_keys k ON k.procedure_id = p.id "
                "WHERE p.status != 'active'"
            ).fetchall()
            self._bits.set_inactive([int(r[0]) for r in inactive])
            self._bits_status_epoch = status_epoch
        return self._bits

    def _load_bits(self, index: BitIndex) -> bool:
        """Add the next batch of keys (by id) to `index`; True when there may be more."""
        rows = self._execute(
            "SELECT k.id, p.namespace, vec_quantize_binary(k.vector), p.status, k.procedure_id, "
            "CASE WHEN ? THEN k.vector END FROM procedure_keys k CROSS JOIN procedures p ON p.id = k.procedure_id "
            "WHERE k.id > ? AND k.vector IS NOT NULL ORDER BY k.id LIMIT ?",
            (index.holds_vectors, index.last_key_id, BIT_INDEX_BATCH),
        ).fetchall()
        index.add(
            [int(r[0]) for r in rows],
            [str(r[1]) for r in rows],
            [bytes(r[2]) for r in rows],
            [r[3] == ProcedureStatus.ACTIVE for r in rows],
            [int(r[4]) for r in rows],
            [bytes(r[5]) for r in rows] if index.holds_vectors else None,
        )
        return len(rows) == BIT_INDEX_BATCH

    def _load_remaining_bits(self, index: BitIndex) -> None:
        """Fill `index` batch by batch, releasing the lock between batches so recalls go on."""
        try:
            while True:
                with self._lock:
                    if self._bits is not index:
                        return  # the vectors changed meanwhile; a newer index has taken over
                    if not self._load_bits(index):
                        self._bits_ready = True
                        return
        except Exception as exc:  # a thread's top: whatever failed (store closed, file gone), sqlite-vec answers
            logger.warning("in-memory vector index not loaded (sqlite-vec answers meanwhile): %s", exc)
            with self._lock:
                if self._bits is index:
                    self._bits = None  # built again at the next search
