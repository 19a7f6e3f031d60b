"""The language server (``breakfix lsp``, over stdio): breakfix's quick fixes in the editor.

- Diagnostics for open Python files come from the static check (``breakfix.static``), refreshed as
  the user types. Its quick fixes are the real codemods' output, titled "(not verified)".
- The ``breakfix.run`` command runs the whole dynamic pipeline on one target, reporting progress
  through ``$/progress``, and remembers the result in ``.breakfix/`` keyed by file content
  (``fix_cache.py``): from then on, that file content offers the verified rewrite as a quick fix
  titled "(verified)", in this session and in any later one, without running anything.

The server never imports torch and never runs user code except through that command, whose engine
runs the user's code in worker processes (and off the event loop, so the server stays responsive).
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lsprotocol import types
from lsprotocol.converters import get_converter
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import PositionCodec, ServerTextPosition, ServerTextRange

from breakfix import __version__, static
from breakfix.codemods import BY_CODE
from breakfix.errors import BreakfixError
from breakfix.fix_cache import CachedRun, FixCache
from breakfix.types import FileChange, TargetSpec

RUN_COMMAND = "breakfix.run"
SOURCE = "breakfix"
DEBOUNCE_SECONDS = 0.2  # rescan once typing pauses, not on every keystroke


class BreakfixLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("breakfix", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.pending_scans: dict[str, asyncio.Task] = {}
        self.run_lock = asyncio.Lock()  # one dynamic run at a time: each one keeps a CPU busy

    @property
    def root(self) -> Path:
        return Path(os.path.realpath(self.workspace.root_path or os.getcwd()))

    def cache(self, root: Path | None = None) -> FixCache:
        return FixCache(root or self.root)


def build_server() -> BreakfixLanguageServer:
    server = BreakfixLanguageServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: BreakfixLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        _publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: BreakfixLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        _schedule_scan(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: BreakfixLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        if task := ls.pending_scans.pop(uri, None):
            task.cancel()
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix])
    )
    def code_action(ls: BreakfixLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        document = ls.workspace.get_text_document(params.text_document.uri)
        if not _is_python(document):
            return []
        wanted = document.range_from_client_units(params.range)
        return _verified_actions(ls, document, wanted) + _static_actions(document, wanted, ls.root)

    @server.command(RUN_COMMAND)
    async def run(ls: BreakfixLanguageServer, *arguments: Any) -> dict:
        return await _run_command(ls, arguments)

    return server


def serve() -> None:
    build_server().start_io()


# --- static diagnostics and their quick fixes -------------------------------------------------


def _is_python(document: TextDocument) -> bool:
    return document.uri.startswith("file:") and (document.language_id == "python" or document.path.endswith(".py"))


def _schedule_scan(ls: BreakfixLanguageServer, uri: str) -> None:
    if task := ls.pending_scans.pop(uri, None):
        task.cancel()

    async def scan_later() -> None:
        await asyncio.sleep(DEBOUNCE_SECONDS)
        ls.pending_scans.pop(uri, None)
        _publish(ls, uri)

    ls.pending_scans[uri] = asyncio.ensure_future(scan_later())


def _findings(document: TextDocument) -> list[static.Finding] | None:
    """The static check's findings; None while the text does not parse (the user is typing)."""
    try:
        return static.scan_source(document.source, document.path)
    except BreakfixError:
        return None


def _finding_range(document: TextDocument, finding: static.Finding) -> types.Range:
    return document.range_to_client_units(
        ServerTextRange(
            ServerTextPosition(finding.line - 1, finding.col), ServerTextPosition(finding.end_line - 1, finding.end_col)
        )
    )


def _diagnostic(document: TextDocument, finding: static.Finding) -> types.Diagnostic:
    gb = " ".join(part for part in (finding.gb_id, finding.gb_type) if part)
    return types.Diagnostic(
        range=_finding_range(document, finding),
        message=f"{finding.message} ({gb})" if gb else finding.message,
        severity=types.DiagnosticSeverity.Warning,
        code=finding.code,
        source=SOURCE,
    )


def _publish(ls: BreakfixLanguageServer, uri: str) -> None:
    document = ls.workspace.get_text_document(uri)
    if not _is_python(document):
        return
    findings = _findings(document)
    if findings is None:
        return  # keep the last diagnostics until the file parses again, rather than flicker
    diagnostics = [_diagnostic(document, f) for f in findings] + _run_diagnostics(ls, document)
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, version=document.version, diagnostics=diagnostics)
    )


