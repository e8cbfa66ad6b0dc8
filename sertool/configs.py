"""Config dataclasses from plain dicts (TOML files, CLI strings): type coercion, unknown keys, TOML output."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

from sertool.errors import ConfigError


def _coerce_tuple(name: str, value: Any, annotation: Any) -> tuple:
    """``tuple[int, ...]``, ``tuple[float, ...]`` or ``tuple[tuple[int, int], ...]`` from a TOML array or a string.

    Strings: comma-separated items, pairs written ``AxB`` (``"9x1,1x11,3x3"``);
    an empty string is the empty tuple.
    """
    item = typing.get_args(annotation)[0]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ConfigError(f"{name} = {value!r} is not a list; write e.g. {name} = [1, 2] or --set {name}=1,2")
    if typing.get_origin(item) is not tuple:
        return tuple(coerce(name, p, item) for p in parts)
    types = typing.get_args(item)
    out = []
    for part in parts:
        pair = part.lower().split("x") if isinstance(part, str) else part
        if not isinstance(pair, (list, tuple)) or len(pair) != len(types):
            raise ConfigError(f"{name}: {part!r} is not a pair; write pairs as [9, 1] or 9x1")
        out.append(tuple(coerce(name, v, t) for v, t in zip(pair, types)))
    return tuple(out)


def coerce(name: str, value: Any, annotation: Any) -> Any:
    if typing.get_origin(annotation) is tuple:
        return _coerce_tuple(name, value, annotation)
    target = {"int": int, "float": float, "bool": bool, "str": str}.get(
        annotation if isinstance(annotation, str) else getattr(annotation, "__name__", ""), None
    )
    if target is None:
        return value
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name} = {value!r} is not a boolean; use true or false")
    if target is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if target is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, target) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return target(value)
        except ValueError:
            pass
    raise ConfigError(f"{name} = {value!r} is not a{'n' if target is int else ''} {target.__name__}")


def dataclass_from_dict(cls, data: dict[str, Any], *, what: str):
    """``cls(**data)`` with values coerced to the field types; unknown keys name the valid ones.

    ``what`` names the config in messages, e.g. ``"model 'light_sernet'"``.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for {what}; valid: {', '.join(sorted(fields))}")
    return cls(**{k: coerce(k, v, hints[k]) for k, v in data.items()})


def parse_assignments(items: typing.Iterable[str]) -> dict[str, str]:
    """``["n-mfcc=13", "center=false"]`` -> ``{"n_mfcc": "13", "center": "false"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not KEY=VALUE")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def to_toml_table(config) -> str:
    """Every field of a config dataclass as ``key = value`` lines."""
    return "".join(f"{k} = {toml_value(v)}\n" for k, v in dataclasses.asdict(config).items())


def load_toml(path) -> dict[str, Any]:
    """Read a TOML config file into a dict; ConfigError naming the file when it is missing or invalid."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); see `sertool extract --print-config NAME`") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def choices(config_cls, field_name: str) -> tuple[str, ...]:
    """The fixed set of values a config dataclass field accepts, from its ``metadata["choices"]``.

    Parameters
    ----------
    config_cls : type
        A dataclass (or an instance of one), e.g. :class:`~sertool.training.config.TrainConfig`.
    field_name : str
        One of its fields, e.g. ``"optimizer"``.

    Returns
    -------
    tuple of str
        The allowed values in their declared order; ``()`` for a field with no fixed set.

    Raises
    ------
    ConfigError
        ``field_name`` is not a field of ``config_cls``.
    """
    for item in dataclasses.fields(config_cls):
        if item.name == field_name:
            return tuple(item.metadata.get("choices", ()))
    raise ConfigError(f"{getattr(config_cls, '__name__', type(config_cls).__name__)} has no field {field_name!r}")

