"""OSV version matching (pure) and the mirror's endpoints on loopback over a tiny in-test advisory file."""

import gzip
import json
import urllib.request

import pytest
from packaging.version import Version

from releasegate.servers.osv_mirror import Advisories, OsvMirror, affects, in_range, matching, normalise_name

RECORD = {
    "id": "PYSEC-0000-1", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-0000-1"],
    "affected": [{"package": {"ecosystem": "PyPI", "name": "Some_Package"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.4"},
                                                              {"introduced": "2.0"}, {"fixed": "2.1.3"}]},
                             {"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc123"}]}],
                  "versions": ["0.9.1"]}],
}
LAST = {"id": "PYSEC-0000-2", "affected": [{"package": {"ecosystem": "PyPI", "name": "py"},
                                            "ranges": [{"type": "ECOSYSTEM",
                                                        "events": [{"introduced": "0"}, {"last_affected": "1.11.0"}]}]}]}


@pytest.mark.parametrize(("version", "expected"), [
    ("0.9", False), ("0.9.1", True), ("1.0", True), ("1.3.9", True), ("1.4", False), ("1.9", False),
    ("2.0", True), ("2.1.2", True), ("2.1.3", False), ("3.0", False), ("not a version", False),
])
def test_ranges_and_explicit_versions(version, expected):
    assert affects(RECORD["affected"][0], version) is expected


@pytest.mark.parametrize(("version", "expected"), [("0.0.1a1", True), ("1.11.0", True), ("1.11.1", False)])
def test_introduced_zero_and_last_affected_are_inclusive(version, expected):
    events = LAST["affected"][0]["ranges"][0]["events"]
    assert in_range(events, Version(version)) is expected


def test_unsorted_events_are_sorted_before_evaluation():
    assert in_range([{"fixed": "2.0"}, {"introduced": "1.0"}], Version("1.5"))


def test_names_are_pep503_normalised():
    assert normalise_name("Some_Package.Name") == "some-package-name"
    assert [r["id"] for r in matching([RECORD], "some.package", "1.2")] == ["PYSEC-0000-1"]
    assert Advisories([RECORD, LAST]).query("SOME-package", "2.0.5")[0]["id"] == "PYSEC-0000-1"


@pytest.fixture
def advisory_file(tmp_path):
    path = tmp_path / "adv.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(RECORD) + "\n\n" + json.dumps(LAST) + "\n")
    return path


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_mirror_serves_query_batch_and_vulns_and_counts_queries(advisory_file):
    with OsvMirror(advisory_file) as mirror:
        hit = post(mirror.url, {"package": {"name": "some-package", "ecosystem": "PyPI"}, "version": "1.2"})
        miss = post(mirror.url, {"package": {"name": "some-package", "ecosystem": "PyPI"}, "version": "1.5"})
        batch = post(f"{mirror.base_url}/v1/querybatch", {"queries": [
            {"package": {"name": "py", "ecosystem": "PyPI"}, "version": "1.0"},
            {"package": {"name": "py", "ecosystem": "npm"}, "version": "1.0"}]})
        with urllib.request.urlopen(f"{mirror.base_url}/v1/vulns/PYSEC-0000-2", timeout=5) as response:
            record = json.loads(response.read())

        assert mirror.url.startswith("http://127.0.0.1:")
        assert [v["id"] for v in hit["vulns"]] == ["PYSEC-0000-1"] and miss == {"vulns": []}
        assert batch == {"results": [{"vulns": [{"id": "PYSEC-0000-2", "modified": ""}]}, {"vulns": []}]}
        assert record["id"] == "PYSEC-0000-2"
        assert mirror.queries == 4
