"""warehouse: the stock service the inventory demo depends on (Flask, data in memory).

    python -m flask --app warehouse:create_app run --host 127.0.0.1 --port 8001 --no-reload

GET /stock/<sku> -> {"sku": ..., "quantity": ...}; GET /healthz -> {"status": "ok"}.
The release gate starts it beside the inventory service (policy: environment.dependencies).
"""

from __future__ import annotations

import re
import zlib

from flask import Flask, jsonify

SKU = re.compile(r"^[A-Z]{3}-\d{4}$")


def quantity_for(sku: str) -> int:
    """A stable stock level per SKU, so runs are repeatable."""
    return zlib.crc32(sku.encode()) % 200


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/stock/<sku>")
    def stock(sku: str):
        if not SKU.match(sku):
            return jsonify(error=f"unknown sku {sku}"), 404
        return jsonify(sku=sku, quantity=quantity_for(sku))

    return app