def _run_diagnostics(ls: BreakfixLanguageServer, document: TextDocument) -> list[types.Diagnostic]:
    """The breaks a ``breakfix.run`` found in exactly this content (from the cache): the ones the
    static check cannot see, and where a verified fix is on offer."""
    path = Path(os.path.realpath(document.path))
    diagnostics = []
    for run in ls.cache().lookup(document.source):
        outcome = f"verified fix available: {run.title}" if run.verified else f"no verified fix: {run.why}"
        for brk in run.breaks:
            line = brk["line"] - 1
            if Path(brk["path"]) != path or line >= len(document.lines):
                continue
            text = document.lines[line].rstrip("\r\n")
            site = ServerTextRange(
                ServerTextPosition(line, len(text) - len(text.lstrip())), ServerTextPosition(line, len(text))
            )
            gb = " ".join(part for part in (brk["gb_id"], brk["gb_type"]) if part)
            diagnostics.append(
                types.Diagnostic(
                    range=document.range_to_client_units(site),
                    severity=types.DiagnosticSeverity.Warning,
                    message=f"graph break ({gb}) found running {run.target}; {outcome}",
                    code=brk["gb_id"] or None,
                    source=f"{SOURCE} run",
                )
            )
    return diagnostics


def _static_actions(document: TextDocument, wanted: ServerTextRange, root: Path) -> list[types.CodeAction]:
    """Per finding on the wanted lines: the codemod's rewrite (not verified), then a command that
    runs the dynamic pipeline on the compiled function it is reached from (the user's choice:
    it runs their code)."""
    actions, offered_runs = [], set()
    for finding in _findings(document) or []:
        if not _touches(wanted, range(finding.line - 1, finding.end_line)):
            continue
        diagnostic = _diagnostic(document, finding)
        fixed = static.quick_fix(document.source, document.path, finding)
        if fixed is not None and fixed != document.source:
            actions.append(
                types.CodeAction(
                    title=f"breakfix: {_fix_title(finding)} (not verified)",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diagnostic],
                    edit=types.WorkspaceEdit(
                        changes={document.uri: text_edits(document.source, fixed, document.position_codec)}
                    ),
                )
            )
        if finding.compiled and finding.compiled not in offered_runs:
            offered_runs.add(finding.compiled)
            path = Path(os.path.realpath(document.path))
            target = f"{path.relative_to(root) if path.is_relative_to(root) else path}:{finding.compiled}"
            title = f"breakfix: find and verify a fix for {finding.compiled} (runs it)"
            actions.append(
                types.CodeAction(
                    title=title,
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diagnostic],
                    command=types.Command(title=title, command=RUN_COMMAND, arguments=[{"target": target}]),
                )
            )
    return actions


def _touches(wanted: ServerTextRange, lines: Iterable[int]) -> bool:
    """Actions are offered by line: the cursor anywhere on a line of the site asks for them."""
    return any(wanted.start.line <= line <= wanted.end.line for line in lines)


def _fix_title(finding: static.Finding) -> str:
    codemod = BY_CODE.get(finding.code)
    return codemod.FIX_TITLE if codemod else finding.message


# --- verified fixes from `breakfix.run` -------------------------------------------------------


def _current_text(ls: BreakfixLanguageServer, path: Path) -> str | None:
    """The editor's text when the file is open, else the file on disk."""
    document = ls.workspace.text_documents.get(from_fs_path(str(path)))
    return document.source if document is not None else _read_disk(path)


def _read_disk(path: Path) -> str | None:
    from breakfix import writer

    try:
        return writer.read_source(path)
    except BreakfixError:
        return None


def _verified_actions(
    ls: BreakfixLanguageServer, document: TextDocument, wanted: ServerTextRange
) -> list[types.CodeAction]:
    """The cached verified rewrites of this content, offered on the lines they touch or break on."""
    actions = []
    path = Path(os.path.realpath(document.path))
    for run in ls.cache().lookup(document.source):
        if not run.verified or any(_current_text(ls, c.path) != c.before for c in run.changes):
            continue  # another file it rewrites has changed since: no longer verified
        lines = {b["line"] - 1 for b in run.breaks if Path(b["path"]) == path}
        for change in run.changes:
            if change.path == path:
                lines |= _changed_lines(change.before, change.after)
        if not _touches(wanted, lines):
            continue
        actions.append(
            types.CodeAction(
                title=f"breakfix: {run.title} (verified)",
                kind=types.CodeActionKind.QuickFix,
                is_preferred=True,
                edit=workspace_edit(run.changes, ls.workspace.position_codec),
            )
        )
    return actions


def _changed_lines(before: str, after: str) -> set[int]:
    lines = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, _lines(before), _lines(after), autojunk=False).get_opcodes():
        if tag != "equal":
            lines.update(range(i1, max(i2, i1 + 1)))
    return lines


