"""`breakfix lsp` end to end: a real server process (`python -m breakfix lsp`) driven over stdio by
pytest-lsp's client, as an editor drives it.

The static session needs no torch; the `breakfix.run` session runs real workers on a fixture and
then starts a second server to show the verified fix comes back from the cache without a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path
from pytest_lsp import make_test_lsp_client

from breakfix import static
from breakfix.codemods import BY_CODE

SRC = Path(__file__).resolve().parents[1] / "src"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "io_split" / "BF301_compiled_target"

PRINT_IN_COMPILED = """\
import pathlib

import torch

# Importing this module leaves a mark: the server must never import (run) it on its own.
pathlib.Path(__file__).with_name("imported.marker").touch()


@torch.compile(fullgraph=True)
def f(x):
    y = x.sin()
    print(y)
    return y.cos()
"""


@contextlib.asynccontextmanager
async def lsp_session(root: Path) -> AsyncIterator:
    """A client connected to a fresh `breakfix lsp` process whose workspace is ``root``; the
    session ends with shutdown and exit, and the server must exit 0."""
    client = make_test_lsp_client()
    # lsprotocol structures every result item holding "command" as a Command, even a CodeAction
    # whose command is an object; editors tell them apart by the type of "command", as here.
    converter = client.protocol._converter
    converter.register_structure_hook(
        Union[types.Command, types.CodeAction],
        lambda item, _: converter.structure(
            item, types.Command if isinstance(item.get("command"), str) else types.CodeAction
        ),
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    await client.start_io(sys.executable, "-m", "breakfix", "lsp", env=env, cwd=str(root))
    capabilities = types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True),
        text_document=types.TextDocumentClientCapabilities(code_action=types.CodeActionClientCapabilities()),
    )
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=from_fs_path(str(root)),
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(root)), name="project")],
        )
    )
    assert result.server_info.name == "breakfix"
    assert RUN_COMMAND in result.capabilities.execute_command_provider.commands
    try:
        yield client
    finally:  # also when the test failed: a server left running would hang client.stop()
        await asyncio.wait_for(client.shutdown_session(), 30)
        await client.stop()
    assert client._server.returncode == 0
    assert client.error is None


RUN_COMMAND = "breakfix.run"
BF301_TITLE = BY_CODE["BF301"].FIX_TITLE


def open_document(client, path: Path, text: str, version: int = 1) -> str:
    uri = from_fs_path(str(path))
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )
    return uri


async def diagnostics_for(client, uri: str) -> list[types.Diagnostic]:
    """The next diagnostics the server publishes for ``uri``."""
    while uri not in client.diagnostics:
        await asyncio.wait_for(client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 30)
    return client.diagnostics.pop(uri)


async def code_actions(client, uri: str, line: int) -> list[types.CodeAction]:
    whole_line = types.Range(start=types.Position(line=line, character=0), end=types.Position(line=line, character=0))
    return await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=whole_line,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )


def apply_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP text edits as an editor does (positions in UTF-16 units; ASCII sources here)."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(position: types.Position) -> int:
        # Strict, as an editor may be: no position past the end of its line or of the document.
        if position.line == len(lines):
            assert position.character == 0 and (not lines or lines[-1].endswith(("\n", "\r"))), position
            return len(text)
        assert position.character <= len(lines[position.line].rstrip("\r\n")), position
        return starts[position.line] + position.character

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


def print_range(text: str) -> types.Range:
    line = next(i for i, ln in enumerate(text.splitlines()) if "print(" in ln)
    match = re.search(r"print\(.*\)", text.splitlines()[line])
    return types.Range(
        start=types.Position(line=line, character=match.start()), end=types.Position(line=line, character=match.end())
    )


@pytest.mark.asyncio
async def test_static_diagnostic_and_quick_fix_follow_the_text(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(PRINT_IN_COMPILED)
    async with lsp_session(tmp_path) as client:
        uri = open_document(client, path, PRINT_IN_COMPILED)
        (diagnostic,) = await diagnostics_for(client, uri)
        assert diagnostic.range == print_range(PRINT_IN_COMPILED)
        assert (diagnostic.code, diagnostic.source) == ("BF501", "breakfix")
        assert "GB0059" in diagnostic.message

        action, run = await code_actions(client, uri, diagnostic.range.start.line)
        assert run.command.command == RUN_COMMAND and list(run.command.arguments) == [{"target": "model.py:f"}]
        assert run.title == "breakfix: find and verify a fix for f (runs it)"
        assert action.kind == types.CodeActionKind.QuickFix
        assert action.title.startswith("breakfix: ") and action.title.endswith("(not verified)")
        (finding,) = static.scan_source(PRINT_IN_COMPILED, str(path))
        expected = static.quick_fix(PRINT_IN_COMPILED, str(path), finding)
        assert expected is not None and expected != PRINT_IN_COMPILED
        assert apply_edits(PRINT_IN_COMPILED, action.edit.changes[uri]) == expected
        assert not await code_actions(client, uri, 0)  # nothing to offer away from the break
        with pytest.raises(JsonRpcInvalidParams, match="takes one argument"):
            await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=RUN_COMMAND, arguments=["model.py:f"])
            )

        # Typing: the print moves down a line, then goes away; diagnostics follow the buffer.
        moved = PRINT_IN_COMPILED.replace("    y = x.sin()\n", "    y = x.sin()\n    y = y + 1\n")
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=11, character=0), end=types.Position(line=11, character=0)
                        ),
                        text="    y = y + 1\n",
                    )
                ],
            )
        )
        (diagnostic,) = await diagnostics_for(client, uri)
        assert diagnostic.range == print_range(moved)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
                content_changes=[
                    types.TextDocumentContentChangeWholeDocument(text=moved.replace("    print(y)\n", ""))
                ],
            )
        )
        assert list(await diagnostics_for(client, uri)) == []

    assert not (tmp_path / "imported.marker").exists()  # the module was never imported
    assert not (tmp_path / ".breakfix").exists()  # nor was anything run or cached


def test_missing_pygls_is_a_one_line_error() -> None:
    blocked = "import sys; sys.modules['pygls'] = None; from breakfix.cli import main; main(['lsp'])"
    result = subprocess.run(
        [sys.executable, "-c", blocked],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "breakfix: error: breakfix lsp needs pygls: pip install 'breakfix[lsp]'"


@pytest.mark.torch
@pytest.mark.asyncio
async def test_run_command_returns_the_verified_edit_and_caches_it(tmp_path: Path) -> None:
    shutil.copy(FIXTURE / "before.py", tmp_path / "before.py")
    shutil.copy(FIXTURE / "inputs.py", tmp_path / "inputs.py")
    path = tmp_path / "before.py"
    before, after = (FIXTURE / "before.py").read_text(), (FIXTURE / "after.py").read_text()
    break_line = before.splitlines().index("    print(y, file=sys.stderr)")  # inside @torch.compile(fullgraph=True)
    async with lsp_session(tmp_path) as client:
        uri = open_document(client, path, before)
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=RUN_COMMAND, arguments=[{"target": "before.py:f", "inputs": "inputs.py:example_inputs"}]
            )
        )
        assert result["verified"] is True and result["kind"] == "split", result
        edits = [
            types.TextEdit(
                range=types.Range(start=types.Position(**e["range"]["start"]), end=types.Position(**e["range"]["end"])),
                new_text=e["newText"],
            )
            for e in result["edit"]["changes"][uri]
        ]
        assert apply_edits(before, edits) == after
        assert path.read_text() == before  # the command proposes; only the editor applies

        (reports,) = client.progress_reports.values()
        kinds = [type(r).__name__ for r in reports]
        assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
        assert any("verifying BF301" in (r.message or "") for r in reports[1:-1])

        verified = [a for a in await code_actions(client, uri, break_line) if a.title.endswith("(verified)")]
        assert len(verified) == 1 and apply_edits(before, verified[0].edit.changes[uri]) == after
    assert (tmp_path / ".breakfix" / "fixes").is_dir()

    # A new server (the editor reopened): the same content gets the verified fix from the cache.
    async with lsp_session(tmp_path) as client:
        uri = open_document(client, path, before)
        static_diagnostic, run_diagnostic = await diagnostics_for(client, uri)
        assert (static_diagnostic.source, run_diagnostic.source) == ("breakfix", "breakfix run")
        assert run_diagnostic.range.start.line == break_line
        # A split says so, and how to call the target, wherever its title shows.
        assert run_diagnostic.message.startswith(
            "graph break (GB0059 Failed to trace builtin operator) found running "
            "before.py:f; verified fix available: " + BF301_TITLE + " [split: pieces compile "
        )
        assert run_diagnostic.message.endswith("call the target eagerly, not under torch.compile]")
        started = time.monotonic()
        actions = await code_actions(client, uri, break_line)
        assert time.monotonic() - started < 5  # a cache read, not a run (a run takes much longer)
        (action,) = [a for a in actions if a.title.endswith("(verified)")]
        assert action.title.startswith(f"breakfix: {BF301_TITLE} [split: pieces compile ")
        assert action.is_preferred
        assert apply_edits(before, action.edit.changes[uri]) == after
        assert not client.progress_reports  # nothing ran

        # Any edit to the file makes the cached fix unreachable: it was verified for other code.
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=before + "\n# edited\n")],
            )
        )
        assert not [a for a in await code_actions(client, uri, break_line) if a.title.endswith("(verified)")]


@given(st.text(alphabet="ab\r\n", max_size=30), st.text(alphabet="ab\r\n", max_size=30))
@settings(max_examples=300, deadline=None)
def test_text_edits_turn_before_into_after(before: str, after: str) -> None:
    # Line endings of every kind, a last line with or without one: the edits an editor applies
    # to the old text must give the new text exactly.
    from pygls.workspace.position_codec import PositionCodec

    from breakfix.lsp import text_edits

    assert apply_edits(before, text_edits(before, after, PositionCodec())) == after
