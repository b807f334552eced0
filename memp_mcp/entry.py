"""The `memp-mcp` console script: `memp-mcp hook` skips the command-line framework's import.

A hook is a new process on every prompt; importing the CLI (typer, rich) would add to the
latency the prompt hook is measured by. Every other command goes to memp_mcp.cli.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["hook"]:
        from memp_mcp.hooks import main as hook_main

        sys.exit(hook_main())
    from memp_mcp.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
