"""The policy's published JSON schema (docs/gate.schema.json, `releasegate policy schema`)."""

from __future__ import annotations

import json
from typing import Any

from releasegate.policy.model import Policy


def json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "releasegate policy (gate.yaml)"
    return schema


def schema_json() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
