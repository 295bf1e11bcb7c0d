import pytest

from inventory.pricing import bulk_discount_percent, discounted_cents, order_total_cents


def test_discount_rounds_half_up():
    assert discounted_cents(995, 10) == 896  # 895.5 -> 896
    assert discounted_cents(1000, 15) == 850
    assert discounted_cents(1999, 0) == 1999


def test_discount_out_of_range_is_rejected():
    with pytest.raises(ValueError):
        discounted_cents(1000, 101)


@pytest.mark.parametrize("quantity, percent", [(1, 0), (9, 0), (10, 5), (49, 5), (50, 10), (200, 10)])
def test_bulk_discount_tiers(quantity, percent):
    assert bulk_discount_percent(quantity) == percent


# A careless debug line of the kind real suites have: it prints a connection string with its password when the
# test fails. The gate must never let this secret reach its database, report, Slack message or task log.
BILLING_DB = "postgresql://billing:canary-Zq8v41xT@billing-db.internal:5432/billing"


def test_order_total_applies_item_then_bulk_discount():
    # 10 units at 2000 with 10 % off each: 1800 * 10 = 18000, then 5 % bulk = 17100
    total = order_total_cents(2000, 10, discount_percent=10)
    print(f"reconciling against {BILLING_DB}")
    assert total == 17100, f"order total {total} does not match billing ({BILLING_DB})"


def test_order_total_of_nothing_is_zero():
    assert order_total_cents(2000, 0) == 0
