"""pytest plugin the gate loads into a service's test run: records each test's node id in the JUnit XML, and how
the session ended (tests collected, tests run to the end, an interruption) in the file named by
RELEASEGATE_PYTEST_SESSION, so a session cut short (`pytest.exit(..., returncode=0)`, Ctrl-C) is never read as a
complete one.

Plain Python with no imports beyond the standard library and pytest's hooks, so it loads in any service's own
interpreter.
"""

import json
import os

_SESSION = {"collected": 0, "finished": 0, "interrupted": ""}


def pytest_collection_modifyitems(items):
    for item in items:
        item.user_properties.append(("nodeid", item.nodeid))


def pytest_collection_finish(session):
    _SESSION["collected"] = len(session.items)


def pytest_runtest_logfinish(nodeid, location):
    _SESSION["finished"] += 1


def pytest_keyboard_interrupt(excinfo):  # pytest calls it for Ctrl-C and for pytest.exit() alike
    _SESSION["interrupted"] = f"{excinfo.typename}: {excinfo.value}"[:300]


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("RELEASEGATE_PYTEST_SESSION")
    if target:
        with open(target, "w", encoding="utf-8") as out:
            json.dump({**_SESSION, "exitstatus": int(exitstatus), "failed": session.testsfailed}, out)