async def _run_command(ls: BreakfixLanguageServer, arguments: tuple) -> dict:
    """``breakfix.run {"target": "file.py:qualname", "inputs": spec?, "root": dir?}``: run the dynamic
    pipeline (a dry run: nothing is written) and return the verified edit, or why there is none."""
    from breakfix.engine import Engine
    from breakfix.locator import RunOptions

    if len(arguments) != 1 or not isinstance(arguments[0], dict) or "target" not in arguments[0]:
        raise JsonRpcInvalidParams(
            f'{RUN_COMMAND} takes one argument {{"target": "file.py:qualname", '
            f'"inputs": spec, "root": dir}}, got {list(arguments)!r}'
        )
    request = arguments[0]
    root = Path(os.path.realpath(request.get("root") or ls.root))
    try:
        # File specs are taken relative to the root (the workspace folder).
        target = str(TargetSpec.parse(request["target"]).absolute(root))
        inputs = request.get("inputs") and str(TargetSpec.parse(request["inputs"]).absolute(root))
    except ValueError as e:
        raise JsonRpcInvalidParams(str(e)) from None
    target_file = Path(TargetSpec.parse(target).location)
    options = RunOptions(target=target, inputs=inputs, root=root, backend="aot_eager", timeout=300)
    async with ls.run_lock:
        report_progress = await _begin_progress(ls, f"breakfix: {request['target']}")
        loop = asyncio.get_running_loop()
        # The cache key is the target's file as the engine reads it: on disk, not the editor's buffer.
        analysed = _read_disk(target_file)
        try:
            report = await loop.run_in_executor(
                None,
                lambda: Engine(
                    options,
                    unsafe_fixes=False,
                    max_rounds=5,
                    progress=lambda message: loop.call_soon_threadsafe(report_progress, message),
                ).run(apply=False),
            )
        except BreakfixError as e:
            return {"target": request["target"], "verified": False, "why": str(e), "edit": None}
        finally:
            report_progress(None)
    run = CachedRun.from_report(request["target"], report)
    ls.cache(root).store(run, [text for text in (analysed, *(c.before for c in run.changes)) if text is not None])
    for uri in list(ls.workspace.text_documents):
        _publish(ls, uri)  # open files with this content now show what the run found
    if run.verified:
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Info, message=f"breakfix: verified fix for {request['target']}: {run.title}"
            )
        )
    edit = (
        get_converter().unstructure(workspace_edit(run.changes, ls.workspace.position_codec)) if run.verified else None
    )
    return {
        "target": request["target"],
        "verified": run.verified,
        "kind": run.kind,
        "coverage": run.coverage,
        "title": run.title,
        "why": run.why,
        "edit": edit,
        "breaks": run.breaks,
    }


async def _begin_progress(ls: BreakfixLanguageServer, title: str):
    """Start a ``$/progress`` report when the client supports it; returns ``report(message)``,
    where ``report(None)`` ends it."""
    window = ls.client_capabilities.window
    if not (window and window.work_done_progress):
        return lambda message: None
    token = f"breakfix-run-{uuid.uuid4()}"
    await ls.work_done_progress.create_async(token)
    ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=False))

    def report(message: str | None) -> None:
        if message is None:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
        else:
            ls.work_done_progress.report(token, types.WorkDoneProgressReport(message=message))

    return report


# --- edits ------------------------------------------------------------------------------------

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _lines(text: str) -> list[str]:
    """Lines as LSP counts them (only \\n, \\r\\n and \\r end a line), each with its ending."""
    return _LINE.findall(text)


def text_edits(before: str, after: str, codec: PositionCodec) -> list[types.TextEdit]:
    """Line-level edits turning ``before`` into ``after``: only the changed lines are replaced, so
    the editor keeps the cursor, folds and marks elsewhere."""
    old, new = _lines(before), _lines(after)
    edits = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        start = types.Position(line=i1, character=0)
        if i2 == len(old) and old and not old[-1].endswith(("\n", "\r")):
            # The last line has no line break: end at its last character, not past the document.
            end = codec.position_to_client_units(old, ServerTextPosition(i2 - 1, len(old[-1])))
        else:
            end = types.Position(line=i2, character=0)
        edits.append(types.TextEdit(range=types.Range(start=start, end=end), new_text="".join(new[j1:j2])))
    return edits


def workspace_edit(changes: list[FileChange], codec: PositionCodec) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(
        changes={from_fs_path(str(c.path)): text_edits(c.before, c.after, codec) for c in changes}
    )
