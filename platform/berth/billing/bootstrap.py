"""A new installation's prices, per hour in USD, for the sizes bootstrap makes (`manage.py bootstrap`)."""

from decimal import Decimal

from .services import size_price_set

PRICES = {"small": Decimal("0.010"), "medium": Decimal("0.040"), "large": Decimal("0.080")}


def prices_set(operator, sizes) -> None:
    """Price each of these new sizes that PRICES names."""
    for size in sizes:
        if size.name in PRICES:
            size_price_set(actor=operator, size=size, price_per_hour=PRICES[size.name])
