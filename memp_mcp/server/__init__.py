"""The MCP server: the engine as tools, resources and a prompt, over stdio or streamable HTTP.

- app.py: build_server (wires the modules below around one memory) and run_server.
- served.py: ServedMemory, what the tools and resources share: engine errors as tool errors, file
  paths kept from remote clients, the statistics.
- tools.py: the tools (record, recall, report; get, list, stats; edit, forget, restore).
- resources.py: a procedure as Markdown, and the statistics. prompts.py: the prompt.
- sampling.py: distilling a trajectory with the client's model, when the client offers sampling.
- stdio.py and streamable_http.py: the two transports (HTTP: allowed hosts, token, body limit, sockets).
- render.py: where stored text becomes text for a model, through one cleaner: the tools' answers and
  the hook's injected context. Standard library and memp_mcp.text only at import time.

This file imports nothing, so that the hooks can import memp_mcp.server.render without loading the
MCP SDK. Must not import memp_mcp.hooks, memp_mcp.cli or memp_mcp.bench.
"""
