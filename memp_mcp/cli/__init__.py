"""The `memp-mcp` command line."""

from memp_mcp.cli.app import app, main

__all__ = ["app", "main"]
