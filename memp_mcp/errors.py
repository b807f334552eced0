"""Errors raised by the memory domain.

MempError
 +-- InvalidInputError        the caller passed something unusable (the message says what to change)
 +-- NotFoundError            an id (procedure, trajectory, recall) that does not exist (in this namespace)
 +-- EditConflictError        an edit based on a version the procedure has moved past
 +-- ReadOnlyNamespaceError   a write to a namespace configured as read-only
 +-- StoreError               the database cannot be opened or used
 |    +-- SchemaTooNewError   the file was written by a newer memp-mcp
 |    +-- EmbeddingModelMismatchError   the file's vectors come from another embedding model
 +-- ModelError               an embedding model cannot be found, fetched or loaded

The server turns every MempError into an MCP tool error the model can read; the CLI prints it
and exits non-zero. Anything else is a bug and propagates.
"""


class MempError(Exception):
    """Base of every error the memory raises on purpose."""


class InvalidInputError(MempError, ValueError):
    """Input that fails validation; the message names the field and the fix."""


class NotFoundError(MempError, LookupError):
    """A referenced procedure, trajectory or recall does not exist."""


class EditConflictError(MempError):
    """An edit was based on an older version of the procedure; the message says what changed since."""


class ReadOnlyNamespaceError(MempError):
    """A write was attempted on a namespace configured as read-only."""


class StoreError(MempError):
    """The database file cannot be opened, read or written."""


class SchemaTooNewError(StoreError):
    """The database was created by a newer version of memp-mcp."""


class EmbeddingModelMismatchError(StoreError):
    """The database's vectors were made by a different embedding model."""


class ModelError(MempError):
    """An embedding model cannot be resolved, fetched or loaded."""
