"""Pure pricing and validation logic (no Flask, no database)."""

from __future__ import annotations

import re

# Bulk discounts: (minimum quantity, percent off), largest tier first.
BULK_TIERS = ((50, 10), (10, 5))
SKU = re.compile(r"^[A-Z]{3}-\d{4}$")
FIELDS = {"sku", "name", "category", "price_cents", "discount_percent", "quantity"}


def discounted_cents(price_cents: int, percent: int) -> int:
    """Price after a percentage discount, rounded half up to whole cents."""
    if not 0 <= percent <= 100:
        raise ValueError(f"discount must be 0..100 percent, got {percent}")
    return (price_cents * (100 - percent) + 50) // 100


def bulk_discount_percent(quantity: int) -> int:
    """Percent off for ordering `quantity` units: 5 % from 10 units, 10 % from 50."""
    for min_quantity, percent in BULK_TIERS:
        if quantity >= min_quantity:  # 1.2.0: the 1.1.0 off-by-one is fixed
            return percent
    return 0


def order_total_cents(price_cents: int, quantity: int, discount_percent: int = 0) -> int:
    """Total for `quantity` units: the item's own discount first, then the bulk discount."""
    if quantity < 0:
        raise ValueError("quantity must not be negative")
    unit = discounted_cents(price_cents, discount_percent)
    return discounted_cents(unit * quantity, bulk_discount_percent(quantity))


class ValidationError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_item(payload: object) -> dict:
    """Check a POST /items body; return the cleaned item or raise ValidationError listing every problem."""
    if not isinstance(payload, dict):
        raise ValidationError({"body": "expected a JSON object"})
    errors: dict[str, str] = {}
    for key in sorted(set(payload) - FIELDS):
        errors[key] = "unknown field"
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        errors["name"] = "required text of 1 to 100 characters"
    sku = payload.get("sku")
    if not isinstance(sku, str) or not SKU.match(sku):
        errors["sku"] = "required, like ABC-1234"
    category = payload.get("category", "general")
    if not isinstance(category, str) or not category.strip():
        errors["category"] = "must be non-empty text"
    price = payload.get("price_cents")
    if not _whole(price) or price < 0:
        errors["price_cents"] = "required whole number of cents, 0 or more"
    quantity = payload.get("quantity", 0)
    if not _whole(quantity) or quantity < 0:
        errors["quantity"] = "must be a whole number, 0 or more"
    discount = payload.get("discount_percent", 0)
    if not _whole(discount) or not 0 <= discount <= 100:
        errors["discount_percent"] = "must be a whole number from 0 to 100"
    if errors:
        raise ValidationError(errors)
    return {"sku": sku, "name": name.strip(), "category": category.strip(), "price_cents": price,
            "discount_percent": discount, "quantity": quantity}
