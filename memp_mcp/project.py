"""Which project a working directory belongs to, and the memory namespace that project gets."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path


def project_root(cwd: Path) -> Path:
    """The nearest enclosing git work tree (a `.git` folder or file), else `cwd` itself.

    Found by walking up the tree rather than by running git: a prompt hook runs on every prompt
    and a subprocess would cost it tens of milliseconds.
    """
    cwd = cwd.resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / ".git").exists():
            return folder
    return cwd


def project_namespace(cwd: Path) -> str:
    """`project/<folder name>-<8 hex digits of its path>`: readable, and two folders of one name stay apart."""
    root = project_root(cwd)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip("-.")[:40] or "root"
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"project/{name}-{digest}"
