"""The Memp engine: build, retrieve and update procedural memory, knowing nothing of MCP.

- memory.py: `Memory`, the facade every caller uses (record, recall, report_outcome, import_procedures,
  get/list/edit/forget/restore, stats), and `open_memory`.
- record.py: recording a trajectory: build a procedure, or merge into the one for the same task, or
  propose a candidate.
- recall.py: answering a recall: retrieve, withhold unproven candidates, add worked examples, fit the
  budget, log the recall. retrieve.py ranks (vectors, keywords, fusion); budget.py fits an answer's size.
- outcomes.py: an outcome report: attribution, adjustment (pitfalls, corrections), retirement.
- lessons.py: what a run teaches about its environment (refused actions and what worked instead), the
  pitfalls procedures learn from it, and how pitfalls merge.
- trust.py: who may change what (read-only namespaces, proven and provisional procedures, candidates,
  lessons, imports), each rule a small named function.
- imports.py: importing procedures written elsewhere through the same checks as a record or an edit;
  library.py (JSON Lines) and skills.py (SKILL.md folders) are the file formats on either side of it,
  markdown.py the Markdown rendering and parsing of one procedure, frontmatter.py a SKILL.md's frontmatter
  read as skill loaders read it.
- build.py: the extractive builder (steps kept, pitfalls, placeholders); change.py what a coding run
  established (the change per file, the reproduction, the commands, the check, where to look, the
  approach in the agent's words), which build.py uses for runs that changed files, from what
  run_changes.py reads of each file's net change (its edits, what was written, the final diff); verdict.py reads one
  step (worked or failed, a command line or not); actions.py what a shell line or a tool call does;
  titles.py the title and when-to-use of a task, mentions.py the files, formats and tools it names.
- worked_example.py: the run behind a procedure, unabridged and bounded, for get_procedure.
- scrub.py takes secrets and private spans out of what callers send, right after inputs.py checks it,
  and personal data out of titles and when-to-use; scan.py finds (and redacts) secrets already stored
  and refuses them at export.
- inputs.py checks what callers send; results.py holds the result models; strategies.py the paper's
  strategies; model.py the embedding model as bound to the database.

Must not import memp_mcp.server, memp_mcp.hooks, memp_mcp.cli or memp_mcp.bench, nor mcp. Nothing is
re-exported here: importing one module of the package (the hooks' transcript reader reads
verdict.TEST_COMMAND, the server's renderer the result models) must not load the store and the
embedding stack that `Memory` brings.
"""
