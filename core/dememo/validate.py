"""Parameter checks shared by plugins: one clear message per rule (``lr must be > 0, got 0.0``)."""

from __future__ import annotations

from typing import Any


def positive(**values: Any) -> None:
    """Every value > 0, e.g. ``positive(lr=self.lr)``."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def at_least(minimum: int | float, **values: Any) -> None:
    """Every value ≥ ``minimum``, e.g. ``at_least(1, epochs=self.epochs)``."""
    for name, value in values.items():
        if value < minimum:
            raise ValueError(f"{name} must be ≥ {minimum}, got {value}")


def fit_schedule(lr: float, epochs: int) -> None:
    """The two checks every fine-tuning method needs: ``lr > 0`` and ``epochs ≥ 1``."""
    positive(lr=lr)
    at_least(1, epochs=epochs)


# -- the same rules as attrs validators (checked when the plugin is built, so a bad --set fails at once) --


def at_least_field(minimum: int | float) -> Any:
    """An attrs validator: the field is ≥ ``minimum`` (None passes, for optional fields), e.g.
    ``steps: int = attrs.field(default=100, validator=validate.at_least_field(1))``."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None and value < minimum:
            raise ValueError(f"{attribute.name} must be at least {minimum}, got {value}")

    return check


def step_fraction_field(instance: Any, attribute: Any, value: Any) -> None:
    """An attrs validator for a PGD step given as a fraction of ε: in (0, 1]."""
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} is the PGD step as a fraction of ε and must be in (0, 1], got {value}")
