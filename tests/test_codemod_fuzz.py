"""Codemods never corrupt code: every registered codemod at real locations of real Python.

``benchmarks/fuzz/fuzzing.py`` synthesizes breaks at sampled calls and statements of the installed torch and
libcst packages and runs every codemod of the registry on them through the engine's entry point.
CI fuzzes a seeded sample of small files (the cost of one application grows with the file: the
codemods resolve metadata on the whole module); ``BREAKFIX_FUZZ_FILES=N`` fuzzes N files of any size
with more locations per file, and ``benchmarks/fuzz/run.py`` the whole corpus. The harness's own
checks are pinned down first, on codemods broken on purpose.
"""

from __future__ import annotations

import os
import random
import textwrap
from pathlib import Path

import fuzzing  # benchmarks/fuzz/fuzzing.py (on the path: pyproject.toml's pythonpath)
import libcst as cst
import pytest

from breakfix.codemods import REGISTRY, BreakfixCodemod, FixRequest
from breakfix.codemods._base import index_after_imports, insert_top_level

SEED = 0
# CI: 300 files of at most 200 lines with functions, 6 of the registry's codemods sampled per break
# (each still meets about a hundred sites): 3.5 CPU-minutes (1:45 wall) on an idle machine; all of them
# took about 22 (hence `slow`: `./scripts/test.sh --fast` leaves it out).
CI_FILES, CI_MAX_LINES, CI_CODEMODS_PER_BREAK = 300, 200, 6
OPT_IN_FILES = int(os.environ.get("BREAKFIX_FUZZ_FILES", "0"))


def _failures(report: fuzzing.Report) -> str:
    return "\n\n".join(f"{f['codemod']} {f['outcome']}: {f['case']}\n{f['detail'][-2000:]}" for f in report.failures)


def _small_with_functions(files: list[Path]) -> list[Path]:
    return [f for f in files if (text := f.read_bytes()).count(b"\n") <= CI_MAX_LINES and b"def " in text]


@pytest.mark.slow
def test_codemods_never_corrupt_real_code() -> None:
    corpus = fuzzing.corpus_files()
    if OPT_IN_FILES:
        files = fuzzing.sample(corpus, OPT_IN_FILES, SEED)
        report = fuzzing.run(files, SEED, functions_per_file=2, locations_per_function=1, jobs=2)
        assert report.files >= 0.95 * OPT_IN_FILES  # a few use syntax Python 3.11 does not compile
    else:
        files = fuzzing.sample(_small_with_functions(corpus), CI_FILES + 20, SEED)
        report = fuzzing.run(
            files,
            SEED,
            functions_per_file=1,
            locations_per_function=1,
            jobs=2,
            codemods_per_break=CI_CODEMODS_PER_BREAK,
        )
        assert report.files_with_breaks >= CI_FILES
    assert report.ok, _failures(report)
    # The sample reaches the rewrites, not only the codemods' first refusals.
    changed = {code for code, counts in report.counts.items() if counts["changed"]}
    assert {"BF201", "BF301"} <= changed, report.as_json()["per_codemod"]
    assert report.total("idempotence_checked") > 0


# --- the harness catches what it is meant to catch ---------------------------------------------


SOURCE = textwrap.dedent("""\
    import os


    def helper(x):
        return x + 1


    def f(x):
        y = helper(x)
        print(y)
        return y * 2


    class C:
        def g(self, x):
            return self.h(x)

        def h(self, x):
            return x
""")


class _Broken(BreakfixCodemod):
    CODE = "BF999"
    FIX_TITLE = "broken on purpose"
    CATCH_ALL = True


def _fuzz(tmp_path: Path, codemod: type[BreakfixCodemod]) -> fuzzing.Report:
    path = tmp_path / "module.py"
    path.write_text(SOURCE)
    return fuzzing.fuzz_file(path, SEED, functions_per_file=10, locations_per_function=10, codemods=[codemod])


class Crashing(_Broken):
    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        raise ValueError("a codemod bug")


class CrashingFileToEdit(_Broken):
    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        return request.brk.project_stack[1].filename  # no second frame for a break in the compiled function


class DropsTheFirstImport(_Broken):
    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        return tree.with_changes(body=tree.body[1:])


