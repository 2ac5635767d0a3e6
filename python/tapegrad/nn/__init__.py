"""Neural-network building blocks (filled in by the nn issue)."""
from . import functional  # noqa: F401
