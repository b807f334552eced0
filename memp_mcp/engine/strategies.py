"""The paper's strategies, one per phase: how procedures are built, retrieved and updated."""

from __future__ import annotations

from dataclasses import dataclass

from memp_mcp.config import BuildStrategy, RetrieveStrategy, UpdateStrategy


@dataclass
class Strategies:
    build: BuildStrategy = "proceduralization"
    retrieve: RetrieveStrategy = "hybrid"
    update: UpdateStrategy = "adjustment"
