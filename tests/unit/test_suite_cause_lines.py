"""pytest's own words on why a suite stopped, read from recorded output (pytest 8/9, pytest-cov 7)."""

import pytest

from releasegate.stages.pytest_suites import coverage_shortfall, pytest_cause

USAGE_STDERR = """\
ERROR: usage: python -m pytest [options] [file_or_dir] [file_or_dir] [...]
python -m pytest: error: unrecognized arguments: --cov=calc --cov-fail-under=100
  inifile: /tmp/p/pytest.ini
  rootdir: /tmp/p
"""
COLLECTION_STDOUT = """\
==================================== ERRORS ====================================
__________________________ ERROR collecting tests.py ___________________________
tests.py:2: in <module>
    warnings.warn('calc.old is deprecated', DeprecationWarning)
E   DeprecationWarning: calc.old is deprecated
=========================== short test summary info ============================
ERROR tests.py - DeprecationWarning: calc.old is deprecated
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!!
=============================== 1 error in 0.12s ===============================
"""
CONFTEST_STDERR = """\
ImportError while loading conftest '/tmp/p/conftest.py'.
conftest.py:1: in <module>
    import missing_settings
E   ModuleNotFoundError: No module named 'missing_settings'
"""


@pytest.mark.parametrize(("stderr", "stdout", "cause"), [
    ("ERROR: file or directory not found: tests/does_not_exist\n\n", "no tests ran in 0.01s\n",
     "ERROR: file or directory not found: tests/does_not_exist"),
    (USAGE_STDERR, "", "python -m pytest: error: unrecognized arguments: --cov=calc --cov-fail-under=100"),
    ("", COLLECTION_STDOUT, "ERROR tests.py - DeprecationWarning: calc.old is deprecated"),
    (CONFTEST_STDERR, "", "ImportError while loading conftest '/tmp/p/conftest.py': "
                          "ModuleNotFoundError: No module named 'missing_settings'"),
    ("INTERNALERROR> Traceback (most recent call last):\nINTERNALERROR> RuntimeError: plugin broke\n", "",
     "INTERNALERROR> RuntimeError: plugin broke"),
])
def test_pytests_own_line_on_why_it_stopped(stderr, stdout, cause):
    assert pytest_cause(stderr, stdout) == cause


@pytest.mark.parametrize(("output", "expected"), [
    ("FAIL Required test coverage of 100% not reached. Total coverage: 99.84%\n", (99.84, 100.0)),
    ("ERROR: Coverage failure: total of 72 is less than fail-under=80\n", (72.0, 80.0)),
    ("Required test coverage of 80.0% reached. Total coverage: 85.00%\n", None),
    ("1 passed in 0.1s\n", None),
])
def test_a_coverage_shortfall_is_read_from_pytest_covs_words(output, expected):
    assert coverage_shortfall(output) == expected
