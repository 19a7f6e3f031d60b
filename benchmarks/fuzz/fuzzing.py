"""Fuzz every registered codemod on real Python: breaks synthesized at real call and statement sites.

A codemod sees a break only through its ``GraphBreak`` (frames: file, line, function, columns, text)
and the runtime facts the worker measured. Here both are made up for real locations of real code
(the installed torch and libcst packages by default): for sampled functions, calls and statements,
a break in the function itself, or in a same-file helper it calls (as a project frame, or as a
library frame). Every codemod of ``REGISTRY`` is run on each through the engine's own entry point
(``engine.apply_codemod``), and every application must keep these promises:

- no exception but ``SkipFile`` (anything else is a codemod bug);
- the output is the input unchanged, or parses with LibCST and compiles with ``compile()``;
- nothing outside the functions of the break's frames changes, except new imports, new module-level
  functions (compiled pieces, fake kernels) and compiled pieces of the input;
- a second application to the output, for the same break re-located there, changes nothing.

Sampling is seeded, so a run is reproducible; ``python benchmarks/fuzz/run.py`` runs it at scale.
Only LibCST is imported: torch's files are read as text, never imported.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import importlib.util
import random
import re
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import libcst as cst
from libcst.codemod import TransformFailure, TransformSkip, TransformSuccess
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from breakfix.codemods import REGISTRY, BreakfixCodemod, FixRequest
from breakfix.engine import apply_codemod
from breakfix.types import BreakFacts, Frame, GraphBreak, OpaqueOpFact

CORPUS_PACKAGES = ("torch", "libcst")
_ANNOTATIONS = ("torch.Tensor", "int", "float", "bool", "str", "Sequence[int]")
# What counts, per codemod; the last six must stay 0 (harness_errors: a bug of this module).
OUTCOMES = (
    "applications",
    "skipped",
    "unchanged",
    "changed",
    "idempotence_checked",
    "site_gone",
    "crashes",
    "not_parsing",
    "outside_changes",
    "not_idempotent",
    "second_crashes",
    "harness_errors",
)
FAILURES = OUTCOMES[-6:]


# --- the corpus --------------------------------------------------------------------------------


def corpus_files(packages: Sequence[str] = CORPUS_PACKAGES) -> list[Path]:
    """Every ``.py`` file of the installed packages, sorted by path inside site-packages."""
    files = []
    for package in packages:
        spec = importlib.util.find_spec(package)  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise LookupError(f"{package} is not installed")
        files += sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.py"))
    return files


def sample(files: Sequence[Path], count: int, seed: int) -> list[Path]:
    """``count`` files drawn with ``seed`` (all of them when there are fewer), in corpus order."""
    if count >= len(files):
        return list(files)
    chosen = set(random.Random(seed).sample(range(len(files)), count))
    return [f for i, f in enumerate(files) if i in chosen]


# --- locations in one file ---------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """A call or statement: where dynamo would report a frame stopped in it."""

    line: int
    colno: int | None
    end_colno: int | None
    callee: str | None = None  # ``g`` for ``g(...)``, ``self.g`` for ``self.g(...)``
    steps: str | None = None  # ``p`` for ``next(p)`` and ``for ... in p``


@dataclass
class Function:
    name: str
    qualname: str  # ``C.f`` for a method, ``f.g`` for a function nested in ``f``
    owner: str | None  # the qualname of the class it is defined in, when a method
    start: int
    end: int
    params: cst.Parameters
    locations: list[Location] = field(default_factory=list)
    unit: str = ""  # the name of the unit holding it (see ``units``)

    @property
    def parameters(self) -> set[str]:
        params = self.params
        names = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
        return names | {p.name.value for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)}


class _Functions(cst.CSTVisitor):
    """Every function of a module (nested ones too) with the calls and statements in its body."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self) -> None:
        super().__init__()
        self.functions: list[Function] = []
        self._scopes: list[tuple[str, Function | None]] = []  # (name, function) or (class name, None)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.append((node.name.value, None))

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._location(node)  # a nested def is a statement of the function around it
        position = self.get_metadata(PositionProvider, node)
        prefix = ".".join(name for name, _ in self._scopes)
        owner = prefix if self._scopes and self._scopes[-1][1] is None else None
        self.functions.append(
            Function(
                node.name.value,
                f"{prefix}.{node.name.value}" if prefix else node.name.value,
                owner,
                position.start.line,
                position.end.line,
                node.params,
            )
        )

    # Only the body runs in the function's frame: its decorators and defaults run in the frame around it.
    def visit_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        self._scopes.append((node.name.value, self.functions[-1]))  # decorators and defaults hold no def

    def leave_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        self._scopes.pop()

    def _location(self, node: cst.CSTNode, callee: str | None = None, steps: str | None = None) -> None:
        if not self._scopes or self._scopes[-1][1] is None:
            return
        position = self.get_metadata(PositionProvider, node)
        one_line = position.start.line == position.end.line
        self._scopes[-1][1].locations.append(
            Location(
                position.start.line, position.start.column, position.end.column if one_line else None, callee, steps
            )
        )

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        callee = steps = None
        if isinstance(func, cst.Name):
            callee = func.value
            if callee == "next" and node.args and isinstance(node.args[0].value, cst.Name):
                steps = node.args[0].value.value
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            callee = f"self.{func.attr.value}"
        self._location(node, callee, steps)

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self._location(node)

    def visit_If(self, node: cst.If) -> None:
        self._location(node)

    def visit_For(self, node: cst.For) -> None:
        self._location(node, steps=node.iter.value if isinstance(node.iter, cst.Name) else None)

    def visit_While(self, node: cst.While) -> None:
        self._location(node)

    def visit_With(self, node: cst.With) -> None:
        self._location(node)

    def visit_Try(self, node: cst.Try) -> None:
        self._location(node)


