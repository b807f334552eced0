"""The MCP server: the engine as tools, resources and a prompt, over stdio or streamable HTTP.

This file imports nothing, so that the hooks can import memp_mcp.server.render without loading the
MCP SDK. Must not import memp_mcp.hooks, memp_mcp.cli or memp_mcp.bench.
"""
