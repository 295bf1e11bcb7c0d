"""inventory: a small stock-keeping HTTP service (Flask + sqlite3)."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import time
import urllib.parse
import urllib.request
from pathlib import Path

from flask import Flask, abort, g, jsonify, request

from inventory import auth, db, jobs, pricing
from inventory.metrics import Metrics

__version__ = "1.2.0"
OPENAPI = Path(__file__).with_name("openapi.json")  # the write API (bearer tokens), served at /openapi.json
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id is no item
MAX_QUANTITY = 1_000_000
STOCK_SYNC_DELAY_S = 0.4  # round trip to the (simulated) warehouse stock service, per search


def _refresh_stock_levels(conn: sqlite3.Connection, ids: list[int]) -> None:
    """1.1.0: re-read stock for every hit, one query each, after a synchronous warehouse round trip."""
    time.sleep(STOCK_SYNC_DELAY_S)
    for item_id in ids:
        conn.execute("SELECT quantity FROM items WHERE id = ?", (item_id,)).fetchone()


WAREHOUSE_TIMEOUT_S = 0.3  # the warehouse answers in a few ms; past this, serve the last known stock


def warehouse_stock(base_url: str, sku: str, timeout_s: float) -> int:
    """Ask the warehouse stock service ($WAREHOUSE_URL) for a SKU's stock level."""
    if not base_url:
        raise OSError("WAREHOUSE_URL is not set")
    url = f"{base_url.rstrip('/')}/stock/{urllib.parse.quote(sku)}"
    with urllib.request.urlopen(url, timeout=timeout_s) as answer:
        return int(json.load(answer)["quantity"])