@dataclass(frozen=True)
class Unit:
    """A module-level statement, or a statement of a module-level class (the class itself is its
    header): what a rewrite either owns or must leave byte for byte."""

    kind: str  # header, footer, import, def (a function or class), piece (a compiled piece), class, statement
    name: str  # ``f``, ``C``, ``C.f``; ``#<n>`` for the n-th other statement
    text: str
    start: int = 0
    end: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        # A statement's ordinal is left out: a statement a codemod adds shifts the ordinals after it.
        # So are the blank lines above it: a helper inserted above sets them to two (insert_top_level),
        # and LibCST's AddImportsVisitor, adding a module's first import, moves them above the import.
        return self.kind, "" if self.kind == "statement" else self.name, _without_leading_blank_lines(self.text)


def _without_leading_blank_lines(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and not lines[0].strip():
        lines.pop(0)
    return "".join(lines)


def units(module: cst.Module, positions: Mapping[cst.CSTNode, CodeRange] | None = None) -> list[Unit]:
    """The module's units; with ``positions``, each with its lines."""
    positions = positions or {}
    ordinal = iter(range(1_000_000))

    def unit(kind: str, name: str, node: cst.CSTNode, text: str | None = None) -> Unit:
        span = positions.get(node)
        if kind == "statement":
            name = f"#{next(ordinal)}"
        return Unit(
            kind,
            name,
            module.code_for_node(node) if text is None else text,
            span.start.line if span else 0,
            span.end.line if span else 0,
        )

    def statement(node: cst.CSTNode, prefix: str) -> Unit:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            decorators = "".join(module.code_for_node(d) for d in node.decorators)
            return unit("piece" if "torch.compile" in decorators else "def", prefix + node.name.value, node)
        if isinstance(node, cst.SimpleStatementLine) and all(
            isinstance(s, (cst.Import, cst.ImportFrom)) for s in node.body
        ):
            return unit("import", "", node)
        return unit("statement", "", node)

    result = [Unit("header", "", "".join(module.code_for_node(line) for line in module.header))]
    for node in module.body:
        if isinstance(node, cst.ClassDef) and isinstance(node.body, cst.IndentedBlock):
            name = node.name.value
            header = node.with_changes(body=node.body.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])]))
            result.append(unit("class", name, node, module.code_for_node(header)))
            result += [statement(item, f"{name}.") for item in node.body.body]
        else:
            result.append(statement(node, ""))
    result.append(Unit("footer", "", "".join(module.code_for_node(line) for line in module.footer)))
    return result


def unit_at(module_units: list[Unit], line: int) -> str:
    """The name of the innermost unit spanning ``line`` (a method rather than its class)."""
    spanning = [u for u in module_units if u.start <= line <= u.end and u.kind != "class"]
    return spanning[-1].name if spanning else ""


def functions_of(wrapper: MetadataWrapper, module_units: list[Unit]) -> list[Function]:
    collector = _Functions()
    wrapper.visit(collector)
    for function in collector.functions:
        function.unit = unit_at(module_units, function.start)
    return collector.functions


