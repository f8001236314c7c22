"""A name -> object table with aliases, one-line descriptions and 'did you mean' lookups."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from initlab.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    aliases: tuple[str, ...] = ()
    description: str = ""
    formula: str = ""


@dataclass
class Registry(Generic[T]):
    """Registered objects of one kind ("init scheme", "activation", "dataset", ...)."""

    kind: str
    _entries: dict[str, Entry[T]] = field(default_factory=dict)
    _alias: dict[str, str] = field(default_factory=dict)

    def register(
        self,
        name: str,
        obj: T,
        *,
        aliases: tuple[str, ...] = (),
        description: str = "",
        formula: str = "",
    ) -> T:
        for key in (name, *aliases):
            if key in self._alias:
                raise ValueError(f"{self.kind} {key!r} registered twice")
            self._alias[key] = name
        self._entries[name] = Entry(name, obj, aliases, description, formula)
        return obj

    def canonical(self, name: object) -> str:
        """The canonical name for `name` or an alias; UnknownNameError otherwise."""
        if isinstance(name, str):
            key = name.strip().lower().replace("-", "_")
            if key in self._alias:
                return self._alias[key]
        raise UnknownNameError(self.kind, name, self.all_names())

    def get(self, name: object) -> T:
        return self._entries[self.canonical(name)].obj

    def entry(self, name: object) -> Entry[T]:
        return self._entries[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        try:
            self.canonical(name)
        except UnknownNameError:
            return False
        return True

    def names(self) -> list[str]:
        """Canonical names, in registration order."""
        return list(self._entries)

    def all_names(self) -> list[str]:
        """Canonical names and aliases."""
        return list(self._alias)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())