def create_app(database_url: str | None = None) -> Flask:
    """Build the app. The database URL comes from the argument or $DATABASE_URL; there is no default."""
    url = database_url or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set: export DATABASE_URL=sqlite:///path/to/inventory.db "
                           "and run `python -m inventory.migrate` before starting the service")
    app = Flask(__name__)
    app.config["DATABASE_PATH"] = db.path_from_url(url)
    app.config["VERSION"] = __version__
    app.config["WAREHOUSE_URL"] = os.environ.get("WAREHOUSE_URL", "")
    last_known: dict[str, int] = {}  # stock per SKU from the last warehouse answer
    metrics = Metrics()
    app.extensions["metrics"] = metrics

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _record(response):
        started = g.pop("started", None)
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            metrics.observe(request.method, endpoint, response.status_code, time.perf_counter() - started)
        return response

    @app.teardown_appcontext
    def _close(_exc):
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    def conn() -> sqlite3.Connection:
        if "db" not in g:
            g.db = db.connect(app.config["DATABASE_PATH"])
        return g.db

    def to_json(row: sqlite3.Row) -> dict:
        item = dict(row)
        item["sale_price_cents"] = pricing.discounted_cents(item["price_cents"], item["discount_percent"])
        return item

    @app.errorhandler(404)
    def _not_found(_e):
        # 1.2.0: "friendlier" errors add a field the published contract does not declare (a regression).
        return jsonify(error="not found", detail=f"no resource at {request.path}"), 404

    @app.errorhandler(405)
    def _not_allowed(_e):
        return jsonify(error="method not allowed"), 405

    @app.errorhandler(500)
    def _server_error(_e):
        return jsonify(error="internal server error"), 500

    @app.get("/healthz")
    def healthz():
        try:
            version = db.schema_version(conn())
        except sqlite3.Error as exc:
            return jsonify(status="unavailable", reason=f"database: {exc}"), 503
        if version is None:
            return jsonify(status="unavailable", reason="database not migrated: run python -m inventory.migrate"), 503
        return jsonify(status="ok", version=__version__)

    @app.get("/items")
    def list_items():
        try:
            limit = min(max(int(request.args.get("limit", 20)), 1), 100)
            offset = max(int(request.args.get("offset", 0)), 0)
        except ValueError:
            return jsonify(error="limit and offset must be whole numbers"), 400
        rows = conn().execute(
            "SELECT id, sku, name, category, price_cents, discount_percent, quantity FROM items "
            "ORDER BY id LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        total = conn().execute("SELECT COUNT(*) FROM items").fetchone()[0]
        return jsonify(items=[to_json(r) for r in rows], count=len(rows), total=total, limit=limit, offset=offset)

    @app.get("/items/<int:item_id>")
    def get_item(item_id: int):
        row = conn().execute(
            "SELECT id, sku, name, category, price_cents, discount_percent, quantity FROM items "
            "WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            abort(404)  # 1.2.0: routed through the "friendlier" 404 handler, which breaks the error contract
        jobs.notify_if_low(row["sku"], row["quantity"])
        return jsonify(to_json(row))

    @app.get("/items/<int:item_id>/availability")
    def availability(item_id: int):
        row = conn().execute("SELECT sku, quantity FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return jsonify(error=f"item {item_id} not found"), 404
        sku = row["sku"]
        try:
            quantity = warehouse_stock(app.config["WAREHOUSE_URL"], sku, WAREHOUSE_TIMEOUT_S)
        except (OSError, ValueError, KeyError, http.client.HTTPException):  # timeouts and resets are OSErrors
            return jsonify(item_id=item_id, sku=sku, quantity=last_known.get(sku, row["quantity"]), stale=True)
        last_known[sku] = quantity
        return jsonify(item_id=item_id, sku=sku, quantity=quantity, stale=False)

    @app.post("/items")
    def create_item():
        payload = request.get_json(silent=True)
        try:
            item = pricing.validate_item(payload)
        except pricing.ValidationError as exc:
            return jsonify(error="invalid item", details=exc.errors), 400
        try:
            with conn():
                cur = conn().execute(
                    "INSERT INTO items (sku, name, category, price_cents, discount_percent, quantity) "
                    "VALUES (:sku, :name, :category, :price_cents, :discount_percent, :quantity)", item)
        except sqlite3.IntegrityError:
            return jsonify(error=f"sku {item['sku']} already exists"), 409
        row = conn().execute(
            "SELECT id, sku, name, category, price_cents, discount_percent, quantity FROM items "
            "WHERE id = ?", (cur.lastrowid,)).fetchone()
        return jsonify(to_json(row)), 201

    @app.get("/search")
    def search():
        q = request.args.get("q", "").strip()
        if not q:
            return jsonify(error="query parameter q is required"), 400
        # 1.2.0: the SQL is parameterised again (injection fixed); the N+1 loading and the per-request stock
        # refresh are still there, so /search is still slow.
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        ids = conn().execute(
            "SELECT id FROM items WHERE name LIKE ? ESCAPE '\\' OR sku LIKE ? ESCAPE '\\' ORDER BY name LIMIT 20",
            (pattern, pattern)).fetchall()
        items = []
        for (item_id,) in ids:
            row = conn().execute(
                "SELECT id, sku, name, category, price_cents, discount_percent, quantity FROM items "
                "WHERE id = ?", (item_id,)).fetchone()
            items.append(to_json(row))
        _refresh_stock_levels(conn(), [i["id"] for i in items])
        return jsonify(query=q, items=items, count=len(items))

    @app.get("/openapi.json")
    def openapi_document():
        return app.response_class(OPENAPI.read_bytes(), mimetype="application/json")

    @app.post("/auth/token")
    def issue_token():
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or not {"username", "password"} <= payload.keys():
            return jsonify(error="send JSON with username and password"), 400
        token = auth.login(payload)
        if token is None:
            return jsonify(error="invalid credentials"), 401
        return jsonify(token=token, expires_in=auth.TOKEN_TTL_S)

    def caller(*roles: str):
        """The token's claims, or the refusal to return (401 without a valid token, 403 for another role)."""
        try:
            claims = auth.verify(request.headers.get("Authorization"))
        except auth.Refused as exc:
            return None, (jsonify(error=str(exc)), 401)
        if claims.get("role") not in roles:
            return None, (jsonify(error="not allowed for this account"), 403)
        return claims, None

    @app.put("/items/<int:item_id>/stock")
    def set_stock(item_id: int):
        _claims, refused = caller("user", "admin")
        if refused:
            return refused
        payload = request.get_json(silent=True)
        quantity = payload.get("quantity") if isinstance(payload, dict) else None
        if type(quantity) is not int or not 0 <= quantity <= MAX_QUANTITY:
            return jsonify(error=f"quantity must be a whole number from 0 to {MAX_QUANTITY}"), 400
        if item_id > MAX_ID:
            return jsonify(error=f"item {item_id} not found"), 404
        with conn():
            changed = conn().execute("UPDATE items SET quantity = ? WHERE id = ?", (quantity, item_id)).rowcount
        if not changed:
            return jsonify(error=f"item {item_id} not found"), 404
        row = conn().execute("SELECT id, sku, quantity FROM items WHERE id = ?", (item_id,)).fetchone()
        return jsonify(dict(row))

    @app.delete("/items/<int:item_id>")
    def delete_item(item_id: int):
        _claims, refused = caller("admin")
        if refused:
            return refused
        if item_id > MAX_ID:
            return jsonify(error=f"item {item_id} not found"), 404
        with conn():
            deleted = conn().execute("DELETE FROM items WHERE id = ?", (item_id,)).rowcount
        if not deleted:
            return jsonify(error=f"item {item_id} not found"), 404
        return "", 204

    @app.get("/metrics")
    def prometheus_metrics():
        return metrics.render(), 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}

    return app