def _imported(statement_text: str) -> tuple[str, set[str]] | None:
    """(module, names) of a ``from module import names`` line, which AddImportsVisitor may extend."""
    node = cst.parse_statement(statement_text)
    small = node.body[0] if isinstance(node, cst.SimpleStatementLine) and len(node.body) == 1 else None
    if not isinstance(small, cst.ImportFrom) or isinstance(small.names, cst.ImportStar) or small.module is None:
        return None
    module = cst.Module([]).code_for_node(small.module)
    return "." * len(small.relative) + module, {cst.Module([]).code_for_node(a).rstrip(", ") for a in small.names}


def outside_changes(before: list[Unit], after: list[Unit], touched: set[str]) -> list[str]:
    """What changed outside the ``touched`` units, apart from what a codemod may add: imports,
    module-level functions with new names, and compiled pieces (a re-split renames or drops them).
    A rewrite that only adds imports is reported too: it changes the file and fixes nothing."""
    old_names = {u.name for u in before}
    owned_old = [u for u in before if u.name in touched or u.kind == "piece"]
    new_defs = {u.name for u in after if u.kind == "def" and u.name not in old_names}
    old_statements = {u.key for u in before if u.kind == "statement"}

    def registers_new_def(unit: Unit) -> bool:
        # A module-level statement added with the helpers it configures, like registering a new
        # custom operator's effect: `torch.library._register_effectful_op(_log_op._qualname, ...)`.
        return (
            unit.kind == "statement"
            and unit.key not in old_statements
            and any(re.search(rf"\b{re.escape(name)}\b", unit.text) for name in new_defs)
        )

    owned_new = [
        u for u in after if u.name in touched or u.kind == "piece" or u.name in new_defs or registers_new_def(u)
    ]
    kept_old = [u for u in before if u not in owned_old]
    kept_new = [u for u in after if u not in owned_new]
    problems = []
    old_imports = [u.text for u in kept_old if u.kind == "import"]
    new_imports = [u.text for u in kept_new if u.kind == "import"]
    for text in old_imports:
        if text in new_imports:
            continue
        names = _imported(text)
        extended = names is not None and any(
            (other := _imported(t)) is not None and other[0] == names[0] and names[1] <= other[1] for t in new_imports
        )
        if not extended:
            problems.append(f"import changed or removed: {text.strip()}")
    rest_old = [u.key for u in kept_old if u.kind != "import"]
    rest_new = [u.key for u in kept_new if u.kind != "import"]
    if rest_old != rest_new:
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=rest_old, b=rest_new, autojunk=False).get_opcodes():
            if tag != "equal":
                shown = (rest_old[i1:i2] or rest_new[j1:j2])[0]
                problems.append(f"{tag} outside the rewritten functions: {shown[2].strip()[:200]}")
    if not problems and [u.key for u in owned_old] == [u.key for u in owned_new]:
        problems.append("only imports changed")
    return problems


# --- breaks at those locations -----------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One file of the corpus, parsed once."""

    path: str
    text: str
    module: cst.Module
    units: list[Unit]
    functions: list[Function]
    lines: list[str]

    @classmethod
    def read(cls, path: Path) -> Source | None:
        """The file, when Python 3.11 and LibCST both accept it (not syntax of another Python)."""
        try:
            text = path.read_text(encoding="utf-8")
            compile(text, str(path), "exec", dont_inherit=True)
            module = cst.parse_module(text)
        except (UnicodeDecodeError, SyntaxError, ValueError, cst.ParserSyntaxError):
            return None
        return cls.of(str(path), text, module)

    @classmethod
    def of(cls, path: str, text: str, module: cst.Module) -> Source:
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        module_units = units(module, wrapper.resolve(PositionProvider))
        return cls(path, text, module, module_units, functions_of(wrapper, module_units), lines_of(text))


@dataclass(frozen=True)
class Case:
    """One synthesized break and what the codemods are told about it."""

    brk: GraphBreak
    target_qualname: str
    facts: BreakFacts
    units: frozenset[str]  # the units holding its frames: the only ones a rewrite may change
    description: str


def lines_of(text: str) -> list[str]:
    """Lines as LibCST and linecache number them (``str.splitlines`` also splits at form feeds)."""
    return re.split(r"\r\n|\r|\n", text)


def _frame(source: Source, function: Function, location: Location) -> Frame:
    return Frame(
        source.path,
        location.line,
        function.name,
        location.colno,
        location.end_colno,
        source.lines[location.line - 1].strip(),
    )


