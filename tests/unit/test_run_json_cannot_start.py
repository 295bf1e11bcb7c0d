"""`releasegate run --json` prints one JSON object also when the run cannot start (exit 2)."""

import json

from releasegate.cli import main


def test_a_run_that_cannot_start_still_answers_in_json(tmp_path, capsys):
    policy = tmp_path / "gate.yaml"
    policy.write_text("service: shop\nsuites: [{name: unit, retires: 1}]\n")

    code = main(["run", "--policy", str(policy), "--version", "1.0", "--json"])

    captured = capsys.readouterr()
    assert code == 2
    answer = json.loads(captured.out)
    assert answer == {"decision": None,
                      "error": f"{policy}:2: suites[0].retires: unknown key — did you mean 'retries'?"}
    assert "policy error" in captured.err


def test_a_missing_policy_file_still_answers_in_json(tmp_path, capsys):
    code = main(["run", "--policy", str(tmp_path / "nope.yaml"), "--version", "1.0", "--json"])

    assert code == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["decision"] is None and "policy file not found" in answer["error"]
