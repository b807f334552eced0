"""Numbered, forward-only schema migrations. Append new ones; never edit an applied one."""

from __future__ import annotations

# Each migration is SQL run as one script inside the runner's transaction, together with the
# row that records it, so a migration is applied whole or not at all.
M001_CREATE_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE namespaces (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE trajectories (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    task TEXT NOT NULL,
    steps_json TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'unknown')),
    score REAL,
    agent TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX trajectories_by_namespace ON trajectories(namespace);
CREATE TABLE procedures (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    title TEXT NOT NULL,
    when_to_use TEXT NOT NULL,
    steps_json TEXT NOT NULL,
    pitfalls_json TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deprecated')),
    version INTEGER NOT NULL DEFAULT 1,
    source TEXT NOT NULL,
    author TEXT,
    exemplar_trajectory_id INTEGER REFERENCES trajectories(id),
    retrieved_count INTEGER NOT NULL DEFAULT 0,
    success_count INTEGER NOT NULL DEFAULT 0,
    failure_count INTEGER NOT NULL DEFAULT 0,
    support_count INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX procedures_by_namespace ON procedures(namespace, status);
CREATE TABLE procedure_sources (
    procedure_id INTEGER NOT NULL REFERENCES procedures(id),
    trajectory_id INTEGER NOT NULL REFERENCES trajectories(id),
    PRIMARY KEY (procedure_id, trajectory_id)
);
-- Texts a procedure is found by (its when-to-use and the tasks it was built from);
-- each has one vector in the vector table once a model is bound.
CREATE TABLE procedure_keys (
    id INTEGER PRIMARY KEY,
    procedure_id INTEGER NOT NULL REFERENCES procedures(id),
    text TEXT NOT NULL,
    has_vector INTEGER NOT NULL DEFAULT 0,
    UNIQUE (procedure_id, text)
);
CREATE TABLE procedure_versions (
    procedure_id INTEGER NOT NULL REFERENCES procedures(id),
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    when_to_use TEXT NOT NULL,
    steps_json TEXT NOT NULL,
    pitfalls_json TEXT NOT NULL,
    reason TEXT NOT NULL,
    changed_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (procedure_id, version)
);
CREATE TABLE recall_events (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    task TEXT NOT NULL,
    procedure_ids_json TEXT NOT NULL,
    strategy TEXT NOT NULL,
    created_at TEXT NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0,
    success INTEGER
);
-- rowid = procedures.id; kept in step with the rows by the store, in the same transaction.
CREATE VIRTUAL TABLE procedure_fts USING fts5(body, tokenize = 'porter unicode61');
"""


# Vectors become binary-quantised in the vector table (a fast coarse search) with the exact float32
# vector kept beside its key (rescoring, scoring). Old float vector tables are dropped and the keys
# marked unembedded: the engine re-embeds them when the model is next bound, so nothing is lost.
M002_QUANTISED_VECTORS = """
ALTER TABLE procedure_keys ADD COLUMN vector BLOB;
DROP TABLE IF EXISTS key_vectors;
UPDATE procedure_keys SET has_vector = 0;
DELETE FROM meta WHERE key IN ('embedding_model', 'embedding_dim');
"""


# A server keeps the keys' binary codes in memory (store/bit_index.py) and must learn of changes made
# by any process. New keys it finds by id; these triggers mark every other change to a vector, and
# every change of a procedure's status, in an epoch it reads before each search. Being in the schema,
# they hold whichever code writes (and older versions of memp-mcp refuse a file this new).
M003_CHANGE_EPOCHS = """
INSERT OR REPLACE INTO meta (key, value) VALUES ('vector_epoch', lower(hex(randomblob(16))));
INSERT OR REPLACE INTO meta (key, value) VALUES ('status_epoch', lower(hex(randomblob(16))));
CREATE TRIGGER key_vector_changed AFTER UPDATE OF vector ON procedure_keys
BEGIN
    UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'vector_epoch';
END;
CREATE TRIGGER procedure_status_changed AFTER UPDATE OF status ON procedures
BEGIN
    UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'status_epoch';
END;
"""


# The merge check looks keys up by text ("is this the same task?"); without an index of its own SQLite
# walks every active procedure of the namespace for it (~250 ms at 100,000 procedures).
M004_KEY_TEXT_INDEX = """
CREATE INDEX procedure_keys_by_text ON procedure_keys(text);
"""


# Each version of a procedure is judged on its own record: the current version's counts restart when
# its steps change, and a past version keeps the counts it had (NULL: from before this migration).
# Existing procedures carry their counts over, since when their steps last changed is not known.
M005_VERSION_RECORDS = """
ALTER TABLE procedures ADD COLUMN version_success_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE procedures ADD COLUMN version_failure_count INTEGER NOT NULL DEFAULT 0;
UPDATE procedures SET version_success_count = success_count, version_failure_count = failure_count;
ALTER TABLE procedure_versions ADD COLUMN success_count INTEGER;
ALTER TABLE procedure_versions ADD COLUMN failure_count INTEGER;
"""


# A different agent's steps for a procedure that already exists are kept as a candidate: a procedure of
# its own, pointing at the one it would replace, that recall serves only once it has earned trust.
# Keys waiting for a vector are indexed so that a running server can look for them on every write.
M006_CANDIDATES = """
ALTER TABLE procedures ADD COLUMN candidate_of INTEGER REFERENCES procedures(id);
CREATE INDEX procedures_by_candidate_of ON procedures(candidate_of) WHERE candidate_of IS NOT NULL;
CREATE INDEX keys_without_vectors ON procedure_keys(id) WHERE has_vector = 0;
"""

# FTS5 adds a segment per write and merges a level only when four segments pile up there, and a
# search looks each term up in every segment: at 336 procedures written one by one, a recall's keyword
# search took 0.53 ms, 0.25 ms once merged, with the same results. Merging as soon as two pile up keeps
# fewer segments at no measurable cost per write; 'optimize' merges what a database has piled up, once.
M007_FULLTEXT_MERGES = """
INSERT INTO procedure_fts (procedure_fts, rank) VALUES ('automerge', 2);
INSERT INTO procedure_fts (procedure_fts) VALUES ('optimize');
"""

# A recall keeps the version of each procedure it served, so that an outcome reported after the
# procedure changed is credited to the steps the agent followed, not to newer ones nobody has tried.
M008_RECALLED_VERSIONS = """
ALTER TABLE recall_events ADD COLUMN procedure_versions_json TEXT;
"""

# Who recorded a procedure, as authentication established it (memp_mcp.principals): the trust rules
# compare this, never the agent name a caller sends. Procedures from before are nobody's: what would
# change them in place becomes a candidate.
M009_PRINCIPALS = """
ALTER TABLE procedures ADD COLUMN principal TEXT;
"""

# An imported Agent Skill is kept whole beside the procedure derived from it (SKILL.md's frontmatter
# and body as written, and its other files), so that an export writes the same folder back.
M010_SKILL_DOCUMENTS = """
CREATE TABLE skill_documents (
    procedure_id INTEGER PRIMARY KEY REFERENCES procedures(id),
    name TEXT NOT NULL,
    folder TEXT NOT NULL,
    digest TEXT NOT NULL,
    frontmatter TEXT NOT NULL,
    body TEXT NOT NULL,
    files TEXT NOT NULL
);
CREATE INDEX skill_documents_by_name ON skill_documents(name);
"""

# What memory gave and why, and what each task's end recorded, for `memp-mcp log`: one row per event,
# its particulars as JSON. task_arms holds one row per task memory was asked about: whether memory was
# given or withheld (MEMP_HOLDOUT), and the outcome later reported or recorded for the task, so the
# uplift memory brings can be measured against the tasks it was withheld from.
M011_EVENTS_AND_ARMS = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    task TEXT NOT NULL,
    recall_id TEXT,
    arm TEXT,
    summary TEXT NOT NULL,
    detail_json TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX events_by_namespace ON events(namespace, id);
CREATE TABLE task_arms (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    task_key TEXT NOT NULL,
    arm TEXT NOT NULL CHECK (arm IN ('memory', 'holdout')),
    recall_id TEXT,
    success INTEGER,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    turns INTEGER NOT NULL DEFAULT 0,
    last_attempt TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX task_arms_by_task ON task_arms(namespace, task_key);
CREATE INDEX task_arms_by_recall ON task_arms(recall_id) WHERE recall_id IS NOT NULL;
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "create_tables", M001_CREATE_TABLES),
    (2, "quantised_vectors", M002_QUANTISED_VECTORS),
    (3, "change_epochs", M003_CHANGE_EPOCHS),
    (4, "key_text_index", M004_KEY_TEXT_INDEX),
    (5, "version_records", M005_VERSION_RECORDS),
    (6, "candidates", M006_CANDIDATES),
    (7, "fulltext_merges", M007_FULLTEXT_MERGES),
    (8, "recalled_versions", M008_RECALLED_VERSIONS),
    (9, "principals", M009_PRINCIPALS),
    (10, "skill_documents", M010_SKILL_DOCUMENTS),
    (11, "events_and_arms", M011_EVENTS_AND_ARMS),
]

LATEST_VERSION = MIGRATIONS[-1][0]