def _callee(functions: list[Function], caller: Function, callee: str) -> Function | None:
    """The function of this file a call runs: a module-level function, or a method of the caller's class."""
    if callee.startswith("self."):
        matches = [
            f for f in functions if caller.owner is not None and f.owner == caller.owner and f.name == callee[5:]
        ]
    else:
        matches = [f for f in functions if f.qualname == callee]
    return matches[0] if len(matches) == 1 and matches[0] is not caller else None


def _facts(function: Function, rng: random.Random) -> BreakFacts:
    """Plausible runtime facts for BF202, as worker/facts.py would file them for a helper like this one."""
    params = function.params
    if params.posonly_params or isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None:
        return BreakFacts(OpaqueOpFact(rejected=f"{function.name} takes *args, **kwargs or positional-only parameters"))
    names = [p.name.value for p in (*params.params, *params.kwonly_params)]
    annotations = {name: rng.choice(_ANNOTATIONS) for name in names}
    tensors = [n for n, a in annotations.items() if a == "torch.Tensor"]
    one = f"{tensors[0]}.new_empty((2, 3))" if tensors else "torch.empty((2, 3), dtype=torch.float32)"
    pair = rng.random() < 0.3
    return BreakFacts(
        OpaqueOpFact(
            helper=function.name,
            op_name=f"breakfix::fuzz_{function.name}",
            annotations=annotations,
            returns="tuple[torch.Tensor, torch.Tensor]" if pair else "torch.Tensor",
            fake=f"{one}, {one}" if pair else one,
            wrap=rng.choice(("", "clone", "contiguous")),
            runs=3,
        )
    )


def cases(source: Source, rng: random.Random, functions_per_file: int, locations_per_function: int) -> Iterator[Case]:
    """Breaks at sampled locations of sampled functions of one file: in the function itself, and,
    at a call of a helper of the same file, inside that helper (a project frame, or a library one)."""
    functions = source.functions
    chosen = rng.sample(functions, min(functions_per_file, len(functions)))
    for function in sorted(chosen, key=lambda f: f.start):
        picked = rng.sample(function.locations, min(locations_per_function, len(function.locations)))
        # Where real breaks cluster, so the codemods get past their first checks: a call to a
        # helper of this file, and stepping a parameter (next(p), for ... in p).
        for wanted in (
            lambda loc: loc.callee and _callee(functions, function, loc.callee),
            lambda loc: loc.steps in function.parameters,
        ):
            found = [loc for loc in function.locations if wanted(loc)]
            if found and not any(wanted(loc) for loc in picked):
                picked.append(rng.choice(found))
        for location in sorted(picked, key=lambda loc: (loc.line, loc.colno or 0)):
            compiled = _frame(source, function, location)
            stacks = [([compiled], [compiled], function, "in the compiled function")]
            helper = _callee(functions, function, location.callee) if location.callee else None
            if helper is not None and helper.locations:
                inner = _frame(source, helper, rng.choice(helper.locations))
                in_library = rng.random() < 0.25
                stacks.append(
                    (
                        [compiled, inner],
                        [compiled] if in_library else [compiled, inner],
                        helper,
                        f"in {'library' if in_library else 'project'} helper {helper.qualname}:{inner.lineno}",
                    )
                )
            for user_stack, project_stack, site_function, where in stacks:
                brk = GraphBreak(
                    gb_type="",
                    gb_id=None,
                    reason="fuzz",
                    explanation="",
                    hints=[],
                    user_stack=user_stack,
                    project_stack=project_stack,
                )
                yield Case(
                    brk,
                    function.qualname,
                    _facts(site_function, rng),
                    frozenset({function.unit, site_function.unit}),
                    f"{source.path}:{location.line} in {function.qualname}, break {where}",
                )


def request_for(
    codemod: type[BreakfixCodemod], case: Case, path: str, sources: dict[str, str] | None = None
) -> FixRequest:
    """The request the engine would build for a break the codemod answers (its own GB id)."""
    brk = replace(
        case.brk,
        gb_id=min(codemod.GB_IDS) if codemod.GB_IDS else None,
        gb_type=min(codemod.GB_TYPES) if codemod.GB_TYPES else "fuzz",
    )
    return FixRequest(
        brk=brk, target_file=path, target_qualname=case.target_qualname, facts=case.facts, sources=sources or {}
    )


