"""What compiled code runs: the operations of dynamo's graphs, counted each time a graph runs.

A split (an eager orchestrator of compiled pieces) is worth something only if its pieces compile
the work. The worker counts, during one call, the operations the compiled graphs execute (FX
nodes that call a function, a method or a module) for the original under ``explain`` and for the
rewrite's compiled pieces; the engine calls their ratio the rewrite's *coverage*. Counting
executions, not graph nodes, keeps the two comparable when a piece is a loop body run once per
pass while the original unrolled the loop into one graph. Only graphs of project frames count: a
library function dynamo breaks inside (``optimizer.step()``) has its own frames compiled between
the breaks, which no rewrite of the project can compile whole. Operations are also counted by the
line that wrote them, so that the engine can leave out what the statements a split keeps eager
compute themselves (``coverage_of`` in engine.py).
"""

from __future__ import annotations

import ast
import contextlib
import linecache
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from breakfix.project import is_project_file
from breakfix.worker import torch_compat

OPERATIONS = frozenset({"call_function", "call_method", "call_module"})
_STACK_FRAME = re.compile(r'^\s*File "(?P<file>.+)", line (?P<line>\d+), in ', re.M)
TARGET = "<target>"  # what a graph compiled outside any piece (the target compiled whole) counts for


def graph_operations(graph_module: Any) -> int:
    return sum(1 for node in graph_module.graph.nodes if node.op in OPERATIONS)


def _operations_by_line(graph_module: Any) -> Counter[tuple[str, int]]:
    """The graph's operations by the line that made each: the innermost frame of the stack dynamo
    records on every node (a library's line for ``self.proj(x)``, the user's for ``x.sin()``)."""
    lines: Counter[tuple[str, int]] = Counter()
    for node in graph_module.graph.nodes:
        if node.op in OPERATIONS:
            frames = list(_STACK_FRAME.finditer(node.meta.get("stack_trace") or ""))
            lines[(os.path.realpath(frames[-1]["file"]), int(frames[-1]["line"])) if frames else ("", 0)] += 1
    return lines


def statement_span(filename: str, line: int) -> tuple[str, int, int]:
    """The statement of its function that holds ``line`` (a direct child of the function's body, as a
    split keeps it eager), as (file, first line, last line); the line alone when none is found."""
    source = "".join(linecache.getlines(filename))
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return os.path.realpath(filename), line, line
    functions = [
        f
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.lineno <= line <= (f.end_lineno or f.lineno)
    ]
    if functions:
        innermost = max(functions, key=lambda f: f.lineno)
        for statement in innermost.body:
            if statement.lineno <= line <= (statement.end_lineno or statement.lineno):
                return os.path.realpath(filename), statement.lineno, statement.end_lineno or statement.lineno
    return os.path.realpath(filename), line, line


class OperationCounter:
    """Counts, while ``counting()`` is active, the operations each compiled graph executes, by the
    compiled piece that runs it; and which pieces ran at all."""

    def __init__(self) -> None:
        self.root: Path | None = None  # set by the mode that counts: graphs of frames under it count
        self.active = False
        self.piece = TARGET
        self.executed: dict[str, int] = {}
        self.executed_at: Counter[tuple[str, int]] = Counter()  # by the line that made them
        self.pieces_run: set[str] = set()
        self.graphs_first_call = 0  # graphs dynamo compiled by the end of the first call

    @property
    def total(self) -> int:
        return sum(self.executed.values())

    def reset(self) -> None:
        self.executed.clear()
        self.executed_at.clear()
        self.pieces_run.clear()
        self.graphs_first_call = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        self.active = True
        try:
            yield
        finally:
            self.active = False

    @contextlib.contextmanager
    def in_piece(self, name: str) -> Iterator[None]:
        outer, self.piece = self.piece, name
        if self.active:
            self.pieces_run.add(name)
        try:
            yield
        finally:
            self.piece = outer

    def wrap_compiled(self, graph_module: Any, compiled: Callable) -> Callable:
        """``compiled`` (a backend's output for ``graph_module``), counting each run. Called while
        dynamo compiles the graph's frame: a frame outside the project counts nothing."""
        frame_file = torch_compat.compiling_file()
        in_project = self.root is not None and frame_file is not None and is_project_file(frame_file, self.root)
        by_line = _operations_by_line(graph_module) if in_project else Counter()
        operations = sum(by_line.values())

        def run(*args: Any) -> Any:
            if self.active:
                self.executed[self.piece] = self.executed.get(self.piece, 0) + operations
                self.executed_at.update(by_line)
            return compiled(*args)

        return run

    def backend(self, real: Callable) -> Callable:
        """A ``torch.compile`` backend: ``real``, whose graphs are counted when they run."""

        def counting_backend(graph_module: Any, example_inputs: Any) -> Callable:
            return self.wrap_compiled(graph_module, real(graph_module, example_inputs))

        return counting_backend

    def first_call(self, fn: Callable) -> Callable:
        """``fn``, counting during its first call only: later calls reuse the same graphs (and
        new shapes compile new ones, which ``graphs_first_call`` leaves out)."""
        calls = 0

        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls > 1:
                return fn(*args, **kwargs)
            try:
                with self.counting():
                    return fn(*args, **kwargs)
            finally:
                self.graphs_first_call = torch_compat.graph_count()

        return call


COUNTER = OperationCounter()  # one per worker process: the patched torch.compile and explain share it
