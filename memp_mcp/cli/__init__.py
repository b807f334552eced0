"""The `memp-mcp` command line, the outermost layer: it may import anything in memp_mcp, and nothing
in memp_mcp imports it but entry.py (the console script).

- root.py: the root app (--version, `main()`) and the list of commands in their help order.
- common.py: what every command stands on: the consoles, the settings and memory the options select,
  and `fail` (one line, exit status 2); options.py: the shared options (--db, --database-url, --namespace).
- setup.py: getting it running and checking it: serve, hook, install claude-code, model pull/list/check,
  reindex, doctor, smoke.
- procedures.py: reading and correcting stored procedures: recall, stats, list, show, edit, forget, restore.
- library.py: a memory moved as a whole: export, import, migrate.
- bench.py: `bench ...` and `demo`, their progress bars and tables (the runs live in memp_mcp.bench);
  bench_day.py and bench_sessions.py: `bench day` and `bench sessions`, registered on the same `bench`.
"""

from memp_mcp.cli.root import app, main

__all__ = ["app", "main"]
