"""Claude Code's hooks: recall before a prompt, record after a turn, and their installer.

- client: what runs on every prompt first: asks the database's warm server over a Unix socket,
  finds its pid, starts one in the background (`python -m memp_mcp.hooks.warm_server`).
- command: `memp-mcp hook` when no warm server answered: one event under a deadline, failures
  logged to hooks.log, never an error for Claude Code.
- handlers: what each event does (prompt: recall and inject; stop and session end: record or
  report the turn; session start after a compaction: inject again), and `run_hook` to dispatch.
- session: what a session's hooks remember between events (a JSON file per session).
- memories: where an event's Memory comes from (fresh per event, or kept open with the model).
- warm_server: the warm process answering events with the handlers and a kept-open Memory.
- transcript: reading Claude Code's transcript (the last prompt, its tool calls, its outcome).
- install: adding the hooks and the MCP server to Claude Code's settings, splicing the JSON
  files with jsonedit so whatever else they hold keeps its bytes.

Imports go one way (a -> b: a imports b), never back:
  warm_server -> command -> handlers -> session, memories, transcript (and memp_mcp.server.render);
  command and warm_server -> client; install -> jsonedit.
From outside, memp_mcp.entry imports client and command, the CLI command and install.
The client imports the standard library alone: memp_mcp.entry's fast path loads it and nothing
else of memp_mcp, which is why this file imports nothing. No module here imports memp_mcp.cli or
memp_mcp.bench.
"""
