"""`initlab check RESULTS_DIR`: expectations and baselines for CI (docs/check.md).

Exit codes: 0 every check passed; 1 a failed expectation or a regression against the baseline;
2 usage or config error (a malformed expectation, a malformed baseline file); 3 results or
baseline not found. Outputs: a table or JSON on stdout, `--junit-xml FILE`, and GitHub Actions
annotations plus a step summary when GITHUB_ACTIONS=true.
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from initlab import __version__
from initlab.check.expect import (
    Case,
    Tolerance,
    baseline_doc,
    check_expectations,
    compare,
    parse_expectations,
    parse_tol,
)
from initlab.cli.console import DebugOpt, app, err, out, preflight_file, reporting, wrap
from initlab.errors import ConfigError, InitlabError, Problem

Key = tuple[str | int, ...]
DEFAULT = Tolerance(rtol=1e-6, atol=1e-12)


class BaselineNotFoundError(InitlabError):
    """--baseline names a file that does not exist (and --update-baseline was not given)."""

    exit_code = 3


# ---------------------------------------------------------------- reading


def yaml_lines(text: str) -> dict[Key, int]:
    """1-based line of every key path in a YAML document (the key's line for mapping values)."""
    lines: dict[Key, int] = {}
    seen: set[int] = set()

    def walk(node: yaml.Node, key: Key) -> None:
        if id(node) in seen:  # an alias: its anchor was walked (an alias bomb stays linear)
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    lines.setdefault((*key, k.value), k.start_mark.line + 1)
                    walk(v, (*key, k.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines.setdefault((*key, i), v.start_mark.line + 1)
                walk(v, (*key, i))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return lines
    if root is not None:
        walk(root, ())
    return lines


def load_results(folder: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any], Path]]:
    """{cell: (summary, config, config file)}: one result ("" cell) or a sweep's cells."""
    from initlab.results.folder import CONFIG_FILE, SUMMARY_FILE, ResultsNotFoundError

    def read(cell_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
        try:
            summary = json.loads((cell_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
            cfg_file = cell_dir / CONFIG_FILE
            config = (yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
                      if cfg_file.is_file() else {}) or {}
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise ResultsNotFoundError(f"{cell_dir}: cannot read results: {e}") from None
        if not isinstance(summary, dict) or not isinstance(config, dict):
            raise ResultsNotFoundError(f"{cell_dir}: not an initlab results folder")
        return summary, config, cfg_file

    if not folder.is_dir():
        raise ResultsNotFoundError(f"{folder}: no results folder here (run `initlab run` first)")
    summary_file = folder / SUMMARY_FILE
    if summary_file.is_file():
        summary, config, cfg_file = read(folder)
        if isinstance(summary.get("variants"), list):
            return {"": (summary, config, cfg_file)}
    cells = sorted(p.parent for p in (folder / "cells").glob(f"*/{SUMMARY_FILE}"))
    if not cells:
        raise ResultsNotFoundError(f"{folder}: no {SUMMARY_FILE} with variants here, nor sweep "
                                   "cells (run `initlab run` or `initlab sweep` first)")
    return {c.name: read(c) for c in cells}


def read_baseline(path: Path) -> tuple[dict[str, Any], dict[Key, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineNotFoundError(
            f"{path}: no such baseline; write it with --update-baseline") from None
    except UnicodeDecodeError as e:  # found by tests/test_fuzz_commands.py
        raise ConfigError([Problem(f"not UTF-8 text (byte {e.start})", file=str(path),
                                   expected="a baseline written by --update-baseline")]) from None
    except OSError as e:
        raise BaselineNotFoundError(f"{path}: cannot read the baseline: {e}") from None
    try:
        doc = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError([Problem("nested too deeply", file=str(path),
                                   expected="a baseline written by --update-baseline")]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError([Problem(f"invalid YAML: {getattr(e, 'problem', e)}", file=str(path),
                                   line=mark.line + 1 if mark else None,
                                   col=mark.column + 1 if mark else None)]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), dict) \
            or doc.get("format_version") != 1:
        raise ConfigError([Problem("not an initlab baseline", file=str(path), expected=(
            "format_version: 1 and cells: {...}, as written by --update-baseline"))])
    lines = yaml_lines(text)
    _check_baseline(doc["cells"], path, lines)
    return doc, lines


def _check_baseline(cells: Mapping[Any, Any], path: Path, lines: Mapping[Key, int]) -> None:
    """Each cell {config_hash, variants: {label: {metric: value}}}, every value a number, a
    bool, a string or null: a malformed baseline (`variants: 5`) is one positioned line."""
    def bad(key: Key, what: str, expected: str) -> ConfigError:
        what = f"found {'an' if what[2] in 'aeiou' else 'a'} {what[2:]}"
        line = next((lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in lines), None)
        return ConfigError([Problem(what, ".".join(map(str, key)), str(path), line,
                                    expected=f"{expected}, as written by --update-baseline")])

    for cell, body in cells.items():
        where: Key = ("cells", cell)
        if not isinstance(body, Mapping):
            raise bad(where, f"a {type(body).__name__}", "a mapping with config_hash and variants")
        variants = body.get("variants")
        if not isinstance(variants, Mapping):
            raise bad((*where, "variants"), f"a {type(variants).__name__}",
                      "a mapping of variant labels to metrics")
        for label, metrics in variants.items():
            at: Key = (*where, "variants", label)
            if not isinstance(metrics, Mapping):
                raise bad(at, f"a {type(metrics).__name__}", "a mapping of metrics to values")
            for key, value in metrics.items():
                if not isinstance(key, str) or isinstance(value, (list, dict)):
                    raise bad((*at, key), f"a {type(value).__name__}",
                              "a number, true/false, a string or null")


def write_baseline(path: Path, summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    from initlab.results.folder import atomic_write_text

    doc = baseline_doc(summaries, __version__)
    header = ("# initlab baseline: every metric of every variant, compared by `initlab check\n"
              "# RESULTS --baseline THIS_FILE`. Rewrite with --update-baseline; review the diff\n"
              "# like code (a changed number is a changed result).\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, header + yaml.safe_dump(doc, sort_keys=False, width=100))
    return doc


def expectations_of(cells: Mapping[str, tuple[dict[str, Any], dict[str, Any], Path]]
                    ) -> list[Case]:
    """Evaluate each cell's stored `expect:` (ConfigError, positioned, if one is malformed)."""
    cases: list[Case] = []
    for cell, (summary, config, cfg_file) in cells.items():
        labels = [str(v["label"]) for v in summary.get("variants", [])]
        found, problems = parse_expectations(config.get("expect"), labels)
        if problems:
            text = cfg_file.read_text(encoding="utf-8") if cfg_file.is_file() else ""
            raise ConfigError(positioned(problems, str(cfg_file), yaml_lines(text)))
        cases += check_expectations(found, summary, cell)
    return cases


def positioned(problems: Sequence[Any], file: str, lines: Mapping[Key, int]) -> list[Problem]:
    out_ = []
    for p in problems:
        key: Key = ("expect", p.index, p.key) if p.key else ("expect", p.index)
        line = lines.get(key) or lines.get(("expect", p.index)) or lines.get(("expect",))
        path = ".".join(map(str, key if p.index >= 0 else ("expect",)))
        out_.append(Problem(p.message, path, file, line, None, p.expected, p.suggestion))
    return out_


# ---------------------------------------------------------------- rendering


def _state(c: Case) -> str:
    return {True: "pass", False: "FAIL", None: "skip"}[c.passed]


def lines_of(cases: Sequence[Case], all_rows: bool) -> list[str]:
    """One unwrapped line per case (CI logs): every expectation, and the baseline metrics that
    did not pass (all of them with `all_rows`)."""
    return [f"{_state(c):4}  {c.cell + ': ' if c.cell else ''}{c.message}" for c in cases
            if all_rows or c.kind == "expect" or c.passed is not True]


def _same_configs(summaries: Mapping[str, Mapping[str, Any]], doc: Mapping[str, Any],
                  results_dir: Path, baseline: Path) -> None:
    """A baseline made for another config: one line and exit 2 (its numbers are not
    comparable, so a list of FAILs would say nothing)."""
    current = baseline_doc(summaries)["cells"]
    base = doc.get("cells") or {}
    other = [c for c in current if c in base and (base[c] or {}).get("config_hash")
             != current[c]["config_hash"]]
    if not other:
        return
    c = other[0]
    many = f" ({len(other)} of {len(current)} cells; first: {c})" if len(current) > 1 else ""
    err.print(f"error: {baseline} was made for another config than {results_dir}{many}: "
              f"config_hash {(base[c] or {}).get('config_hash')} != "
              f"{current[c]['config_hash']}; rerun the baseline's config, or rewrite the "
              f"baseline with --update-baseline if the change is intended", markup=False)
    raise typer.Exit(2)


def _labels(summary: Mapping[str, Any]) -> list[str]:
    return [str(v.get("label")) for v in summary.get("variants", [])]


def counts(cases: Sequence[Case]) -> tuple[int, int, int]:
    return (sum(c.passed is True for c in cases), sum(c.passed is False for c in cases),
            sum(c.passed is None for c in cases))


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else str(x)
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    return x


def as_json(cases: Sequence[Case]) -> str:
    passed, failed, skipped = counts(cases)
    return json.dumps({
        "passed": failed == 0, "counts": {"passed": passed, "failed": failed, "skipped": skipped},
        "cases": [{"kind": c.kind, "cell": c.cell, "variant": c.variant, "name": c.name,
                   "status": _state(c).lower(), "message": c.message,
                   "value": _jsonable(c.value), "expected": _jsonable(c.expected), **c.extra}
                  for c in cases]}, indent=2)


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def junit_xml(cases: Sequence[Case], name: str) -> str:
    """JUnit XML: one <testsuite> per kind (expectations, baseline), one <testcase> per case."""
    root = ET.Element("testsuites", name=name)
    for kind in ("expect", "baseline"):
        group = [c for c in cases if c.kind == kind]
        if not group:
            continue
        _passed, failed, skipped = counts(group)
        suite = ET.SubElement(root, "testsuite", name=f"{name}: {kind}", tests=str(len(group)),
                              failures=str(failed), errors="0", skipped=str(skipped), time="0")
        for c in group:
            classname = ".".join(x for x in ("initlab", kind, c.cell, c.variant) if x)
            tc = ET.SubElement(suite, "testcase", classname=_XML_BAD.sub("?", classname),
                               name=_XML_BAD.sub("?", c.name), time="0")
            message = _XML_BAD.sub("?", c.message)
            if c.passed is False:
                ET.SubElement(tc, "failure", message=message, type="regression"
                              if kind == "baseline" else "expectation").text = message
            elif c.passed is None:
                ET.SubElement(tc, "skipped", message=message)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def gh_escape(text: str, prop: bool = False) -> str:
    """GitHub workflow-command escaping: data escapes % CR LF; properties also : and ,."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def annotation(c: Case, file: str | None, line: int | None) -> str:
    props = [f"file={gh_escape(file, True)}"] if file else []
    if file and line:
        props.append(f"line={line}")
    props.append(f"title={gh_escape('initlab check: ' + c.title, True)}")
    return f"::error {','.join(props)}::{gh_escape(c.message)}"


def step_summary(cases: Sequence[Case], title: str) -> str:
    passed, failed, skipped = counts(cases)
    rows = [f"### {title}: {'passed' if not failed else 'FAILED'}", "",
            f"{passed} passed, {failed} failed, {skipped} skipped", ""]
    shown = [c for c in cases if c.kind == "expect" or c.passed is not True]
    if shown:
        rows += ["| status | check | detail |", "| --- | --- | --- |"]
        for c in shown:
            icon = {True: "✅ pass", False: "❌ FAIL", None: "⏭ skip"}[c.passed]
            cells = [icon, c.title, c.message]
            rows.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ")
                                          for x in cells) + " |")
    return "\n".join(rows) + "\n\n"


def _writable_outputs(junit: Path | None, baseline: Path | None) -> None:
    """Before anything is read or compared: --junit-xml, the --baseline to update and
    GITHUB_STEP_SUMMARY (under GitHub Actions) can be written (OutputError, exit 2)."""
    from initlab.results.folder import OutputError

    for path, option in ((junit, "--junit-xml"), (baseline, "--baseline")):
        if path is not None:
            preflight_file(path, option, parents=True)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and os.environ.get("GITHUB_ACTIONS") == "true":
        try:
            with open(summary, "a", encoding="utf-8"):
                pass
        except OSError as e:
            raise OutputError(f"GITHUB_STEP_SUMMARY={summary}: cannot be written "
                              f"({e.strerror or e})") from None


def publish(cases: Sequence[Case], title: str, where: Any) -> None:
    """GitHub Actions annotations (stdout) and step summary, when GITHUB_ACTIONS=true.
    `where(case) -> (file, line)`."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    for c in cases:
        if c.passed is False:
            print(annotation(c, *where(c)), flush=True)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(step_summary(cases, title))


def expectation_lines(cases: Sequence[Case], file: str) -> Any:
    try:
        lines = yaml_lines(Path(file).read_text(encoding="utf-8"))
    except OSError:
        lines = {}

    def where(c: Case) -> tuple[str | None, int | None]:
        return file, lines.get(("expect", c.index if c.index is not None else -1))
    return where


def report_expectations(expect: Any, summary: Mapping[str, Any], config_file: str,
                        quiet: bool = False) -> bool:
    """For `initlab run`: evaluate a config's expectations, print the table; True if all pass."""
    found, _ = parse_expectations(expect, None)  # validated by load_config already
    cases = check_expectations(found, summary)
    passed, failed, skipped = counts(cases)
    absent = [c for c in cases if c.passed is None and c.variant not in _labels(summary)]
    for line in lines_of([c for c in cases if c not in absent], all_rows=False):
        if not quiet or not line.startswith("pass"):
            out.print(line, markup=False, highlight=False)
    if absent:
        names = ", ".join(dict.fromkeys(c.variant for c in absent))
        out.print(f"skip  {len(absent)} expectation(s) name variants these results do not have "
                  f"({names}): an override (--set init=...) replaced them", markup=False,
                  soft_wrap=not wrap())  # a sentence: wrapped at words on a terminal
    publish(cases, f"initlab expectations ({summary.get('name')})",
            expectation_lines(cases, config_file))
    verdict = f"expectations: {passed} passed, {failed} failed" + \
        (f", {skipped} skipped" if skipped else "")
    (err if failed else out).print(verdict, markup=False)
    return failed == 0


# ---------------------------------------------------------------- the command


@app.command(epilog="Examples: initlab check results/playground  |  initlab check "
             "results/playground --baseline baselines/playground.yaml --junit-xml check.xml")
def check(
    results_dir: Annotated[Path, typer.Argument(
        help="A results folder written by `initlab run` (or a sweep's folder).")],
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", metavar="FILE", help="Compare every metric against this baseline file.")
    ] = None,
    rtol: Annotated[float, typer.Option(
        min=0, help="Relative tolerance of baseline comparisons.")] = DEFAULT.rtol,
    atol: Annotated[float, typer.Option(
        min=0, help="Absolute tolerance of baseline comparisons.")] = DEFAULT.atol,
    tol: Annotated[list[str] | None, typer.Option(
        "--tol", metavar="METRIC=rtol:R[,atol:A]", help="A metric's own tolerance, e.g. "
        "--tol final_loss=rtol:1e-3 (METRIC: as in the baseline, without \\[i], or a glob).")
    ] = None,
    update_baseline: Annotated[bool, typer.Option(
        "--update-baseline", help="Write the --baseline file from these results.")] = False,
    junit: Annotated[Path | None, typer.Option(
        "--junit-xml", metavar="FILE", help="Also write a JUnit XML report.")] = None,
    format_: Annotated[str, typer.Option(
        "--format", help="Output on stdout: table or json.")] = "table",
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show passing baseline metrics in the table too.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Check stored results against their config's `expect:` and a baseline, without retraining.

    Exit codes: 0 pass, 1 failed expectation or regression, 2 usage/config error, 3 results or
    baseline not found."""
    if format_ not in ("table", "json"):
        raise typer.BadParameter(f"'{format_}' is not table or json", param_hint="--format")
    if update_baseline and baseline is None:
        raise typer.BadParameter("--update-baseline needs --baseline FILE",
                                 param_hint="--update-baseline")
    overrides = []
    default = Tolerance(rtol, atol)
    for text in tol or ():
        try:
            overrides.append(parse_tol(text, default))
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--tol") from None
    with reporting(debug):
        _writable_outputs(junit, baseline if update_baseline else None)
        cells = load_results(results_dir)
        summaries = {c: s for c, (s, _, _) in cells.items()}
        cases = expectations_of(cells)
        lines: dict[Key, int] = {}
        if baseline is not None and update_baseline:
            doc = write_baseline(baseline, summaries)
            n = sum(len(m) for c in doc["cells"].values() for m in c["variants"].values())
            err.print(f"baseline: wrote {n} metrics of {len(doc['cells'])} result(s) to "
                      f"{baseline}", markup=False)
        elif baseline is not None:
            doc, lines = read_baseline(baseline)
            _same_configs(summaries, doc, results_dir, baseline)
            cases += compare(summaries, doc, default, overrides)
        if not cases and update_baseline:
            return
        if not cases:
            err.print("nothing to check: the results have no `expect:` and no --baseline was "
                      "given", markup=False)
            raise typer.Exit(2)

    def where(c: Case) -> tuple[str | None, int | None]:
        if c.kind == "expect":
            _, _, cfg_file = cells[c.cell]
            return expectation_lines([c], str(cfg_file))(c)
        cell = c.cell
        key: Key = ("cells", cell, "variants", c.variant, c.name) if c.variant else (
            "cells", cell)
        line = lines.get(key) or lines.get(key[:4]) or lines.get(key[:2])
        return str(baseline), line

    title = f"initlab check {results_dir}"
    passed, failed, skipped = counts(cases)
    if format_ == "json":
        out.print(as_json(cases), markup=False, highlight=False, soft_wrap=True)
    else:
        for line in lines_of(cases, all_rows=verbose):
            out.print(line, markup=False, highlight=False)
        hidden = sum(c.passed is True and c.kind == "baseline" for c in cases)
        if hidden and not verbose:
            out.print(f"{hidden} baseline metrics match (--verbose lists them)", markup=False)
    with reporting(debug):  # checked above; a write that still fails is one line, exit 2
        if junit is not None:
            from initlab.results.folder import atomic_write_text
            junit.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(junit, junit_xml(cases, title))
        publish(cases, title, where)
    err.print(f"check: {passed} passed, {failed} failed, {skipped} skipped", markup=False)
    if failed:
        raise typer.Exit(1)
