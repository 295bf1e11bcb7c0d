"""Live checks against the running service at $RELEASEGATE_BASE_URL."""

import uuid

import requests

TIMEOUT = 10


def test_healthz_reports_ok_and_version(base_url):
    r = requests.get(f"{base_url}/healthz", timeout=TIMEOUT)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["version"]


def test_items_are_seeded_and_paginated(base_url):
    r = requests.get(f"{base_url}/items", params={"limit": 5, "offset": 5}, timeout=TIMEOUT)
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 5 and body["total"] >= 50
    assert [i["id"] for i in body["items"]] == sorted(i["id"] for i in body["items"])
    assert all(i["sale_price_cents"] <= i["price_cents"] for i in body["items"])


def test_missing_item_is_json_404(base_url):
    r = requests.get(f"{base_url}/items/999999", timeout=TIMEOUT)
    assert r.status_code == 404
    assert "error" in r.json()


def test_invalid_item_is_rejected(base_url):
    r = requests.post(f"{base_url}/items", json={"name": "", "price_cents": -5}, timeout=TIMEOUT)
    assert r.status_code == 400
    assert {"name", "price_cents", "sku"} <= set(r.json()["details"])
    r = requests.post(f"{base_url}/items", data="not json", timeout=TIMEOUT)
    assert r.status_code == 400


def test_created_item_can_be_read_back_and_found(base_url):
    sku = f"TST-{uuid.uuid4().int % 10000:04d}"
    name = f"Probe {uuid.uuid4().hex[:8]}"
    r = requests.post(f"{base_url}/items", json={"sku": sku, "name": name, "price_cents": 1000,
                                                 "discount_percent": 20, "quantity": 4}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["sale_price_cents"] == 800
    r = requests.get(f"{base_url}/items/{created['id']}", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["name"] == name
    r = requests.get(f"{base_url}/search", params={"q": name}, timeout=TIMEOUT)
    assert [i["id"] for i in r.json()["items"]] == [created["id"]]


def test_search_matches_names(base_url):
    r = requests.get(f"{base_url}/search", params={"q": "widget"}, timeout=TIMEOUT)
    assert r.status_code == 200
    names = [i["name"] for i in r.json()["items"]]
    assert "Small Widget" in names and "Large Widget" in names
    assert requests.get(f"{base_url}/search", timeout=TIMEOUT).status_code == 400


def test_metrics_count_requests(base_url):
    requests.get(f"{base_url}/items/1", timeout=TIMEOUT)
    text = requests.get(f"{base_url}/metrics", timeout=TIMEOUT).text
    assert "# TYPE http_requests_total counter" in text
    assert 'http_requests_total{method="GET",endpoint="/items/<int:item_id>",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{method="GET",endpoint="/items/<int:item_id>",le="+Inf"}' in text
