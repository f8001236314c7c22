"""YAML read with the position of every key: plain values, plus FILE:LINE:COL for error messages.

    reader = YamlReader("c.yaml");  doc = reader.read(text)   # None and reader.problems if bad
    reader.nodes[("init", 0, "scale")] -> (key node, value node): where that key was written
    Positions("c.yaml", reader.nodes, overridden).problem(Found(("init", 0, "scale"), "..."))

`yaml.compose` builds only the node tree: no object is ever constructed from a tag. Tags other
than YAML's plain types are refused, duplicate keys are problems (YAML would silently keep one),
`<<` merges are followed, and documents too large or too deep after alias expansion are
refused. A problem found later by its key path (`Found`) is walked back through the node tree to
a line and column by `Positions`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from initlab.errors import Problem

Loc = tuple[str | int, ...]  # a key path: mapping keys and list indices, e.g. ("init", 0, "scale")
MAX_VALUES = 100_000  # values after alias expansion: guards against "billion laughs" documents
MAX_DEPTH = 50
SET = "--set"  # the `file` of problems in command-line overrides

_TAG = "tag:yaml.org,2002:"
SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")}
MERGE = _TAG + "merge"


def line_col(mark: yaml.Mark | None) -> tuple[int | None, int | None]:
    """1-based (line, column) of a YAML mark; (None, None) without one."""
    return (mark.line + 1, mark.column + 1) if mark is not None else (None, None)


@dataclass
class Found:
    """A problem known by its key path; `Positions` turns it into a positioned Problem."""

    loc: Loc
    message: str
    expected: str | None = None
    suggestion: str | None = None
    at_key: bool = False  # point at the key (unknown key) rather than at its value


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 as a number (YAML 1.2; PyYAML's 1.1 wants 1.0e-3)."""


