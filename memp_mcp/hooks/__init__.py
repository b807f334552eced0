"""Claude Code's hooks: recall before a prompt, record after a turn, and their installer.

This file imports nothing: the hook's fast path imports memp_mcp.hooks.warm_server's client half
with the standard library alone. Must not import memp_mcp.cli or memp_mcp.bench.
"""
