from memp_mcp.cli import main

main()
