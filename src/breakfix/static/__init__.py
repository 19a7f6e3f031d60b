"""``breakfix check``: find likely graph breaks by reading the source. Runs no user code, imports no torch.

The scan looks at the functions that are compiled: decorated with ``torch.compile`` (any spelling
the imports allow, resolved with qualified names), passed to ``torch.compile(...)`` in the same
module, or the ``forward`` of an ``nn.Module`` subclass of the module whose instance is compiled
there; plus the functions and methods of the module those call, as dynamo inlines them. In them it
reports the patterns of ``PATTERNS``: calls and constructs that break on the installed torch
(each pattern's examples are compiled with ``fullgraph=True`` by a torch-tier test that checks the
GB id claimed here). A finding is *likely*, not verified: the types of values are not known
statically (``x.tolist()`` breaks only on a floating tensor).

A finding's code is the code of the codemod that would answer the break: the classifier's
candidates for the pattern's GB id are tried on the source, with a synthesized ``GraphBreak``
whose stack is the path from the compiled function to the site, and the first one that rewrites
it names the finding; trials stop at the pattern's ``fallback`` (the codemod that answers the
pattern wherever it is, so it names the finding whether or not it can rewrite this site).
``quick_fix`` returns the rewrite of the finding's codemod, unverified. ``# breakfix: ignore[CODE, ...]`` (or a bare ``# breakfix: ignore``) on the
first or last line of a finding suppresses it.
"""

from __future__ import annotations

import io
import os
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst
from libcst.codemod import CodemodContext, SkipFile

from breakfix import classifier
from breakfix.codemods import BY_CODE, FixRequest
from breakfix.docs import gb_type_of
from breakfix.errors import BreakfixError
from breakfix.static._index import COMPILE, DISABLE, OPAQUE, CheckError, Function, ScannedModule, findall
from breakfix.static._sites import Site, sites_of
from breakfix.static.patterns import PATTERNS
from breakfix.types import Frame, GraphBreak
from breakfix.writer import read_source

