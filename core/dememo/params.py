"""Typed hyper-parameters at the edges: ``--set`` strings and suite values structured with cattrs.

Failures become one-line, path-addressed messages such as ``expected float @ $.finetune.lr``.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

import attrs
import cattrs
import cattrs.v

from dememo.errors import ParameterError, did_you_mean

T = TypeVar("T")

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _short(value: Any, n: int = 80) -> str:
    """``repr(value)`` cut to ``n`` characters (inputs can be megabytes; integers beyond 4,300 digits have
    no repr at all)."""
    try:
        text = repr(value)
    except ValueError:
        return "an integer of more than 4300 digits"
    return text if len(text) <= n else text[: n - 3] + "..."


def printable(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped: a message stays one line."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


class _Mismatch(ValueError):
    """A value of the wrong type or range for a field, raised by this module's structure hooks; its message
    (``expected float, got 'fast'``) is the reason shown."""


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _Mismatch(f"expected a boolean (true/false), got {_short(value)}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Mismatch(f"expected float, got {_short(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise _Mismatch(f"expected float, got {_short(value)}, beyond the range of floats") from None
    except ValueError:
        raise _Mismatch(f"expected float, got {_short(value)}") from None
    if math.isnan(out):  # every comparison in a range check is False: NaN would pass them silently
        raise _Mismatch(f"expected a number, got {_short(value)} (NaN)")
    # ±inf is a value some parameters mean (certified-newton's epsilon = inf: no noise); range checks see it
    return out


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool):
        raise _Mismatch(f"expected int, got {_short(value)}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, str)):
        try:
            return int(value)
        except ValueError:
            raise _Mismatch(f"expected int, got {_short(value)}") from None
    raise _Mismatch(f"expected int, got {_short(value)}")


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise _Mismatch(f"expected string, got {_short(value)}")
    return value


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(str, _structure_str)


def _format_exception(exc: BaseException, type_: Any) -> str:
    """cattrs' messages, keeping the reason of a ValueError raised by a constructor (e.g. a range check)."""
    if isinstance(exc, _Mismatch):
        return str(exc)
    if isinstance(exc, ValueError) and type_ is None and str(exc):
        return f"invalid value ({exc})"
    return cattrs.v.format_exception(exc, type_)


def structure(value: Any, cls: type[T], path: str) -> T:
    """Structure ``value`` into ``cls``; raise ParameterError naming the path of the first problem."""
    if attrs.has(cls):
        attrs.resolve_types(cls)
    try:
        return converter.structure(value, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, ArithmeticError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            messages = cattrs.transform_error(exc, path=path, format_exception=_format_exception)
            raise ParameterError(printable("; ".join(messages))) from None
        raise ParameterError(printable(f"{exc} @ {path}")) from None


def field_names(cls: type) -> list[str]:
    return [f.name for f in attrs.fields(cls)]


def required(cls: type) -> list[str]:
    """The parameters of ``cls`` that have no default."""
    return [f.name for f in attrs.fields(cls) if f.init and f.default is attrs.NOTHING]


def build(cls: type[T], params: dict[str, Any], path: str) -> T:
    """An instance of plugin class ``cls`` from ``params`` (unknown names get a did-you-mean; a parameter
    without a default that ``params`` lacks is named with where to give it)."""
    known = field_names(cls)
    for name in params:
        if name not in known:
            hint = did_you_mean(name, known)
            choices = ", ".join(known) if known else "none"
            raise ParameterError(f"unknown parameter {name!r} @ {path}{hint}; parameters: {choices}")
    missing = [name for name in required(cls) if name not in params]
    if missing:
        family, plugin = getattr(cls, "family", "plugin"), getattr(cls, "name", "") or cls.__name__
        what = f"parameter {missing[0]!r}, which has" if len(missing) == 1 else \
            f"parameters {', '.join(map(repr, missing))}, which have"
        sets = " ".join(f"--set {plugin}.{m}=VALUE" for m in missing)
        raise ParameterError(printable(
            f"{family} {plugin!r} needs {what} no default (@ {path}); give {'it' if len(missing) == 1 else 'them'} "
            f"with {sets} or in the suite's [params.{family}.{plugin}]"))
    return structure(dict(params), cls, path)


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (numbers, true/false, lists), else the raw string."""
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:
        raise ParameterError(f"the value {_short(text, 40)} is nested too deeply to read") from None


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["em.steps=5", "recipe.epochs=3"]`` → ``{"em": {"steps": 5}, "recipe": {"epochs": 3}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, eq, value = item.partition("=")
        plugin, dot, param = target.rpartition(".")
        if not eq or not dot or not plugin or not param:
            raise ParameterError(f"--set expects PLUGIN.PARAM=VALUE, got {item!r} (e.g. --set finetune.lr=0.01)")
        out.setdefault(plugin.strip(), {})[param.strip()] = parse_value(value.strip())
    return out


def parse_label(label: str) -> tuple[str, dict[str, Any]]:
    """``"neggrad-plus(alpha=0.97, epochs=2)"`` → ``("neggrad-plus", {"alpha": 0.97, "epochs": 2})``; a bare
    name has no parameters. Values are parsed like ``--set`` values."""
    from dememo.errors import ParameterError

    text = label.strip()
    if "(" not in text:
        if not text or ")" in text or "=" in text:
            raise ParameterError(f"cannot read plugin label {label!r}; write name or name(param=value, ...)")
        return text, {}
    if not text.endswith(")"):
        raise ParameterError(f"cannot read plugin label {label!r}: missing closing parenthesis")
    name, inner = text[:-1].split("(", 1)
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in inner.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"cannot read {item!r} in plugin label {label!r}; write param=value")
        params[key.strip()] = parse_value(value.strip())
    if not name.strip():
        raise ParameterError(f"plugin label {label!r} has no name")
    return name.strip(), params
