import pytest

from inventory.db import path_from_url
from inventory.pricing import ValidationError, validate_item

GOOD = {"sku": "HWR-9001", "name": "  Tiny Widget ", "price_cents": 250, "quantity": 3}


def test_valid_item_is_cleaned_with_defaults():
    item = validate_item(dict(GOOD))
    assert item == {"sku": "HWR-9001", "name": "Tiny Widget", "category": "general", "price_cents": 250,
                    "discount_percent": 0, "quantity": 3}


@pytest.mark.parametrize("field, value", [("price_cents", -1), ("price_cents", 2.5), ("price_cents", True),
                                          ("sku", "hwr-1"), ("name", "   "), ("discount_percent", 120)])
def test_invalid_fields_are_reported(field, value):
    with pytest.raises(ValidationError) as err:
        validate_item({**GOOD, field: value})
    assert field in err.value.errors


def test_unknown_fields_and_non_objects_are_rejected():
    with pytest.raises(ValidationError) as err:
        validate_item({**GOOD, "colour": "red"})
    assert err.value.errors == {"colour": "unknown field"}
    with pytest.raises(ValidationError):
        validate_item(["not", "an", "object"])


def test_database_url_must_be_sqlite():
    assert path_from_url("sqlite:////tmp/x.db") == "/tmp/x.db"
    assert path_from_url("sqlite:///rel.db") == "rel.db"
    with pytest.raises(RuntimeError):
        path_from_url("postgresql://localhost/inventory")


def test_app_refuses_to_start_without_database_url(monkeypatch):
    from inventory import create_app
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        create_app()
