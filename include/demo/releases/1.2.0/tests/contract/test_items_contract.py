"""Response shapes of /items and /items/<id> against contracts/items.json."""

import requests

TYPES = {"integer": int, "string": str, "array": list, "object": dict, "boolean": bool, "number": (int, float)}


def check(body: dict, shape: dict) -> list[str]:
    """Every contract field present with its type; no undeclared fields."""
    problems = [f"missing {k}" for k in shape if k not in body]
    problems += [f"unexpected {k}" for k in body if k not in shape]
    for key, kind in shape.items():
        if key in body:
            value = body[key]
            ok = isinstance(value, TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
            if not ok:
                problems.append(f"{key}: expected {kind}, got {type(value).__name__}")
    return problems


def test_item_list_shape(base_url, contract):
    body = requests.get(f"{base_url}/items", timeout=10).json()
    assert check(body, contract["item_list"]) == []
    assert body["items"], "the seeded catalogue should not be empty"
    for item in body["items"]:
        assert check(item, contract["item"]) == [], item


def test_single_item_shape(base_url, contract):
    first = requests.get(f"{base_url}/items", params={"limit": 1}, timeout=10).json()["items"][0]
    r = requests.get(f"{base_url}/items/{first['id']}", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert check(r.json(), contract["item"]) == []


def test_missing_item_error_shape(base_url, contract):
    r = requests.get(f"{base_url}/items/987654", timeout=10)
    assert r.status_code == 404
    assert check(r.json(), contract["error"]) == []


def test_search_results_use_item_shape(base_url, contract):
    body = requests.get(f"{base_url}/search", params={"q": "Large"}, timeout=10).json()
    assert body["items"]
    for item in body["items"]:
        assert check(item, contract["item"]) == [], item
