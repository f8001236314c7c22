"""Errors that initlab turns into one-line messages and exit codes (never tracebacks).

A `Problem` is one thing wrong with the user's input, positioned when we know where:
``FILE:LINE:COL: key.path: what is wrong; expected ...; did you mean '...'?``
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def suggest(word: object, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The nearest valid choice to `word` (difflib ratio >= cutoff), or None."""
    if not isinstance(word, str):
        return None
    pool = list(choices)
    best = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    if best:
        return best[0]
    lower = {c.lower(): c for c in pool}
    best = difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=cutoff)
    return lower[best[0]] if best else None


@dataclass(frozen=True)
class Problem:
    """One positioned problem with a config or a command-line value."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    expected: str | None = None
    suggestion: str | None = None

    def format(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        text = f"{where}{self.path + ': ' if self.path else ''}{self.message}"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.suggestion:
            text += f"; did you mean '{self.suggestion}'?"
        return text


class InitlabError(Exception):
    """Base of the errors the CLI reports without a traceback (exit code `exit_code`)."""

    exit_code = 2

    def __init__(self, *args: object, exit_code: int | None = None):
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(InitlabError):
    """Every problem found in one config (all at once, not just the first)."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


class UnknownNameError(ValueError):
    """A name that is not in a registry; lists the valid choices and the nearest one."""

    def __init__(self, kind: str, name: object, choices: Sequence[str]):
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        self.suggestion = suggest(name, self.choices)
        hint = f"; did you mean '{self.suggestion}'?" if self.suggestion else ""
        super().__init__(
            f"unknown {kind} {name!r}; expected one of: {', '.join(self.choices)}{hint}"
        )


class BadParameterError(ValueError):
    """A parameter that a scheme/activation/dataset does not take, or a value it cannot take."""

    def __init__(self, owner: str, param: str, message: str, choices: Sequence[str] = ()):
        self.owner = owner
        self.param = param
        self.choices = sorted(choices)
        self.suggestion = suggest(param, self.choices) if choices else None
        text = f"{owner}: {message}"
        if self.choices:
            text += f"; expected one of: {', '.join(self.choices) or '(no parameters)'}"
        if self.suggestion:
            text += f"; did you mean '{self.suggestion}'?"
        super().__init__(text)


class MissingDependencyError(InitlabError):
    """An optional extra is needed (e.g. scikit-learn for `digits`)."""


class DataUnavailableError(InitlabError):
    """A dataset that must be downloaded cannot be reached or fails verification."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread of a command so that it cleans up as after Ctrl-C
    (temporary folders removed, workers stopped); the command exits 143 instead of 130."""
