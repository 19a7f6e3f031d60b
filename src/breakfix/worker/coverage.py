"""What compiled code runs: the operations of dynamo's graphs, counted each time a graph runs.

A split (an eager orchestrator of compiled pieces) is worth something only if its pieces compile
the work. The worker counts, during one call, the operations the compiled graphs execute (FX
nodes that call a function, a method or a module) for the original under ``explain`` and for the
rewrite's compiled pieces; the engine calls their ratio the rewrite's *coverage*. Counting
executions, not graph nodes, keeps the two comparable when a piece is a loop body run once per
pass while the original unrolled the loop into one graph. Only graphs of project frames count: a
library function dynamo breaks inside (``optimizer.step()``) has its own frames compiled between
the breaks, which no rewrite of the project can compile whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from breakfix.project import is_project_file
from breakfix.worker import torch_compat

OPERATIONS = frozenset({"call_function", "call_method", "call_module"})
TARGET = "<target>"  # what a graph compiled outside any piece (the target compiled whole) counts for


def graph_operations(graph_module: Any) -> int:
    return sum(1 for node in graph_module.graph.nodes if node.op in OPERATIONS)


class OperationCounter:
    """Counts, while ``counting()`` is active, the operations each compiled graph executes, by the
    compiled piece that runs it; and which pieces ran at all."""

    def __init__(self) -> None:
        self.root: Path | None = None  # set by the mode that counts: graphs of frames under it count
        self.active = False
        self.piece = TARGET
        self.executed: dict[str, int] = {}
        self.pieces_run: set[str] = set()

    @property
    def total(self) -> int:
        return sum(self.executed.values())

    def empty_pieces(self) -> list[str]:
        """Pieces that ran but executed no operation: a piece made of attribute reads, tuple
        packing or returns compiles nothing."""
        return sorted(p for p in self.pieces_run if not self.executed.get(p))

    def reset(self) -> None:
        self.executed.clear()
        self.pieces_run.clear()

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
        operations = graph_operations(graph_module) if in_project else 0

        def run(*args: Any) -> Any:
            if self.active:
                self.executed[self.piece] = self.executed.get(self.piece, 0) + operations
            return compiled(*args)

        return run

    def backend(self, real: Callable) -> Callable:
        """A ``torch.compile`` backend: ``real``, whose graphs are counted when they run."""

        def counting_backend(graph_module: Any, example_inputs: Any) -> Callable:
            return self.wrap_compiled(graph_module, real(graph_module, example_inputs))

        return counting_backend

    def first_call(self, fn: Callable) -> Callable:
        """``fn``, counting during its first call only: later calls reuse the same graphs."""
        calls = 0

        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            with self.counting() if calls == 1 else contextlib.nullcontext():
                return fn(*args, **kwargs)

        return call


COUNTER = OperationCounter()  # one per worker process: the patched torch.compile and explain share it
