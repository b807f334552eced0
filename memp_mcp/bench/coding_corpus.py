"""Coding-agent trajectories as agents send them: software work with the failed attempts left in.

Used by the test suite and by `memp-mcp bench coding`. Each case says what a careful engineer
would keep as the procedure (`expected_steps`), which failed actions must come back as pitfalls
(`pitfall_actions`, each with what worked instead when there was one), and a reworded request
that should find it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CodingCase:
    name: str
    task: str
    steps: list[Any]
    expected_steps: list[str]
    pitfall_actions: dict[str, str | None] = field(default_factory=dict)  # failed action -> what worked instead
    reworded: str = ""


PYTEST_FAIL = """\
============================= test session starts ==============================
collected 6 items

tests/test_cache.py .....F                                               [100%]

=================================== FAILURES ===================================
_________________________ test_expire_at_deadline ______________________________
    def test_expire_at_deadline():
        store = TTLStore(clock=lambda: 100)
        store.put("k", "v", ttl=0)
        store.expire()
>       assert "k" not in store
E       AssertionError: assert 'k' not in <TTLStore 1 item>
tests/test_cache.py:41: AssertionError
=========================== short test summary info ============================
FAILED tests/test_cache.py::test_expire_at_deadline - AssertionError
========================= 1 failed, 5 passed in 0.08s ==========================="""

TYPO_PATCH = "apply_patch src/cachelib/store.py: replace 'if item.deadline < now :' with 'if item.deadline <= now:'"
GOOD_PATCH = "apply_patch src/cachelib/store.py: replace 'if item.deadline < now:' with 'if item.deadline <= now:'"
BAD_EDIT = "str_replace src/invoicer/report.py 'return total / len(invoices)' " + (
    "'return total / len(invoices) if invoices else 0.0 else None'"
)
GOOD_EDIT = "str_replace src/invoicer/report.py 'return total / len(invoices)' " + (
    "'return total / len(invoices) if invoices else 0.0'"
)

FIX_FAILING_TEST = CodingCase(
    name="fix a failing test",
    task="cachelib: entries whose deadline equals the current time are not expired by TTLStore.expire",
    steps=[
        {"action": "pytest tests/test_cache.py -q", "observation": PYTEST_FAIL, "thought": "reproduce the bug first"},
        {
            "action": "cat src/cachelib/store.py",
            "observation": "class TTLStore:\n    def expire(self) -> None:\n"
            "        now = self._clock()\n        for key, item in list(self._items.items()):\n"
            "            if item.deadline < now:\n                del self._items[key]\n",
        },
        {"action": TYPO_PATCH, "observation": "Error: string to replace not found in src/cachelib/store.py"},
        {"action": GOOD_PATCH, "observation": "Patched src/cachelib/store.py (1 change)."},
        {
            "action": "pytest tests/test_cache.py -q",
            "observation": "......                                    [100%]\n6 passed in 0.07s",
        },
    ],
    expected_steps=[
        "pytest tests/test_cache.py -q (fails before the fix: this run reproduces the problem)",
        "Look at src/cachelib/store.py",
        GOOD_PATCH,
        "pytest tests/test_cache.py -q",
    ],
    pitfall_actions={TYPO_PATCH: GOOD_PATCH},
    reworded="TTL cache keeps items that expire exactly now",
)

ADD_DEPENDENCY = CodingCase(
    name="add a dependency",
    task="add httpx as a dependency of the weather client and make its tests pass",
    steps=[
        {
            "action": "python -m pytest tests/test_weather.py -q",
            "exit_code": 2,
            "observation": "ImportError while importing test module 'tests/test_weather.py'.\n"
            "E   ModuleNotFoundError: No module named 'httpx'\n1 error in 0.12s",
        },
        {"action": "poetry add httpx", "observation": "bash: poetry: command not found", "exit_code": 127},
        {
            "action": "grep -n dependencies -A4 pyproject.toml",
            "observation": '12:dependencies = [\n13-    "pydantic>=2.5",\n14-]',
        },
        {
            "action": 'edit pyproject.toml: add "httpx>=0.27" to [project] dependencies',
            "observation": "Edited pyproject.toml.",
        },
        {
            "action": "pip install -e .",
            "observation": "ERROR: Could not find a version that satisfies the "
            "requirement httpx>=0.27 (from weather-client)\nERROR: No matching distribution found for httpx>=0.27",
            "exit_code": 1,
        },
        {
            "action": "pip install -e .",
            "observation": "Successfully installed httpx-0.27.2 weather-client-0.3.0",
            "exit_code": 0,
        },
        {"action": "python -m pytest tests/test_weather.py -q", "observation": "4 passed in 0.31s", "exit_code": 0},
    ],
    expected_steps=[
        "python -m pytest tests/test_weather.py -q (fails before the fix: this run reproduces the problem)",
        "Look at pyproject.toml; search for 'dependencies'",
        'edit pyproject.toml: add "httpx>=0.27" to [project] dependencies',
        "pip install -e .",
        "python -m pytest tests/test_weather.py -q",
    ],
    pitfall_actions={"poetry add httpx": None},
    reworded="the weather client needs the httpx package installed",
)

MIGRATION_ERROR = """\
INFO  [alembic.runtime.migration] Running upgrade 3f2a -> 7c1d, add users.last_login
Traceback (most recent call last):
  File "/app/.venv/bin/alembic", line 8, in <module>
sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) no such table: user
[SQL: ALTER TABLE user ADD COLUMN last_login DATETIME]"""

WRITE_MIGRATION = CodingCase(
    name="write a migration",
    task="write an alembic migration adding a nullable last_login column to the users table",
    steps=[
        {
            "action": "cat alembic/versions/3f2a_create_users.py",
            "observation": "cat: alembic/versions/3f2a_create_users.py: No such file or directory",
        },
        {"action": "ls alembic/versions", "observation": "3f2a_users.py"},
        {
            "action": 'alembic revision -m "add users.last_login"',
            "observation": "Generating alembic/versions/7c1d_add_users_last_login.py ...  done",
        },
        {
            "action": "edit alembic/versions/7c1d_add_users_last_login.py: upgrade() adds "
            "sa.Column('last_login', sa.DateTime(), nullable=True) to 'user'; downgrade() drops it",
            "observation": "Edited alembic/versions/7c1d_add_users_last_login.py.",
        },
        {"action": "alembic upgrade head", "observation": MIGRATION_ERROR},
        {
            "action": "edit alembic/versions/7c1d_add_users_last_login.py: the table is 'users', not 'user'",
            "observation": "Edited alembic/versions/7c1d_add_users_last_login.py.",
        },
        {
            "action": "alembic upgrade head",
            "observation": "INFO  [alembic.runtime.migration] Running upgrade 3f2a -> 7c1d, add users.last_login",
        },
        {
            "action": "alembic downgrade -1 && alembic upgrade head",
            "observation": "INFO  Running downgrade 7c1d -> 3f2a\nINFO  Running upgrade 3f2a -> 7c1d",
        },
    ],
    expected_steps=[
        "Look at alembic/versions",
        'alembic revision -m "add users.last_login"',
        "edit alembic/versions/7c1d_add_users_last_login.py: upgrade() adds "
        "sa.Column('last_login', sa.DateTime(), nullable=True) to 'user'; downgrade() drops it",
        "edit alembic/versions/7c1d_add_users_last_login.py: the table is 'users', not 'user'",
        "alembic upgrade head",
        "alembic downgrade -1 && alembic upgrade head",
    ],
    pitfall_actions={
        "cat alembic/versions/3f2a_create_users.py": "ls alembic/versions",
        "alembic upgrade head": "edit alembic/versions/7c1d_add_users_last_login.py: the table is 'users', not 'user'",
    },
    reworded="database schema change: new optional column on users via alembic",
)

CRASH = """\
Traceback (most recent call last):
  File "/src/invoicer/__main__.py", line 4, in <module>
    main()
  File "/src/invoicer/report.py", line 52, in average_amount
    return total / len(invoices)
ZeroDivisionError: division by zero"""

DEBUG_CRASH = CodingCase(
    name="debug a crash",
    task="invoicer export crashes with ZeroDivisionError for a month without invoices",
    steps=[
        {"action": "python -m invoicer export --month 2024-02", "observation": CRASH, "exit_code": 1},
        {
            "action": "sed -n 45,55p src/invoicer/report.py",
            "observation": "def average_amount(invoices):\n"
            "    total = sum(i.amount for i in invoices)\n    return total / len(invoices)",
        },
        {
            "action": BAD_EDIT,
            "observation": "Edit rejected: SyntaxError: invalid syntax (report.py, line 52)",
            "ok": False,
        },
        {"action": GOOD_EDIT, "observation": "The file has been edited."},
        {
            "action": "python -m invoicer export --month 2024-02",
            "observation": "Wrote exports/2024-02.csv (0 invoices)",
            "exit_code": 0,
        },
        {"action": "pytest -q tests/test_report.py", "observation": "7 passed in 0.21s"},
    ],
    expected_steps=[
        "python -m invoicer export --month 2024-02 (fails before the fix: this run reproduces the problem)",
        "Look at src/invoicer/report.py (lines 45-55)",
        GOOD_EDIT,
        "python -m invoicer export --month 2024-02",
        "pytest -q tests/test_report.py",
    ],
    pitfall_actions={BAD_EDIT: GOOD_EDIT},
    reworded="division by zero when exporting an empty month of invoices",
)

WORKER_LOG = """\
2024-05-02 10:14:03 ERROR worker: job 881 failed
Traceback (most recent call last):
  File "/opt/worker/run.py", line 19, in <module>
