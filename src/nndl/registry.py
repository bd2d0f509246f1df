"""The one ``get(identifier)`` behind every name registry.

Activations, costs and initialisers are small classes kept in a dict from
name to class (``ACTIVATIONS``, ``COSTS``, ``INITIALIZERS``). Each module's
``get`` calls :func:`lookup`, so that all of them accept the same things:

* an instance of the registry's base class, returned as it is;
* a subclass of it, instantiated with no arguments;
* a name, case-insensitive, or one of the registry's aliases;

and refuse anything else with a :class:`~nndl.errors.ConfigError` that lists
the valid names: ``unknown cost 'hinge'; valid costs: quadratic, ...``.
"""

from __future__ import annotations

from typing import Mapping, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def lookup(identifier, registry: Mapping[str, type[T]], base: type[T], what: str,
           aliases: Mapping[str, str] | None = None) -> T:
    """Resolve ``identifier`` against ``registry`` (name -> class).

    Args:
        identifier: an instance of ``base``, a subclass of ``base``, or a name.
        registry: the canonical names (lower case) and their classes.
        base: the registry's base class.
        what: the singular noun for messages, e.g. ``"cost"``.
        aliases: other lower-case names -> canonical names.

    Raises:
        ConfigError: ``unknown <what> <identifier>; valid <what>s: <names>``.
    """
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if isinstance(identifier, str):
        key = identifier.lower()
        key = (aliases or {}).get(key, key)
        if key in registry:
            return registry[key]()
    raise ConfigError(f"unknown {what} {identifier!r}; valid {what}s: {', '.join(registry)}")


__all__ = ["lookup"]