# --- re-locating a break in the rewritten file -------------------------------------------------


def relocate(case: Case, before: Source, after: Source) -> Case | None:
    """The same break in the rewritten file: each frame's line found again in the function of the
    same qualname, by its text (the n-th line with that text there), else carried over by a line
    diff (a line rewritten in place). None when a frame's line is no longer in its function (the
    fix moved it elsewhere: there is nothing to apply again)."""
    old_lines, new_lines = before.lines, after.lines
    carried: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            carried.update({i1 + k + 1: j1 + k + 1 for k in range(i2 - i1)})
    moved: dict[Frame, Frame] = {}
    for frame in {*case.brk.user_stack, *case.brk.project_stack}:
        old = _innermost(before.functions, frame.lineno)
        news = [f for f in after.functions if f.qualname == old.qualname]
        if len(news) != 1:
            return None
        new = news[0]
        same_text = [
            n
            for n in range(old.start, frame.lineno + 1)
            if old_lines[n - 1].strip() == frame.line and _innermost(before.functions, n) is old
        ]
        candidates = [
            n
            for n in range(new.start, new.end + 1)
            if new_lines[n - 1].strip() == frame.line and _innermost(after.functions, n) is new
        ]
        line = candidates[len(same_text) - 1] if len(candidates) >= len(same_text) else carried.get(frame.lineno)
        if line is None or _innermost(after.functions, line) is not new:
            return None
        text = new_lines[line - 1].strip()
        same = text == frame.line
        moved[frame] = replace(
            frame,
            lineno=line,
            line=text,
            colno=frame.colno if same else None,
            end_colno=frame.end_colno if same else None,
        )
    brk = replace(
        case.brk,
        user_stack=[moved[f] for f in case.brk.user_stack],
        project_stack=[moved[f] for f in case.brk.project_stack],
    )
    return replace(case, brk=brk)


def _innermost(functions: list[Function], line: int) -> Function | None:
    spanning = [f for f in functions if f.start <= line <= f.end]
    return max(spanning, key=lambda f: f.start) if spanning else None


# --- running -----------------------------------------------------------------------------------


