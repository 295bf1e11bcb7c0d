"""pytest plugin the gate loads into a service's test run: records each test's node id in the JUnit XML.

Plain Python with no imports beyond pytest's hooks, so it loads in any service's own interpreter.
"""


def pytest_collection_modifyitems(items):
    for item in items:
        item.user_properties.append(("nodeid", item.nodeid))
