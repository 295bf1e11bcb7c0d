"""`policy check`: every file and folder the policy names exists, each against its own base."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from releasegate.policy.check_report import CheckReport
from releasegate.policy.model import Policy


def _check_policy_files(policy: Policy, add, report: CheckReport) -> None:
    """The gate's inputs, relative to the policy file."""
    from releasegate.stages.semgrep import BUILTIN_PREFIX, builtin_names, builtin_rules_dir

    semgrep, audit, env = policy.scans.semgrep, policy.scans.pip_audit, policy.environment
    if semgrep is not None:
        for i, rule in enumerate(semgrep.rules):
            if rule.startswith(BUILTIN_PREFIX):
                if not (builtin_rules_dir() / f"{rule[len(BUILTIN_PREFIX):]}.yml").is_file():
                    add(("scans", "semgrep", "rules", i), f"{rule!r} is not a bundled rule set — use one of "
                                                          f"{', '.join(builtin_names())}")
            else:
                _exists(policy, report, add, ("scans", "semgrep", "rules", i), policy.base_dir, rule, "policy")
    if audit is not None and audit.osv_data:
        _exists(policy, report, add, ("scans", "pip_audit", "osv_data"), policy.base_dir, audit.osv_data, "policy",
                want="file")
    if policy.chaos is not None:
        for i, experiment in enumerate(policy.chaos.experiments):
            _exists(policy, report, add, ("chaos", "experiments", i, "file"), policy.base_dir, experiment.file,
                    "policy", want="file")
    if env is not None:
        for i, dep in enumerate(env.dependencies):
            if dep.path is not None:
                _exists(policy, report, add, ("environment", "dependencies", i, "path"), policy.base_dir, dep.path,
                        "policy", want="folder")
        if env.python is not None and "{" not in env.python:
            found = shutil.which(env.python) if os.sep not in env.python else env.python
            if not found or not (os.path.isfile(found) and os.access(found, os.X_OK)):
                add(("environment", "python"), f"{env.python!r} is not an executable interpreter — give its path "
                                               "(e.g. /opt/venvs/orders/bin/python) or a name on PATH")


def _source(policy: Policy, version: str | None, add, report: CheckReport) -> Path | None:
    if "{version}" in policy.source.path and version is None:
        report.notes.append(f"source.path {policy.source.path!r} uses {{version}}: the service's files (suite "
                            "paths, locustfile, requirements, semgrep paths, alert files) were not checked — "
                            "pass --version to check them")
        return None
    if "{" in policy.source.path.replace("{version}", ""):
        return None  # a placeholder the gate does not fill in here: reported above
    source = policy.source_dir(version or "")
    if not source.is_dir():
        add(("source", "path"), f"{source} is not a folder" + (f" for version {version}" if version else "")
            + " — fix the path (relative to the policy)")
        return None
    report.checked.append(str(source))
    return source


def _check_source_files(policy: Policy, source: Path, add, report: CheckReport) -> None:
    """The service's own files, relative to its source folder (the run's copy of it)."""
    def exists(loc: tuple, relative: str, want: str = "any") -> None:
        _exists(policy, report, add, loc, source, relative, "source", want)

    for i, suite in enumerate(policy.suites):
        if suite.junit is None:  # the gate runs pytest, which needs every path to exist
            for j, path in enumerate(suite.paths):
                exists(("suites", i, "paths", j), path.split("::", 1)[0])
    if policy.load is not None:
        exists(("load", "locustfile"), policy.load.locustfile, "file")
    if policy.scans.semgrep is not None:
        for i, path in enumerate(policy.scans.semgrep.paths):
            exists(("scans", "semgrep", "paths", i), path)
    audit = policy.scans.pip_audit
    if audit is not None:
        if audit.export:
            report.notes.append("scans.pip_audit.requirements not checked: the export commands write them")
        else:
            for i, path in enumerate(audit.requirements):
                exists(("scans", "pip_audit", "requirements", i), path, "file")
    secrets = policy.scans.credentials
    if secrets is not None:
        for i, path in enumerate(secrets.paths):
            exists(("scans", "credentials", "paths", i), path)
        if secrets.allowlist is not None:
            exists(("scans", "credentials", "allowlist"), secrets.allowlist, "file")
    if policy.dast is not None and not policy.dast.openapi.startswith(("http://", "https://")):
        exists(("dast", "openapi"), policy.dast.openapi, "file")  # a document in the source, not a URL
    if policy.alerts is not None:
        for key in ("rule_files", "tests"):
            for i, path in enumerate(getattr(policy.alerts, key)):
                exists(("alerts", key, i), path, "file")
        if policy.alerts.alertmanager is not None:
            exists(("alerts", "alertmanager", "config"), policy.alerts.alertmanager.config, "file")


def _exists(policy: Policy, report: CheckReport, add, loc: tuple, base: Path, relative: str, base_name: str,
            want: str = "any") -> None:
    if "{" in relative:
        return  # a placeholder: filled in at run time (or refused above)
    path = (base / relative).resolve()
    ok = path.is_file() if want == "file" else path.is_dir() if want == "folder" else path.exists()
    if ok:
        report.checked.append(str(path))
        return
    what = {"file": "file", "folder": "folder"}.get(want, "file or folder")
    where = "the policy file's folder" if base_name == "policy" else "the service's source folder"
    state = "is not a " + what if path.exists() else "does not exist"
    add(loc, f"{relative!r} {state} ({path}) — this path is relative to {where} ({base})")