@dataclass
class Report:
    files: int = 0
    inputs_skipped: int = 0  # files that do not compile (syntax of another Python) or do not decode
    files_with_breaks: int = 0  # files with at least one function, so at least one break
    functions: int = 0
    locations: int = 0
    breaks: int = 0
    counts: dict[str, Counter] = field(default_factory=lambda: {c.CODE: Counter() for c in REGISTRY})
    failures: list[dict] = field(default_factory=list)
    changed_files: set[str] = field(default_factory=set)

    def add(self, other: Report) -> None:
        for name in ("files", "inputs_skipped", "files_with_breaks", "functions", "locations", "breaks"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, counts in other.counts.items():
            self.counts.setdefault(code, Counter()).update(counts)
        self.failures += other.failures
        self.changed_files |= other.changed_files

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    @property
    def ok(self) -> bool:
        return not any(self.total(outcome) for outcome in FAILURES)

    def as_json(self) -> dict:
        return {
            "files": self.files,
            "inputs_skipped": self.inputs_skipped,
            "files_with_breaks": self.files_with_breaks,
            "functions": self.functions,
            "locations": self.locations,
            "breaks": self.breaks,
            "files_changed": len(self.changed_files),
            "per_codemod": {code: {o: counts[o] for o in OUTCOMES} for code, counts in self.counts.items()},
            "totals": {o: self.total(o) for o in OUTCOMES},
            "failures": self.failures,
        }


def check_application(codemod: type[BreakfixCodemod], case: Case, source: Source, report: Report) -> None:
    """Apply ``codemod`` to ``case`` and, when it rewrites, check the rewrite and a second application."""
    counts = report.counts.setdefault(codemod.CODE, Counter())
    counts["applications"] += 1
    request = request_for(codemod, case, source.path)

    def fail(outcome: str, detail: str) -> None:
        counts[outcome] += 1
        report.failures.append(
            {"codemod": codemod.CODE, "outcome": outcome, "case": case.description, "detail": detail}
        )

    try:
        path = codemod.file_to_edit(request)  # the engine calls it outside transform_module
    except Exception:  # noqa: BLE001 (a codemod bug, reported as a crash)
        fail("crashes", traceback.format_exc())
        return
    if path != source.path:
        fail("crashes", f"file_to_edit is {path}, not the file of every frame")
        return
    _, result = apply_codemod(codemod, request, path, source.text)
    if isinstance(result, TransformFailure):
        fail("crashes", result.traceback_str)
        return
    if isinstance(result, TransformSkip):
        counts["skipped"] += 1
        return
    if not isinstance(result, TransformSuccess) or result.code == source.text:
        counts["unchanged"] += 1
        return
    counts["changed"] += 1
    report.changed_files.add(path)
    try:
        compile(result.code, path, "exec", dont_inherit=True)
        rewritten = Source.of(path, result.code, cst.parse_module(result.code))
    except (SyntaxError, ValueError, cst.ParserSyntaxError) as e:
        fail("not_parsing", f"{type(e).__name__}: {e}")
        return
    problems = outside_changes(source.units, rewritten.units, set(case.units))
    if problems:
        fail("outside_changes", "; ".join(problems))
    again = relocate(case, source, rewritten)
    if again is None:
        counts["site_gone"] += 1
        return
    counts["idempotence_checked"] += 1
    _, second = apply_codemod(codemod, request_for(codemod, again, path, {path: result.code}), path, result.code)
    if isinstance(second, TransformFailure):
        fail("second_crashes", second.traceback_str)
    elif isinstance(second, TransformSuccess) and second.code != result.code:
        diff = "".join(difflib.unified_diff(result.code.splitlines(True), second.code.splitlines(True), n=1))
        fail("not_idempotent", diff[:3000])


def fuzz_file(
    path: Path,
    seed: int = 0,
    functions_per_file: int = 3,
    locations_per_function: int = 2,
    codemods: Sequence[type[BreakfixCodemod]] = REGISTRY,
    codemods_per_break: int | None = None,
) -> Report:
    """Every codemod (or ``codemods_per_break`` of them, sampled per break) on breaks at sampled
    locations of one file."""
    report = Report()
    source = Source.read(path)
    if source is None:
        report.inputs_skipped += 1
        return report
    report.files += 1
    # One generator per file, seeded by its place in the package: its breaks do not depend on the sample.
    rng = random.Random(f"{seed}:{path.parent.name}/{path.name}")
    # Its own generator: sampling codemods does not change which breaks the file gets.
    codemod_rng = random.Random(f"{seed}:codemods:{path.parent.name}/{path.name}")
    functions, locations = set(), set()
    for case in cases(source, rng, functions_per_file, locations_per_function):
        report.breaks += 1
        functions.add(case.target_qualname)
        locations.add(case.brk.project_stack[0].lineno)
        sampled = codemods_per_break is not None and codemods_per_break < len(codemods)
        for codemod in codemod_rng.sample(list(codemods), codemods_per_break) if sampled else codemods:
            try:
                check_application(codemod, case, source, report)
            except Exception:  # noqa: BLE001 (one broken check must not end a run of hours)
                report.counts[codemod.CODE]["harness_errors"] += 1
                report.failures.append(
                    {
                        "codemod": codemod.CODE,
                        "outcome": "harness_errors",
                        "case": case.description,
                        "detail": traceback.format_exc(),
                    }
                )
    report.functions, report.locations = len(functions), len(locations)
    report.files_with_breaks = int(report.breaks > 0)
    return report


def fuzz_files(
    files: Sequence[Path],
    seed: int = 0,
    functions_per_file: int = 3,
    locations_per_function: int = 2,
    codemods: Sequence[type[BreakfixCodemod]] = REGISTRY,
    jobs: int = 1,
    codemods_per_break: int | None = None,
) -> Iterator[tuple[Path, Report]]:
    """Each file with its report, in order; ``jobs`` files at a time in worker processes."""
    work = partial(
        fuzz_file,
        seed=seed,
        functions_per_file=functions_per_file,
        locations_per_function=locations_per_function,
        codemods=codemods,
        codemods_per_break=codemods_per_break,
    )
    if jobs <= 1:
        yield from ((path, work(path)) for path in files)
        return
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        yield from zip(files, pool.map(work, files, chunksize=4))


def run(
    files: Sequence[Path],
    seed: int = 0,
    functions_per_file: int = 3,
    locations_per_function: int = 2,
    codemods: Sequence[type[BreakfixCodemod]] = REGISTRY,
    jobs: int = 1,
    codemods_per_break: int | None = None,
) -> Report:
    report = Report()
    for _, result in fuzz_files(
        files, seed, functions_per_file, locations_per_function, codemods, jobs, codemods_per_break
    ):
        report.add(result)
    return report
