"""Python numbers read off tensors: the host syncs torch.compile traces when they are explicit."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider

from breakfix.codemods._base import BreakfixCodemod, existing_helper, index_after_imports, insert_top_level
from breakfix.codemods._orchestration import NotSplittable, function_site, is_compiled_piece, single_caller
from breakfix.types import Applicability

ARANGE = "torch.arange"
HELPER = "_number"
# The helper's exact text: a module that already has it is reused, a different function of that
# name is never overwritten.
HELPER_SOURCE = f'''\
def {HELPER}(value):
    # What torch.arange does with a one-element tensor given as a bound, done before the call
    # (its Python number, .item()): torch.compile traces the explicit read.
    return value.item() if isinstance(value, torch.Tensor) else value
'''


class TensorBoundsOfArange(BreakfixCodemod):
    """Read the bounds of ``torch.arange`` off their tensors with ``.item()`` before the call.

    ## What it fixes
    A ``torch.arange(start, end, step)`` inside compiled code whose bounds are one-element
    tensors computed from data, such as distances read off position tensors
    (``max_dist = pooled_pos[0] - pos[0] + n * stride``), which stops ``fullgraph=True`` with a
    dynamo internal error, ``PendingUnbackedSymbolNotFound`` (no GB id; transformers' funnel).

    ## Why it breaks
    Given a tensor where it takes a number, ``torch.arange`` reads the number itself. Under
    ``fullgraph=True`` (scalar capture on) that hidden read makes unbacked sizes that dynamo loses
    track of (torch 2.13: "Pending unbacked symbols ... not in returned outputs"). The same read
    written out, ``bound.item()``, traces. Each bound that is not a literal is passed through a
    helper that returns ``value.item()`` for a tensor and the value itself otherwise, so a bound
    that is a Python number on some calls is left as it is.

    ## Example
    ```python
    max_dist = ref_point + num_remove * stride
    min_dist = pooled_pos[0] - pos[-1]
    return torch.arange(max_dist, min_dist - 1, -stride, dtype=torch.long)
    ```
    becomes
    ```python
    max_dist = ref_point + num_remove * stride
    min_dist = pooled_pos[0] - pos[-1]
    return torch.arange(_number(max_dist), _number(min_dist - 1), _number(-stride), dtype=torch.long)
    ```

    ## Fix safety
    Safe: ``torch.arange`` turns a tensor bound into its Python number with the same read
    (``Tensor.item()``: an int for an integer tensor, a float for a floating one), so it receives
    the same numbers and infers the same dtype; a tensor of more than one element fails both ways.
    Only the positional bounds of a ``torch.arange`` call at the break's line are touched; keyword
    arguments (``dtype=``, ``device=``) are not. Other functions that read a number off a tensor
    argument the same way (``x.roll(shift)`` with a 0-d tensor ``shift``) are not rewritten. Not
    applied in a compiled piece an orchestrator calls, outside the piece's loops: there BF301 keeps
    the statement eager at the cost of that statement alone, and the rest of the piece gets an
    arange of known size instead of an unbacked one that later code may have to guard on
    (transformers' gemma2: ``if cache_position.shape[0] > max_cache_len:`` in its cache).
    """

    CODE = "BF701"
    FIX_TITLE = "Read torch.arange's tensor bounds with .item() before the call"
    GB_TYPES = frozenset({"InternalTorchDynamoError"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.in_helper = 0

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        if _orchestrator_can_run_it(tree, self.request.brk.site.lineno):
            raise self.skip("the arange is in a compiled piece outside any loop: BF301 keeps it eager in the "
                            "orchestrator, so the piece gets a tensor of known size instead of an unbacked one")
        return super().transform_module_impl(tree)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.in_helper += node.name.value == HELPER

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.in_helper -= original.name.value == HELPER
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        position = self.get_metadata(PositionProvider, original)
        if self.in_helper or not position.start.line <= self.request.brk.site.lineno <= position.end.line:
            return updated
        if ARANGE not in {q.name for q in self.get_metadata(QualifiedNameProvider, original.func, set())}:
            return updated
        args = [arg.with_changes(value=_read_number(arg.value)) if arg.keyword is None and not arg.star else arg
                for arg in updated.args]
        if all(new.value is old.value for new, old in zip(args, updated.args)):
            return updated
        self.rewritten += 1
        return updated.with_changes(args=args)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.rewritten:
            raise self.skip(f"no torch.arange(...) with bounds that may be tensors at line {self.request.brk.site.lineno}")
        helper = cst.parse_statement(HELPER_SOURCE, config=updated.config_for_parsing)
        AddImportsVisitor.add_needed_import(self.context, "torch")
        body = list(updated.body)
        if existing_helper(body, helper):
            return updated
        return updated.with_changes(body=insert_top_level(body, index_after_imports(body), helper))


def _orchestrator_can_run_it(module: cst.Module, line: int) -> bool:
    """Whether ``line`` is in a compiled piece an orchestrator calls, outside any loop of the
    piece: keeping its statement eager then costs no compiled code but that statement, and the
    arange's size is a plain number to the rest of the piece. Read with ``.item()`` inside, it
    is an unbacked size, and code after it (a library's ``if positions.shape[0] > n:``) may need
    a guard on it that no rewrite can give."""
    try:
        site = function_site(module, line)
    except NotSplittable:
        return False
    if not is_compiled_piece(site.function) or single_caller(module, site.function) is None:
        return False
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    statement = next((s for s in site.function.body.body
                      if positions[s].start.line <= line <= positions[s].end.line), None)
    return statement is not None and not m.findall(statement, m.For() | m.While())


def _read_number(value: cst.BaseExpression) -> cst.BaseExpression:
    """``value`` passed through the helper, unless it is a number literal or already passed."""
    literal = m.Integer() | m.Float() | m.UnaryOperation(expression=m.Integer() | m.Float())
    if m.matches(value, literal | m.Call(func=m.Name(HELPER))):
        return value
    return cst.Call(func=cst.Name(HELPER), args=[cst.Arg(value)])