_SUPPRESSION = re.compile(r"#\s*breakfix:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.I)


@dataclass(frozen=True)
class Finding:
    """One likely graph break. Lines are 1-based, columns 0-based character offsets; the range is
    the offending expression or statement (the whole ``print(...)`` call)."""

    code: str  # the codemod that would answer it (REGISTRY code); what suppression comments name
    gb_id: str | None
    gb_type: str
    message: str
    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    pattern: str = ""  # the slug of the pattern in PATTERNS
    function: str = ""  # qualname of the function the site is in
    compiled: str = ""  # qualname of the compiled function it is reached from (``function`` itself, or a caller)


def _entries(modules: dict[str, ScannedModule], all_functions: bool) -> dict[str, list[Function]]:
    """Functions of each module that compiled code of another module calls (``from utils import
    helper``, ``utils.helper(...)``), found module by module until nothing new is reached: dynamo
    inlines them as it does the module's own helpers."""
    entries: dict[str, list[Function]] = {path: [] for path in modules}
    changed = True
    while changed:
        changed = False
        for path, module in modules.items():
            roots = module.compiled(all_functions) + entries[path]
            for function, _ in module.reachable(roots):
                for call in findall(function.node.body, cst.Call):
                    for name in module.names(call.func):
                        found = _imported_function(modules, path, name)
                        if (
                            found is not None
                            and found[1] not in entries[found[0]]
                            and not (found[1].decorators & (DISABLE | OPAQUE | {COMPILE}))
                        ):
                            entries[found[0]].append(found[1])
                            changed = True
    return entries


def _imported_function(modules: dict[str, ScannedModule], importer: str, name: str) -> tuple[str, Function] | None:
    """The function a qualified name (``utils.helper``) names in a module beside ``importer``."""
    parts = name.split(".")
    folder = os.path.dirname(importer)
    for cut in range(len(parts) - 1, 0, -1):
        path = os.path.join(folder, *parts[:cut]) + ".py"
        if path != importer and path in modules:
            function = modules[path].by_qualname.get(".".join(parts[cut:]))
            return (path, function) if function is not None else None
    return None


def _frame(module: ScannedModule, function: Function, node: cst.CSTNode) -> Frame:
    position = module.positions[node]
    line = module.source.splitlines()[position.start.line - 1].strip()
    return Frame(
        module.path,
        position.start.line,
        function.node.name.value,
        position.start.column,
        position.end.column if position.end.line == position.start.line else None,
        line,
    )


def _graph_break(module: ScannedModule, site: Site) -> GraphBreak:
    pattern = site.pattern
    frames = [_frame(module, function, call) for function, call in site.calls]
    frames.append(_frame(module, site.function, site.node))
    message = pattern.message.format(name=site.name)
    return GraphBreak(
        gb_type=gb_type_of(pattern.gb_id) if pattern.gb_id else pattern.gb_type,
        gb_id=pattern.gb_id,
        reason=message,
        explanation="",
        hints=[],
        user_stack=frames,
        project_stack=list(frames),
    )


def _root(site: Site) -> Function:
    return site.calls[0][0] if site.calls else site.function


def _request(module: ScannedModule, site: Site) -> FixRequest:
    return FixRequest(
        brk=_graph_break(module, site),
        target_file=module.path,
        target_qualname=_root(site).qualname,
        sources={module.path: module.source},
    )


def _rewrite(module: ScannedModule, request: FixRequest, code: str) -> str | None:
    codemod = BY_CODE[code]
    if codemod.file_to_edit(request) != module.path:
        return None
    instance = codemod(CodemodContext(filename=module.path), request)
    try:
        result = instance.transform_module(module.tree)
    except SkipFile:
        return None
    except Exception:  # noqa: BLE001 -- a codemod that fails on this site offers no fix; the check goes on
        return None
    return result.code if result.code != module.source else None


def _suppressed(source: str) -> dict[int, set[str] | None]:
    """line -> codes its ``# breakfix: ignore[...]`` comment names (None: all)."""
    found: dict[int, set[str] | None] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT and (match := _SUPPRESSION.search(token.string)):
                codes = match["codes"]
                found[token.start[0]] = (
                    None if codes is None else {c.strip().upper() for c in codes.split(",") if c.strip()}
                )
    except (tokenize.TokenError, SyntaxError):
        pass
    return found


def _is_suppressed(finding: Finding, suppressions: dict[int, set[str] | None]) -> bool:
    for line in {finding.line, finding.end_line}:
        if line in suppressions and (suppressions[line] is None or finding.code in suppressions[line]):
            return True
    return False


def _finding(module: ScannedModule, site: Site) -> Finding:
    request = _request(module, site)
    brk = request.brk
    code = site.pattern.fallback
    for candidate in classifier.candidates(brk):
        # The fallback answers the site either way: only the codemods tried before it need a trial.
        if candidate.CODE == site.pattern.fallback or _rewrite(module, request, candidate.CODE) is not None:
            code = candidate.CODE
            break
    position = module.positions[site.node]
    return Finding(
        code=code,
        gb_id=brk.gb_id,
        gb_type=brk.gb_type,
        message=f"likely graph break: {brk.reason}",
        path=module.path,
        line=position.start.line,
        col=position.start.column,
        end_line=position.end.line,
        end_col=position.end.column,
        pattern=site.pattern.slug,
        function=site.function.qualname,
        compiled=_root(site).qualname,
    )


def scan_source(source: str, path: str, *, all_functions: bool = False) -> list[Finding]:
    """The likely graph breaks in ``source`` (read as ``path``), suppressions applied, in source order.
    Raises ``CheckError`` when the source does not parse."""
    return scan_sources({path: source}, all_functions=all_functions)[path]


def scan_sources(sources: dict[str, str], *, all_functions: bool = False) -> dict[str, list[Finding]]:
    """The likely graph breaks of each file in ``sources`` (path -> text), following calls from
    compiled code into functions of the other files (modules beside each other). Raises
    ``CheckError`` when a source does not parse."""
    return _scan_modules({path: ScannedModule(source, path) for path, source in sources.items()}, all_functions)


def _scan_modules(modules: dict[str, ScannedModule], all_functions: bool) -> dict[str, list[Finding]]:
    entries = _entries(modules, all_functions)
    return {path: _findings(module, sites_of(module, all_functions, entries[path])) for path, module in modules.items()}


def _findings(module: ScannedModule, sites: list[Site]) -> list[Finding]:
    suppressions = _suppressed(module.source)
    findings = [_finding(module, site) for site in sites]
    findings = sorted(
        (f for f in findings if not _is_suppressed(f, suppressions)), key=lambda f: (f.line, f.col, f.code)
    )
    # One finding per line: dynamo stops at the first break of a statement (``print(t.tolist())``
    # is one break for the user, not two).
    return list({f.line: f for f in reversed(findings)}.values())[::-1]


def quick_fix(source: str, path: str, finding: Finding) -> str | None:
    """The source rewritten by the codemod ``finding.code`` names, or None when it skips. Not verified."""
    try:
        module = ScannedModule(source, path)
    except CheckError:
        return None
    wanted = (finding.line, finding.col, finding.end_line, finding.end_col, finding.pattern, finding.compiled)
    for site in sites_of(module, all_functions=False) + sites_of(module, all_functions=True):
        position = module.positions[site.node]
        if (
            position.start.line,
            position.start.column,
            position.end.line,
            position.end.column,
            site.pattern.slug,
            _root(site).qualname,
        ) == wanted:
            return _rewrite(module, _request(module, site), finding.code)
    return None


# --- files ------------------------------------------------------------------------------------------


@dataclass
class CheckReport:
    """What ``breakfix check`` found in its paths; the exit code policy lives here (after Black)."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per file that could not be checked
    files: int = 0

    @property
    def exit_code(self) -> int:
        """2: some file could not be checked (like ruff on a syntax error); 1: findings; 0: clean."""
        return 2 if self.errors else 1 if self.findings else 0


_SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "node_modules"})


def python_files(paths: list[str]) -> Iterator[str]:
    """The files to check: each file as given, and the ``*.py`` files under each directory (hidden
    directories, caches and installed packages left out), in a stable order."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
            yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


def check_paths(paths: list[str], *, all_functions: bool = False) -> CheckReport:
    """Scan every Python file under ``paths``, following calls between them; a file that cannot be
    read or parsed is an error, and the others are still checked."""
    report = CheckReport()
    modules = {}
    for path in python_files(paths):
        report.files += 1
        try:
            modules[path] = ScannedModule(read_source(path), path)
        except BreakfixError as e:
            report.errors.append(str(e))
    for findings in _scan_modules(modules, all_functions).values():
        report.findings += findings
    return report


__all__ = [
    "PATTERNS",
    "CheckError",
    "CheckReport",
    "Finding",
    "check_paths",
    "python_files",
    "quick_fix",
    "scan_source",
    "scan_sources",
]
