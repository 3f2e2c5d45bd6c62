"""Registries by name: prior variants, dataset readers and segmenters are all found the same way.

A registry maps a name to an object (a class or a loader function). Built-in entries are known by
the module that defines them and are imported on first lookup, so ``import scpdiff`` stays light and
an optional extra (a segmenter needing mmsegmentation) costs nothing until it is asked for. Anything
else, a plugin module say, adds itself with the :meth:`Registry.register` decorator::

    SEGMENTERS = Registry("segmenter", {"toy": "scpdiff.segmenters.toy"})

    @SEGMENTERS.register("toy")
    def load_toy(checkpoint, device="cpu"): ...

    SEGMENTERS.get("toy")          # imports scpdiff.segmenters.toy the first time

A name is taken once: a second, different object under it is a :class:`ConfigError` naming both
(``module.qualname``), so a plugin never silently replaces a built-in or another plugin. The same
object again (same module and qualname: a module imported twice, a test run twice) is accepted.

Imports only :mod:`scpdiff.errors`; the registries themselves live with what they register.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Mapping, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def origin(obj) -> str:
    """Where ``obj`` is defined, as ``module.qualname`` (what a duplicate error names)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


class Registry(Generic[T]):
    """Objects by name, with built-ins imported lazily and duplicates rejected.

    ``what`` names an entry in messages ("prior variant", "dataset kind", "segmenter");
    ``builtins`` maps each built-in name to the module that registers it when imported.
    """

    def __init__(self, what: str, builtins: Mapping[str, str] | None = None):
        self.what = what
        self.builtins = dict(builtins or {})
        self._entries: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; raise :class:`ConfigError` if another object holds it."""
        builtin_module = self.builtins.get(name)
        if name not in self._entries and builtin_module and getattr(obj, "__module__", None) != builtin_module:
            # a built-in name is taken by its module even before that is imported: import it now
            # so the clash is reported here rather than the built-in being shadowed unseen
            importlib.import_module(builtin_module)
        existing = self._entries.get(name)
        if existing is not None and existing is not obj and origin(existing) != origin(obj):
            raise ConfigError(
                f"a {self.what} named {name!r} is already registered ({origin(existing)}); "
                f"{origin(obj)} cannot take the same name"
            )
        self._entries[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@REGISTRY.register("name")``."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str) -> T:
        """The object registered as ``name``, importing its built-in module on first use."""
        if name not in self._entries and name in self.builtins:
            importlib.import_module(self.builtins[name])
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.what} {name!r}; known: {self.names()}") from None

    def names(self) -> list[str]:
        """Every name a lookup accepts (registered or built-in), sorted; imports nothing."""
        return sorted(set(self._entries) | set(self.builtins))
