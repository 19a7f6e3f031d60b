"""Copies of tensors that dynamo refuses to trace, made traceable where they are plain clones."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.metadata import PositionProvider, QualifiedNameProvider

from breakfix.codemods._base import BreakfixCodemod
from breakfix.types import Applicability

DEEPCOPY = "copy.deepcopy"
HELPER = "_deepcopy"
# The helper's exact text: a module that already has it is reused, a different function of that
# name is never overwritten.
HELPER_SOURCE = f'''\
def {HELPER}(value):
    # copy.deepcopy, traceable by torch.compile where it equals a clone: a plain tensor with no
    # autograd state deep-copies to an equal tensor with its own storage. Anything else (a tensor
    # that requires grad or has a .grad, a Parameter, a subclass, a container) is deep-copied.
    if type(value) is torch.Tensor and not value.requires_grad and value.grad is None:
        return value.clone()
    return copy.deepcopy(value)
'''


class DeepcopyOfTensor(BreakfixCodemod):
    """Deep-copy a tensor with no autograd state by cloning it, and everything else as before.

    ## What it fixes
    ``copy.deepcopy(t)`` of a tensor inside compiled code (``targets = copy.deepcopy(probs)`` to
    keep a value untouched), directly in the compiled function or in a helper it calls.

    ## Why it breaks
    Dynamo does not trace ``Tensor.__deepcopy__`` (it copies storage, autograd state and Python
    attributes), so it stops at the call. For the tensors people copy in a forward, teacher
    targets computed under ``no_grad``, masks, running statistics, the deep copy is a clone: an
    equal tensor (values, shape, dtype, device, strides of a dense tensor, ``requires_grad``
    False) with its own storage. The call becomes a call to a small module-level helper,
    ``_deepcopy``, that clones exactly those tensors and calls ``copy.deepcopy`` for anything else;
    the test is on values dynamo knows while tracing, so the compiled graph holds only the clone.

    ## Example
    ```python
    def sharpen(probs, temperature):
        targets = copy.deepcopy(probs)
        return targets ** (1.0 / temperature)
    ```
    becomes
    ```python
    def _deepcopy(value):
        if type(value) is torch.Tensor and not value.requires_grad and value.grad is None:
            return value.clone()
        return copy.deepcopy(value)


    def sharpen(probs, temperature):
        targets = _deepcopy(probs)
        return targets ** (1.0 / temperature)
    ```

    ## Fix safety
    Safe: for a plain tensor without autograd state the clone equals the deep copy in values,
    shape, dtype, device, strides and ``requires_grad``, and shares no memory with the original;
    for anything else the helper calls ``copy.deepcopy`` itself. Two things a deep copy carries are
    not carried: a ``storage_offset`` (a view's copy starts at offset 0 and holds only its own
    elements) and Python attributes set on the tensor object (``t.note = ...``). A tensor that
    requires grad still breaks (its deep copy is a new leaf that requires grad, which compiled code
    cannot create); then the rewrite does not verify and is not written. ``copy.deepcopy`` with a
    ``memo`` argument is left alone.
    """

    CODE = "BF401"
    FIX_TITLE = "Clone the tensor instead of deep-copying it"
    GB_IDS = frozenset({"GB4198", "GB0179"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.in_helper = 0
        self.left_alone = ""  # why a deepcopy at the site was not rewritten

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.in_helper += node.name.value == HELPER

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.in_helper -= original.name.value == HELPER
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.in_helper:
            return updated  # the helper's own deepcopy is the fallback, never rewritten
        position = self.get_metadata(PositionProvider, original)
        if not position.start.line <= self.request.brk.site.lineno <= position.end.line:
            return updated
        names = {q.name for q in self.get_metadata(QualifiedNameProvider, original.func, set())}
        if DEEPCOPY not in names:
            return updated
        if len(original.args) != 1 or original.args[0].keyword is not None or original.args[0].star:
            self.left_alone = "copy.deepcopy is given a memo"  # the caller shares copies through it
            return updated
        self.rewritten += 1
        return updated.with_changes(func=cst.Name(HELPER))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.rewritten:
            raise self.skip(self.left_alone or f"no copy.deepcopy(value) call at line {self.request.brk.site.lineno}")
        helper = cst.parse_statement(HELPER_SOURCE, config=updated.config_for_parsing)
        existing = [s for s in updated.body if m.matches(s, m.FunctionDef(name=m.Name(HELPER)))]
        if existing:
            if not existing[0].with_changes(leading_lines=[]).deep_equals(helper):
                raise self.skip(f"the module already defines a different {HELPER}")
            return updated
        AddImportsVisitor.add_needed_import(self.context, "copy")
        AddImportsVisitor.add_needed_import(self.context, "torch")
        # `from copy import deepcopy` goes when the rewritten calls were its only uses.
        RemoveImportsVisitor.remove_unused_import(self.context, "copy", "deepcopy")
        body = list(updated.body)
        at = _after_imports(body)
        helper = helper.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()] if at else [])
        following = body[at:]
        if following:
            following[0] = following[0].with_changes(
                leading_lines=[cst.EmptyLine(), cst.EmptyLine(),
                               *(line for line in following[0].leading_lines if line.comment is not None)])
        return updated.with_changes(body=[*body[:at], helper, *following])


def _after_imports(body: list[cst.CSTNode]) -> int:
    """Index after the module docstring, ``__future__`` and other leading imports."""
    index = 0
    for statement in body:
        leading = m.matches(statement, m.SimpleStatementLine(
            body=[m.OneOf(m.Import(), m.ImportFrom(), m.Expr(value=m.SimpleString()))]))
        if not leading:
            break
        index += 1
    return index
