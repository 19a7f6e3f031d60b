"""Escape hatches for pure code dynamo cannot trace (recipe 2 of the fullgraph chapter)."""

from __future__ import annotations

from functools import partial

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.helpers import get_full_name_for_node

from breakfix.codemods._base import BreakfixCodemod, FixRequest, function_at, readable_module
from breakfix.codemods._purity import impurity
from breakfix.types import Applicability, Frame

NONSTRICT_TRACE = "torch._dynamo.nonstrict_trace"


def helper_frames(request: FixRequest) -> tuple[Frame, Frame] | None:
    """(call site in the project, the called helper's frame), or None when the break is in the
    compiled frame itself. A break inside a library is answered at the project's call into it."""
    stack = request.brk.user_stack
    call_site = (
        request.brk.project_stack[-1]
        if request.brk.in_library
        else (request.brk.project_stack[-2] if len(request.brk.project_stack) > 1 else None)
    )
    if call_site is None:
        return None
    index = stack.index(call_site)
    return call_site, stack[index + 1]


class UntraceablePureHelper(BreakfixCodemod):
    """Call a pure helper that dynamo cannot trace through ``torch._dynamo.nonstrict_trace``.

    ## What it fixes
    A graph break inside a helper function (yours or a library's) that the compiled code calls,
    such as a ``torch._dynamo.graph_break()`` or a Python construct dynamo does not support, when
    the helper is pure: no I/O, no logging, no writes to globals, attributes or its arguments.

    ## Why it breaks
    Dynamo traces the helper bytecode by bytecode and stops at the first construct it cannot
    model. ``nonstrict_trace`` tells dynamo to trace the helper non-strictly instead: its tensor
    operations still land in the graph, but the Python around them is run, not analysed.

    ## Example
    ```python
    def g(x):
        y = x.sin()
        torch._dynamo.graph_break()
        return y.sin()

    def f(x):
        return g(x.sin())          # before
        return torch._dynamo.nonstrict_trace(g)(x.sin())   # after
    ```
    For a method called as ``self.g(...)``, the definition is decorated instead
    (``nonstrict_trace(self.g)`` is rejected by dynamo).

    ## Fix safety
    Safe when the helper passes breakfix's static purity check and the rewrite verifies: under
    aot_eager and inductor the helper's Python body runs only while tracing, so any side effect it
    had would be lost; that is why impure helpers are never wrapped. Helpers that return ``None``
    or strings are rejected by dynamo and fail verification.
    """

    CODE = "BF201"
    FIX_TITLE = "Trace the pure helper with torch._dynamo.nonstrict_trace"
    REQUIRES = (NONSTRICT_TRACE,)
    GB_IDS = frozenset({"GB0025", "GB0059", "GB0207", "GB0007"})
    GB_TYPES = frozenset({"Call to `torch._dynamo.graph_break()`"})
    APPLICABILITY = Applicability.SAFE

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        frames = helper_frames(request)
        if frames is None:
            return request.brk.site.filename
        call_site, helper = frames
        return helper.filename if _is_method_call(call_site, helper) else call_site.filename

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        frames = helper_frames(self.request)
        if frames is None:
            raise self.skip("the break is in the compiled function itself, not in a helper it calls")
        call_site, helper = frames
        helper_module = tree if helper.filename == self.context.filename else self.parse_file(helper.filename)
        definition = function_at(helper_module, helper.lineno)
        if definition is None:
            raise self.skip("cannot find the helper's definition")
        reasons = impurity(definition, helper_module, helper.filename, partial(readable_module, self.request))
        if reasons:
            raise self.skip(f"the helper is not pure: {reasons[0]}")
        AddImportsVisitor.add_needed_import(self.context, "torch")
        if _is_method_call(call_site, helper):
            return self._decorate(tree, definition)
        return self._wrap_calls(tree, call_site, definition.name.value)

    def _decorate(self, tree: cst.Module, definition: cst.FunctionDef) -> cst.Module:
        if any(get_full_name_for_node(d.decorator) == NONSTRICT_TRACE for d in definition.decorators):
            raise self.skip("the helper is already traced with nonstrict_trace")
        decorated = definition.with_changes(
            decorators=[cst.Decorator(cst.parse_expression(NONSTRICT_TRACE)), *definition.decorators]
        )
        return tree.deep_replace(definition, decorated)

    def _wrap_calls(self, tree: cst.Module, call_site: Frame, helper_name: str) -> cst.Module:
        codemod = self

        class WrapCalls(cst.CSTTransformer):
            METADATA_DEPENDENCIES = (cst.metadata.PositionProvider,)
            wrapped = 0

            def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
                position = self.get_metadata(cst.metadata.PositionProvider, original)
                name = get_full_name_for_node(original.func) or ""
                if position.start.line != call_site.lineno or name.rpartition(".")[2] != helper_name:
                    return updated
                if m.matches(
                    original.func, m.Call(func=m.Name("nonstrict_trace") | m.Attribute(attr=m.Name("nonstrict_trace")))
                ):
                    return updated
                WrapCalls.wrapped += 1
                hatch = cst.Call(func=cst.parse_expression(NONSTRICT_TRACE), args=[cst.Arg(updated.func)])
                return updated.with_changes(func=hatch)

        result = cst.MetadataWrapper(tree).visit(WrapCalls())
        if not WrapCalls.wrapped:
            raise codemod.skip(f"no call to {helper_name} at line {call_site.lineno}")
        return result


def _is_method_call(call_site: Frame, helper: Frame) -> bool:
    """``self.helper(...)``: dynamo rejects ``nonstrict_trace(self.helper)``, so decorate the def."""
    return f"self.{helper.name}(" in call_site.line