ImportError: libssl.so.3: cannot open shared object file: No such file or directory"""

SERVICE_DOWN = CodingCase(
    name="bring a service back",
    task="the report worker on the staging host is down: find out why and bring it back",
    steps=[
        {
            "action": "curl -sf http://localhost:8080/health",
            "observation": "curl: (22) The requested URL returned error: 503",
            "exit_code": 22,
        },
        {"action": "tail -n 20 /var/log/worker/worker.log", "observation": WORKER_LOG},
        {"action": "ldd /opt/worker/bin/worker | grep ssl", "observation": "libssl.so.3 => not found"},
        {
            "action": "sudo apt-get install -y libssl3",
            "observation": "E: Unable to locate package libssl3",
            "exit_code": 100,
        },
        {"action": "sudo apt-get install -y libssl3t64", "observation": "Setting up libssl3t64 (3.0.13-0ubuntu3) ..."},
        {"action": "sudo systemctl restart worker", "observation": ""},
        {"action": "curl -sf http://localhost:8080/health", "observation": '{"status": "ok"}', "exit_code": 0},
    ],
    expected_steps=[
        "curl -sf http://localhost:8080/health (fails before the fix: this run reproduces the problem)",
        "Look at /var/log/worker/worker.log",
        "ldd /opt/worker/bin/worker | grep ssl",
        "sudo apt-get install -y libssl3t64",
        "sudo systemctl restart worker",
        "curl -sf http://localhost:8080/health",
    ],
    pitfall_actions={"sudo apt-get install -y libssl3": "sudo apt-get install -y libssl3t64"},
    reworded="the staging report worker is down, bring it back up",
)

# An agent that sends plain strings and flags its own failures.
PLAIN_STRINGS = CodingCase(
    name="rename a function (plain strings and ok flags)",
    task="rename the parse_cfg helper to parse_config across the package",
    steps=[
        "rg -l parse_cfg src tests",
        {"action": "sed -i 's/parse_cfg/parse_config/g' src/app/*.py tests/*.py", "ok": True},
        {"action": "pytest -x -q", "observation": "3 passed, 1 error", "ok": False},
        {"action": "sed -i 's/parse_cfg/parse_config/g' docs/usage.md src/app/cli/*.py", "ok": True},
        {"action": "pytest -x -q", "observation": "4 passed", "ok": True},
    ],
    expected_steps=[
        "Look at src, tests; search for 'parse_cfg'",
        "Change src/app/*.py, tests/*.py: `sed -i 's/parse_cfg/parse_config/g' src/app/*.py tests/*.py`",
        "Change docs/usage.md, src/app/cli/*.py: `sed -i 's/parse_cfg/parse_config/g' docs/usage.md src/app/cli/*.py`",
        "Check: `pytest -x -q` passes",
    ],
    pitfall_actions={"pytest -x -q": "sed -i 's/parse_cfg/parse_config/g' docs/usage.md src/app/cli/*.py"},
    reworded="rename parse_cfg to parse_config everywhere in the code",
)

CORPUS = [FIX_FAILING_TEST, ADD_DEPENDENCY, WRITE_MIGRATION, DEBUG_CRASH, SERVICE_DOWN, PLAIN_STRINGS]


LONG_STEP = "python - <<'EOF'\n" + "\n".join(f"print('line {i}', {i} * 2)" for i in range(120)) + "\nEOF"


def long_procedure(topic: str) -> dict[str, Any]:
    """An agent-written procedure at the size limits: 60 long steps and 30 long pitfalls."""
    return {
        "title": f"Profile the {topic} service under load",
        "steps": [f"{LONG_STEP[:1900]} # {topic} step {i}" for i in range(60)],
        "pitfalls": [f"{topic}: " + "the load generator must warm up first; " * 20 for _ in range(30)],
    }