class ReturnsAtModuleLevel(_Broken):
    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        return tree.with_changes(body=[*tree.body, cst.SimpleStatementLine([cst.Return(cst.Integer("1"))])])


class OnlyImports(_Broken):
    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        return tree.with_changes(body=[cst.parse_statement("import torch\n"), *tree.body])


class AddsAStatementEachTime(_Broken):
    """Prepends ``pass`` to the compiled function every time: a second application changes it again."""

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        name = self.request.brk.project_stack[0].name
        target = (
            next(s for s in tree.body if isinstance(s, cst.FunctionDef) and s.name.value == name)
            if name in ("f", "helper")
            else None
        )
        if target is None:
            raise self.skip("only module-level functions")
        body = target.body.with_changes(body=[cst.SimpleStatementLine([cst.Pass()]), *target.body.body])
        return tree.deep_replace(target, target.with_changes(body=body))


class Idempotent(AddsAStatementEachTime):
    """The same rewrite, skipping a function it already rewrote."""

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        if "    pass\n" in tree.code:
            raise self.skip("already rewritten")
        return super().transform_module_impl(tree)


class AddsAModuleStatement(Idempotent):
    """The sound rewrite, plus a module-level statement that configures nothing it added."""

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        tree = super().transform_module_impl(tree)
        return tree.with_changes(body=[cst.parse_statement("os.environ.clear()\n"), *tree.body])


class RegistersItsHelper(Idempotent):
    """The sound rewrite, plus a new helper and the module-level statement registering it (as BF503
    registers its operator's effect), placed before the module's other statements."""

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        tree = super().transform_module_impl(tree)
        body, at = list(tree.body), index_after_imports(tree.body)
        for text in ("def _added():\n    pass\n", "register(_added)\n"):
            body = insert_top_level(body, at, cst.parse_statement(text))
            at += 1
        return tree.with_changes(body=body)


@pytest.mark.parametrize(
    ("codemod", "outcome"),
    [
        (AddsAModuleStatement, "outside_changes"),
        (Crashing, "crashes"),
        (CrashingFileToEdit, "crashes"),
        (DropsTheFirstImport, "outside_changes"),
        (ReturnsAtModuleLevel, "not_parsing"),
        (OnlyImports, "outside_changes"),
        (AddsAStatementEachTime, "not_idempotent"),
    ],
)
def test_the_harness_reports_a_broken_codemod(tmp_path: Path, codemod: type[BreakfixCodemod], outcome: str) -> None:
    report = _fuzz(tmp_path, codemod)
    assert report.counts[codemod.CODE][outcome] > 0, report.as_json()
    assert not report.ok


@pytest.mark.parametrize("codemod", [Idempotent, RegistersItsHelper])
def test_the_harness_accepts_a_sound_codemod(tmp_path: Path, codemod: type[BreakfixCodemod]) -> None:
    report = _fuzz(tmp_path, codemod)
    counts = report.counts[codemod.CODE]
    assert report.ok, _failures(report)
    assert counts["changed"] > 0 and counts["idempotence_checked"] == counts["changed"]


def test_breaks_reach_helpers_of_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    path.write_text(SOURCE)
    source = fuzzing.Source.read(path)
    stacks = {
        tuple(frame.name for frame in case.brk.user_stack) for case in fuzzing.cases(source, random.Random(0), 10, 10)
    }
    assert {("f",), ("f", "helper"), ("g", "h")} <= stacks


def test_a_decorator_call_is_not_a_location_of_the_function_it_decorates() -> None:
    # Found fuzzing torch/_inductor/fx_passes/auto_chunker/propagate_scale_by.py: ``@rule(...)``
    # runs in the module's frame, outside the function's lines.
    text = "@rule(make())\ndef f(p=default()):\n    return g()\n"
    source = fuzzing.Source.of("m.py", text, cst.parse_module(text))
    assert [(loc.line, loc.callee) for loc in source.functions[0].locations] == [(3, None), (3, "g")]


def test_every_registered_codemod_is_fuzzed() -> None:
    assert set(fuzzing.Report().counts) == {codemod.CODE for codemod in REGISTRY}
