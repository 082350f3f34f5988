"""Output checking for the notebooks that holds on any machine and still catches real regressions.

nbval compares every saved output of a notebook with a fresh run, character for character. That is
right for deterministic results (counts, shapes, parity bounds, outputs of shipped weights), and wrong
for results of training done inside a notebook: another CPU's kernels differ in the last bits, and a few
hundred optimiser steps amplify that (notebook 04's 500-step run ends at 5.790 here, 5.755 with
``OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default``). This plugin adds two cell markers to nbval's own:

``# NBVAL_TOLERANCE rel=0.02 abs=0.01``
    Every number in the cell's text outputs (stdout, ``text/plain``, ``text/html``) may differ from the
    saved one by at most ``max(abs, rel * |saved|)``; all the text between the numbers must still match
    exactly. A number outside the tolerance, a missing line or a changed word fails the cell as usual,
    with nbval's diff.
``# NBVAL_SAMPLED_TEXT``
    The cell prints text sampled from a model trained inside the notebook. Its output is not compared
    verbatim; instead the cell must assert properties of the sample (the cell fails without an
    ``assert``).

``tests/test_nbcheck.py`` proves that both can fail: a learning rate 10x off and a broken parity turn
the run red, while the same notebook run under a perturbed numeric environment stays green.
"""

from __future__ import annotations

import ast
import math
import re

import nbval.plugin as nbval_plugin

_TOLERANCE = re.compile(r"^\s*#\s*NBVAL_TOLERANCE\b(?P<args>.*)$", re.MULTILINE)
_SAMPLED = re.compile(r"^\s*#\s*NBVAL_SAMPLED_TEXT\s*$", re.MULTILINE)
_ARG = re.compile(r"(rel|abs)\s*=\s*([0-9.eE+-]+)")
# A number as printed: thousands separators (12,345), decimals, exponents, an optional sign.
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_TEXT_KEYS = ("text/plain", "text/html", "text/markdown", "stdout", "stderr")


def parse_tolerance(source: str) -> tuple[float, float] | None:
    """The ``(rel, abs)`` of a cell's ``# NBVAL_TOLERANCE`` line, or None when the cell has none."""
    match = _TOLERANCE.search(source)
    if match is None:
        return None
    values = dict(_ARG.findall(match.group("args")))
    if not values:
        raise ValueError(f"NBVAL_TOLERANCE needs rel= and/or abs=, got {match.group(0).strip()!r}")
    rel, abs_ = float(values.get("rel", 0.0)), float(values.get("abs", 0.0))
    if not (rel >= 0 and abs_ >= 0 and math.isfinite(rel) and math.isfinite(abs_)):
        raise ValueError(f"NBVAL_TOLERANCE values must be finite and >= 0, got rel={rel} abs={abs_}")
    return rel, abs_


def _value(text: str) -> float:
    return float(text.replace(",", ""))


def snap_numbers(test: str, ref: str, rel: float, abs_: float) -> str:
    """``test`` with each number that is within tolerance of ``ref``'s number at the same place replaced
    by ``ref``'s spelling of it, line by line. Numbers outside the tolerance stay as they are, so the
    normal comparison then fails and shows them; a line whose text between the numbers differs is left
    unchanged (nbval's sanitize patterns, applied afterwards, may still make it equal: timings)."""
    test_lines, ref_lines = test.split("\n"), ref.split("\n")
    if len(test_lines) != len(ref_lines):
        return test
    return "\n".join(_snap_line(t, r, rel, abs_) for t, r in zip(test_lines, ref_lines, strict=True))


def _snap_line(test: str, ref: str, rel: float, abs_: float) -> str:
    test_parts, ref_parts = _NUMBER.split(test), _NUMBER.split(ref)
    test_nums, ref_nums = _NUMBER.findall(test), _NUMBER.findall(ref)
    if test_parts != ref_parts:
        return test
    out = [test_parts[0]]
    for i, (t, r) in enumerate(zip(test_nums, ref_nums, strict=True)):
        r_val = _value(r)
        close = math.isclose(_value(t), r_val, rel_tol=0.0, abs_tol=max(abs_, rel * abs(r_val)) * (1 + 1e-9))  # printed decimals
        out += [r if close else t, test_parts[i + 1]]
    return "".join(out)


def has_assert(source: str) -> bool:
    """Whether a cell's code contains an ``assert`` statement (IPython magics are ignored)."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        return any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(code)))
    except SyntaxError:
        return False


def _snap_outputs(test: list, ref: list, rel: float, abs_: float) -> None:
    """Snap, in place, the text of each test output towards the reference output of the same kind."""
    by_kind: dict[tuple, list] = {}
    for out in ref:
        by_kind.setdefault((out.get("output_type"), out.get("name")), []).append(out)
    seen: dict[tuple, int] = {}
    for out in test:
        kind = (out.get("output_type"), out.get("name"))
        index = seen.get(kind, 0)
        seen[kind] = index + 1
        refs = by_kind.get(kind, [])
        if index >= len(refs):
            continue
        if "text" in out and isinstance(refs[index].get("text"), str):
            out["text"] = snap_numbers(out["text"], refs[index]["text"], rel, abs_)
        for key in _TEXT_KEYS:
            test_data, ref_data = out.get("data", {}), refs[index].get("data", {})
            if isinstance(test_data.get(key), str) and isinstance(ref_data.get(key), str):
                test_data[key] = snap_numbers(test_data[key], ref_data[key], rel, abs_)


_original_compare = nbval_plugin.IPyNbCell.compare_outputs
_original_runtest = nbval_plugin.IPyNbCell.runtest


def _compare_outputs(self, test, ref, skip_compare=None):
    tolerance = parse_tolerance(self.cell.source)
    if tolerance is not None:
        _snap_outputs(test, ref, *tolerance)
    return _original_compare(self, test, ref, skip_compare)


def _runtest(self):
    if _SAMPLED.search(self.cell.source):
        if not has_assert(self.cell.source):
            self.raise_cell_error(
                "NBVAL_SAMPLED_TEXT cell has no assert: its output is not compared, so assert properties "
                "of the sampled text (length, vocabulary, prompt kept) in the cell"
            )
        self.options["check"] = False
    return _original_runtest(self)


if not getattr(nbval_plugin.IPyNbCell, "_llmguide_checks", False):  # tests import this file a second time
    nbval_plugin.IPyNbCell.compare_outputs = _compare_outputs
    nbval_plugin.IPyNbCell.runtest = _runtest
    nbval_plugin.IPyNbCell._llmguide_checks = True
