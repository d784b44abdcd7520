"""Checked reads of a config.json's fields: each names the field it refuses (runc's manner),
for oci.config and oci.resources."""
from __future__ import annotations

from pyminidocker.oci.state import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def get(obj: Any, key: str, kind: type | tuple[type, ...], where: str, default: Any = None
         ) -> Any:
    value = obj.get(key, default) if isinstance(obj, dict) else default
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"config.json: {where}{key}: expected {name}, got "
                          f"{type(value).__name__}")
    if isinstance(value, str) and "\0" in value:
        no_nul(where + key)
    return value


def no_nul(field: str) -> None:
    # no path, argument or variable the kernel takes can hold one: refuse it here, not as
    # a ValueError from os deep in the create path
    raise ConfigError(f"config.json: {field}: contains a NUL byte")


def strings(obj: Any, key: str, where: str) -> list[str]:
    items = get(obj, key, list, where, [])
    if not all(isinstance(s, str) for s in items):
        raise ConfigError(f"config.json: {where}{key}: expected a list of strings")
    if any("\0" in s for s in items):
        no_nul(where + key)
    return items