_Loader.add_implicit_resolver(
    _TAG + "float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _safe_tag(node: yaml.Node) -> bool:
    if isinstance(node, yaml.MappingNode):
        return node.tag == _TAG + "map"
    if isinstance(node, yaml.SequenceNode):
        return node.tag == _TAG + "seq"
    return node.tag in SCALAR_TAGS


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


class YamlReader:
    """Plain values from `yaml.compose`'s node tree: tags other than YAML's plain types are
    refused before anything is constructed; duplicate keys are problems; the key and value node
    of every key path are kept for positioning."""

    def __init__(self, file: str | None):
        self.file = file
        self.nodes: dict[Loc, tuple[yaml.Node | None, yaml.Node]] = {}
        self.problems: list[Problem] = []
        self.broken: set[Loc] = set()
        self.count = 0
        self._scalars = yaml.SafeLoader("")  # its constructor, for plain scalars only

    def read(self, text: str) -> Any:
        """The document's plain value (None when empty or unreadable: see `problems`)."""
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f" ({e.context})" if e.context else ""
            self.problems.append(self._problem(mark, (), f"invalid YAML: {e.problem}{where}"))
            return None
        except yaml.reader.ReaderError as e:
            line = text[: e.position].count("\n") + 1
            self.problems.append(Problem(f"invalid character {e.character!r} (line {line})",
                                         file=self.file, expected="printable text"))
            return None
        except (yaml.YAMLError, RecursionError) as e:
            message = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            self.problems.append(Problem(message, file=self.file))
            return None
        if root is None:
            return None
        try:
            return self.value(root, ())
        except _TooLarge as e:
            self.fail(e.node, (), f"nested deeper than {MAX_DEPTH} levels or more than "
                      f"{MAX_VALUES} values (after expanding aliases)")
            return None

    def _problem(self, mark: yaml.Mark | None, loc: Loc, message: str,
                 expected: str | None = None) -> Problem:
        line, col = line_col(mark)
        return Problem(message, ".".join(map(str, loc)), self.file, line, col, expected)

    def fail(self, node: yaml.Node, loc: Loc, message: str, expected: str | None = None) -> None:
        self.problems.append(self._problem(node.start_mark, loc, message, expected))
        self.broken.add(loc)

    def value(self, node: yaml.Node, loc: Loc, key: yaml.Node | None = None, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_VALUES or depth > MAX_DEPTH:
            raise _TooLarge(node)
        self.nodes.setdefault(loc, (key, node))
        if not _safe_tag(node):
            self.fail(node, loc, f"tag '{_short(node.tag)}' not allowed", "plain YAML values")
            return None
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, loc, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(n, (*loc, i), None, depth + 1) for i, n in enumerate(node.value)]
        try:
            return self._scalars.construct_object(node)
        except Exception as e:  # e.g. an int of 5000 digits, a bad timestamp
            self.fail(node, loc, f"cannot read this value: {e}")
            return None

    def mapping(self, node: yaml.MappingNode, loc: Loc, depth: int) -> dict[str, Any]:
        pairs = [(k, v) for k, v in node.value if k.tag != MERGE]
        explicit = len(pairs)
        for k, v in node.value:  # `<<: *base` merges; explicit keys win
            if k.tag == MERGE:
                pairs += self.merged(v, (*loc, "<<"))
        out: dict[str, Any] = {}
        first: dict[str, yaml.Node] = {}
        for i, (key_node, value_node) in enumerate(pairs):
            if not isinstance(key_node, yaml.ScalarNode) or not _safe_tag(key_node):
                self.fail(key_node, loc, "a key must be a plain name")
                continue
            key = str(key_node.value)
            if key in first:
                if i < explicit:
                    line = first[key].start_mark.line + 1
                    self.problems.append(self._problem(
                        key_node.start_mark, (*loc, key), f"duplicate key '{key}' (first on "
                        f"line {line}); YAML would silently keep only one", "each key once"))
                continue
            first[key] = key_node
            out[key] = self.value(value_node, (*loc, key), key_node, depth + 1)
        return out

    def merged(self, node: yaml.Node, loc: Loc) -> list[tuple[yaml.Node, yaml.Node]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not all(isinstance(s, yaml.MappingNode) for s in sources):
            self.fail(node, loc, "'<<' merges a mapping or a list of mappings")
            return []
        return [(k, v) for s in sources for k, v in s.value if k.tag != MERGE]


def read_text(file: str) -> tuple[str, Problem | None]:
    """A config file's text (UTF-8, without a BOM), or a Problem saying why it cannot be read."""
    def fail(message: str) -> tuple[str, Problem]:
        return "", Problem(message, file=file)

    try:
        raw = Path(file).read_bytes()
    except FileNotFoundError:
        return fail("no such file")
    except IsADirectoryError:
        return fail("this is a directory, not a config file")
    except PermissionError:
        return fail("cannot read the file: permission denied")
    except OSError as e:
        return fail(f"cannot read the file: {e.strerror or e}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return fail(f"not UTF-8 text (byte {e.start}, line {line})")
    return text.removeprefix("\ufeff"), None


@dataclass
class Positions:
    """Where each key path was written (`YamlReader.nodes`); paths under an `overridden` key
    were set on the command line and are reported as `--set`."""

    file: str | None
    nodes: Mapping[Loc, tuple[yaml.Node | None, yaml.Node]]
    overridden: set[Loc]

    def mark(self, loc: Loc, at_key: bool) -> yaml.Mark | None:
        """The deepest node on `loc`: its key if asked and exact, else its value."""
        for n in range(len(loc), -1, -1):
            head = loc[:n]
            # `init: x` was made a one-element list: init.0.* lives at init.*
            alt = ("init", *head[2:]) if head[:2] == ("init", 0) else head
            for cand in (head, alt):
                if cand in self.nodes:
                    key, value = self.nodes[cand]
                    exact = n == len(loc)
                    return (key if at_key and exact and key is not None else value).start_mark
        return None

    def problem(self, f: Found) -> Problem:
        """`f` at FILE:LINE:COL (or at `--set` when its key path was overridden)."""
        path = ".".join(map(str, f.loc))
        if any(f.loc[: len(o)] == o for o in self.overridden):
            return Problem(f.message, path, SET, None, None, f.expected, f.suggestion)
        # a key the override created (`--set trian.lr=0.1` makes `trian`): name the override
        made = [o for o in self.overridden if f.loc and o[: len(f.loc)] == f.loc]
        if made and f.loc not in self.nodes:
            return Problem(f.message, ".".join(map(str, made[0])), SET, None, None, f.expected,
                           f.suggestion)
        mark = self.mark(f.loc, f.at_key) if self.file is not None else None
        line, col = line_col(mark)
        return Problem(f.message, path, self.file, line, col, f.expected, f.suggestion)



def locate(problem: Problem, overridden: Iterable[str] = ()) -> Problem:
    """`problem` at its LINE:COL when it names a config file and a key path but no line (found
    after loading: a loss that does not fit the data set, data parameters the generator
    refuses): the file is read again and the path looked up; at `--set` when the path is under
    one of the `overridden` key paths ('train.loss'); unchanged when it cannot be placed."""
    if problem.file in (None, SET) or problem.line is not None or not problem.path:
        return problem
    if any(problem.path == o or problem.path.startswith(o + ".") or o.startswith(
            problem.path + ".") for o in overridden):
        return dataclasses.replace(problem, file=SET)
    text, unreadable = read_text(str(problem.file))
    if unreadable is not None:
        return problem
    reader = YamlReader(str(problem.file))
    try:
        reader.read(text)
    except Exception:  # a file that changed meanwhile: no position, no crash
        return problem
    loc = tuple(int(k) if k.isdigit() else k for k in problem.path.split("."))
    line, col = line_col(Positions(problem.file, reader.nodes, set()).mark(loc, False))
    return dataclasses.replace(problem, line=line, col=col) if line is not None else problem
