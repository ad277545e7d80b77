"""Parameter checks shared by plugins: one clear one-line message per rule.

Every rule takes the values as keywords, named as the plugin's parameters, and raises ValueError naming the
first value that breaks it::

    validate.positive(lr=self.lr)
        # lr must be > 0, got 0.0
    validate.in_range(0, 1, low_open=True, mask_ratio=self.mask_ratio)
        # mask_ratio must be in (0, 1], got 1.5
    validate.in_range(0, 1, about="the PGD L∞ radius in [0, 1] pixel space", eps=self.eps)
        # eps (the PGD L∞ radius in [0, 1] pixel space) must be in [0, 1], got 2

Every rule also takes ``about`` (a short description of the parameter, shown after its name) and ``none``
(None passes: ``True``, or a string saying what None means, e.g. ``none="the recipe's lr"`` gives
``lr must be > 0 or None (the recipe's lr), got 0``). NaN passes no numeric rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

_INF = math.inf


def _fail(name: str, rule: str, value: Any, about: str | None, none: bool | str) -> None:
    """Raise the one message every rule gives: ``name (about) must be rule or None (none), got value``."""
    what = f"{name} ({about})" if about else name
    alternative = "" if none is False else " or None" + (f" ({none})" if isinstance(none, str) else "")
    got = repr(value) if isinstance(value, str) else str(value)
    raise ValueError(f"{what} must be {rule}{alternative}, got {got}")


def _rule(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """``in [0, 1)``, ``> 0``, ``≥ 1``, ``> 0 and finite``, ``finite``: the range in words."""
    if low != -_INF and high != _INF:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low != -_INF:
        return f"{'>' if low_open else '≥'} {low}" + (" and finite" if high_open else "")
    if high != _INF:
        return f"{'<' if high_open else '≤'} {high}" + (" and finite" if low_open else "")
    return {(True, True): "finite", (True, False): "> -inf", (False, True): "< inf"}.get((low_open, high_open),
                                                                                      "a number")


def in_range(low: float, high: float, /, *, low_open: bool = False, high_open: bool = False,
             about: str | None = None, none: bool | str = False, **values: Any) -> None:
    """Every value in the range from ``low`` to ``high``, each end closed unless said open, e.g.
    ``in_range(0, 1, high_open=True, momentum=self.momentum)`` (momentum must be in [0, 1), got 1.0).
    An infinite end is written as a one-sided rule: ``in_range(0, math.inf, low_open=True, high_open=True,
    l2=self.l2)`` says ``l2 must be > 0 and finite``."""
    for name, value in values.items():
        if value is None and none is not False:
            continue
        inside = value is not None and (low < value if low_open else low <= value) and (
            value < high if high_open else value <= high)
        if not inside:
            _fail(name, _rule(low, high, low_open, high_open), value, about, none)


def positive(*, about: str | None = None, none: bool | str = False, **values: Any) -> None:
    """Every value > 0, e.g. ``positive(lr=self.lr)``."""
    in_range(0, _INF, low_open=True, about=about, none=none, **values)


def non_negative(*, about: str | None = None, none: bool | str = False, **values: Any) -> None:
    """Every value ≥ 0, e.g. ``non_negative(weight_decay=self.weight_decay)``."""
    in_range(0, _INF, about=about, none=none, **values)


def at_least(minimum: int | float, /, *, about: str | None = None, none: bool | str = False, **values: Any) -> None:
    """Every value ≥ ``minimum``, e.g. ``at_least(1, epochs=self.epochs)``."""
    in_range(minimum, _INF, about=about, none=none, **values)


def finite(*, about: str | None = None, none: bool | str = False, **values: Any) -> None:
    """Every value a finite number (not NaN or ±inf), e.g. ``finite(mean=self.mean)``."""
    in_range(-_INF, _INF, low_open=True, high_open=True, about=about, none=none, **values)


def one_of(choices: Iterable[Any], /, *, about: str | None = None, none: bool | str = False, **values: Any) -> None:
    """Every value among ``choices``, e.g. ``one_of(("sgd", "adam"), optimizer=self.optimizer)``
    (optimizer must be one of 'sgd', 'adam', got 'rmsprop')."""
    choices = tuple(choices)
    for name, value in values.items():
        if (value is None and none is not False) or value in choices:
            continue
        _fail(name, "one of " + ", ".join(map(repr, choices)), value, about, none)


def fit_schedule(lr: float, epochs: int) -> None:
    """The two checks every fine-tuning method needs: ``lr > 0`` and ``epochs ≥ 1``."""
    positive(lr=lr)
    at_least(1, epochs=epochs)


# -- the same rules as attrs validators (checked when the plugin is built, so a bad --set fails at once) --


def at_least_field(minimum: int | float) -> Any:
    """An attrs validator: the field is ≥ ``minimum`` (None passes, for optional fields), e.g.
    ``steps: int = attrs.field(default=100, validator=validate.at_least_field(1))``."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None and not value >= minimum:
            raise ValueError(f"{attribute.name} must be at least {minimum}, got {value}")

    return check


def step_fraction_field(instance: Any, attribute: Any, value: Any) -> None:
    """An attrs validator for a PGD step given as a fraction of ε: in (0, 1]."""
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} is the PGD step as a fraction of ε and must be in (0, 1], got {value}")
