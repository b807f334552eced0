"""The Memp engine: build, retrieve and update procedures, knowing nothing of MCP.

Must not import memp_mcp.server, memp_mcp.hooks, memp_mcp.cli or memp_mcp.bench.
"""
