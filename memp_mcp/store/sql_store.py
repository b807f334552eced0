"""The store's SQL written once: procedures and history over a backend's dialect, and the statistics
of a namespace. A backend's store class adds its connection, vectors, full-text search and its
integrity checks."""

from __future__ import annotations

from memp_mcp.models import NamespaceStats, ProcedureStatus
from memp_mcp.store.events import Events
from memp_mcp.store.history import History
from memp_mcp.store.procedures import Procedures
from memp_mcp.store.texts import StoredTexts


class SQLStore(Procedures, History, StoredTexts, Events):
    """Procedures, trajectories and recall events in whichever database the backend connects to."""

    def stats(self, namespace: str) -> NamespaceStats:
        return NamespaceStats(
            namespace=namespace,
            trajectories=self.count_trajectories(namespace),
            procedures_active=self.count_procedures(namespace, ProcedureStatus.ACTIVE),
            procedures_deprecated=self.count_procedures(namespace, ProcedureStatus.DEPRECATED),
            recalls=self._count_recalls(namespace),
        )
