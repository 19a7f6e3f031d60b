"""Copies and re-bindings of tensors that dynamo refuses to trace, made traceable where the meaning is kept."""

from __future__ import annotations

import os

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import RemoveImportsVisitor
from libcst.metadata import PositionProvider, QualifiedNameProvider

from breakfix.codemods._base import FixRequest, SiteCodemod, fresh_name, names_in, spans
from breakfix.types import Applicability

DEEPCOPY = "copy.deepcopy"
HELPER = "_deepcopy"
# The helper's exact text: a module that already has it is reused, a different function of that
# name is never overwritten.
HELPER_SOURCE = f"""\
def {HELPER}(value):
    # copy.deepcopy, traceable by torch.compile where it equals cloning: a plain tensor with no
    # autograd state deep-copies to an equal tensor with its own storage, and a dict (str or int
    # keys), list or tuple of such tensors and Python scalars to the same container of clones, when
    # no tensor or container appears in it twice and no tensor in it is a view (a deep copy would
    # share one copy of it, or one storage between views); an OrderedDict too (a state dict), with
    # its _metadata of versions, when it has no other attribute (torch.compile's own deep copy of
    # an OrderedDict comes back empty). Anything else (a tensor that requires grad or has a .grad,
    # a Parameter, a subclass, another object) is deep-copied.
    seen = []

    def versions(item):
        return type(item) is collections.OrderedDict and all(
            type(key) is str
            and type(entry) is dict
            and all(type(number) in (int, str, type(None)) for number in entry.values())
            for key, entry in item.items()
        )

    def clonable(item, alone):
        if type(item) in (int, float, bool, str, type(None)):
            return True
        if any(item is other for other in seen):
            return False
        seen.append(item)
        if type(item) is torch.Tensor:
            return not item.requires_grad and item.grad is None and (alone or item._base is None)
        if type(item) is collections.OrderedDict:
            extra = vars(item)
            if set(extra) - {{"_metadata"}} or ("_metadata" in extra and not versions(extra["_metadata"])):
                return False
        elif type(item) is not dict:
            return type(item) in (list, tuple) and all(clonable(entry, False) for entry in item)
        return all(type(key) in (int, str) and clonable(entry, False) for key, entry in item.items())

    def clone(item):
        if type(item) is torch.Tensor:
            return item.clone()
        if type(item) is dict:
            return {{key: clone(entry) for key, entry in item.items()}}
        if type(item) is collections.OrderedDict:
            copied = collections.OrderedDict((key, clone(entry)) for key, entry in item.items())
            if "_metadata" in vars(item):
                copied._metadata = collections.OrderedDict((key, dict(entry)) for key, entry in item._metadata.items())
            return copied
        if type(item) in (list, tuple):
            return type(item)([clone(entry) for entry in item])
        return item

    return clone(value) if clonable(value, True) else copy.deepcopy(value)
"""


class DeepcopyOfTensor(SiteCodemod):
    """Deep-copy a tensor with no autograd state by cloning it, and everything else as before.

    ## What it fixes
    ``copy.deepcopy(t)`` of a tensor inside compiled code (``targets = copy.deepcopy(probs)`` to
    keep a value untouched), or of a dict (``str`` or ``int`` keys), list or tuple of tensors and
    Python scalars, nested (an EMA's state, a batch), directly in the compiled function or in a
    helper, a method or a child module it calls. A snapshot of a state dict
    (``reference = copy.deepcopy(model.state_dict())``) too, where the break is the line that
    reads it (GB0088): the deep copies bound, earlier in a function of the break's stack in the
    break's file, to a name read on that function's line of the stack (the break's line, or the
    call that passes the snapshot on to a helper) are rewritten; a snapshot taken in another
    file than the read is not.

    ## Why it breaks
    Dynamo does not trace ``Tensor.__deepcopy__`` (it copies storage, autograd state and Python
    attributes), so it stops at the call. Its deep copy of an ``OrderedDict`` (torch 2.13) comes
    back empty, with no break: a state dict copied inside compiled code is empty, and reading it
    raises ``KeyError`` there. For the tensors people copy in a forward, teacher
    targets computed under ``no_grad``, masks, running statistics, the deep copy is a clone: an
    equal tensor (values, shape, dtype, device, strides of a dense tensor, ``requires_grad``
    False) with its own storage, and the deep copy of a container of them is the same container of
    clones. The call becomes a call to a small module-level helper, ``_deepcopy``, that clones
    exactly those and calls ``copy.deepcopy`` for anything else; the tests are on values dynamo
    knows while tracing, so the compiled graph holds only the clones.

    ## Example
    ```python
    def sharpen(probs, temperature):
        targets = copy.deepcopy(probs)
        return targets ** (1.0 / temperature)
    ```
    becomes
    ```python
    def _deepcopy(value):
        ...  # clone(value) if clonable(value) else copy.deepcopy(value)


    def sharpen(probs, temperature):
        targets = _deepcopy(probs)
        return targets ** (1.0 / temperature)
    ```

    ## Fix safety
    Safe: for a plain tensor without autograd state the clone equals the deep copy in values,
    shape, dtype, device, strides and ``requires_grad``, and shares no memory with the original;
    a container is rebuilt with the same type, keys and order. A deep copy shares one copy of an
    object that appears twice (tied weights: ``{"enc": w, "dec": w}``), so a container in which a
    tensor or a list or dict appears twice, a dict with other keys, a subclass of dict, list or
    tuple (a named tuple; an ``OrderedDict`` is rebuilt as one, with a state dict's ``_metadata``
    of versions, when it has no other attribute), a view in it (a deep copy keeps views of one storage
    sharing a new one: ``{"x": x, "head": x[:2]}``) and any other object in it are deep-copied as
    before;
    for anything else the helper calls ``copy.deepcopy`` itself. A tuple is always a new tuple
    (a deep copy returns a tuple of only scalars unchanged), and two tensors made to share one
    storage without being views (``set_``) are cloned apart. Two things a deep copy carries are
    not carried: a ``storage_offset`` (a view's copy starts at offset 0 and holds only its own
    elements) and Python attributes set on the tensor object (``t.note = ...``). A tensor that
    requires grad still breaks (its deep copy is a new leaf that requires grad, which compiled code
    cannot create); then the rewrite does not verify and is not written. ``copy.deepcopy`` with a
    ``memo`` argument is left alone.
    """

    CODE = "BF401"
    FIX_TITLE = "Clone the tensor instead of deep-copying it"
    # GB0088: a deep copy of a state dict came back empty, and reading it raised (KeyError).
    GB_IDS = frozenset({"GB4198", "GB0179", "GB0088"})
    APPLICABILITY = Applicability.SAFE
    SITE = "copy.deepcopy(value) call"
    IMPORTS = ("collections", "copy", "torch")
    HELPER_SOURCE = HELPER_SOURCE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def __init__(self, context: CodemodContext, request: FixRequest) -> None:
        super().__init__(context, request)
        self.feeding: set[cst.Call] = set()  # deep copies whose result the break's line reads

    def visit_Module(self, node: cst.Module) -> None:
        # torch.compile's deep copy of an OrderedDict (a state dict) comes back empty, without a
        # break: the break shows where the copy is read. The calls bound, earlier in a function of
        # the break's stack in this file, to a name its line reads (the break's line, or the call
        # that passes the copy on) are sites too.
        here = os.path.realpath(self.request.brk.site.filename)
        functions = [cst.ensure_type(f, cst.FunctionDef) for f in m.findall(node, m.FunctionDef())]
        for frame in self.request.brk.project_stack:
            if os.path.realpath(frame.filename) != here:
                continue
            spanning = [f for f in functions if spans(self.get_metadata(PositionProvider, f), frame.lineno)]
            if not spanning:
                continue
            function = max(spanning, key=lambda f: self.get_metadata(PositionProvider, f).start.line)
            read = {
                cst.ensure_type(n, cst.Name).value
                for n in m.findall(function, m.Name())
                if self.get_metadata(PositionProvider, n).start.line == frame.lineno
            }
            for found in m.findall(function, m.Assign(targets=[m.AssignTarget(target=m.Name())], value=m.Call())):
                assign = cst.ensure_type(found, cst.Assign)
                name = cst.ensure_type(assign.targets[0].target, cst.Name).value
                if name in read and self.get_metadata(PositionProvider, assign).end.line < frame.lineno:
                    self.feeding.add(cst.ensure_type(assign.value, cst.Call))

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if any(f.name.value == HELPER for f in self.functions):
            return updated  # the helper's own deepcopy is the fallback, never rewritten
        if not self.spans_break(original) and original not in self.feeding:
            return updated
        names = {q.name for q in self.get_metadata(QualifiedNameProvider, original.func, set())}
        if DEEPCOPY not in names:
            return updated
        if len(original.args) != 1 or original.args[0].keyword is not None or original.args[0].star:
            self.refused = "copy.deepcopy is given a memo"  # the caller shares copies through it
            return updated
        self.rewritten += 1
        return updated.with_changes(func=cst.Name(HELPER))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        updated = super().leave_Module(original, updated)
        # `from copy import deepcopy` goes when the rewritten calls were its only uses.
        RemoveImportsVisitor.remove_unused_import(self.context, "copy", "deepcopy")
        return updated


class AttributeReassignedFromItself(SiteCodemod):
    """Assign an attribute its own object when a method returned it, and the method's result otherwise.

    ## What it fixes
    An attribute re-assigned from a method of its own value inside compiled code, the
    "move the buffer along" idiom of ``forward``:
    ``self.pos_encoding = self.pos_encoding.to(device=device, dtype=x.dtype)``, or ``.float()``,
    ``.contiguous()``, ``.cpu()``, ``.type(...)``, an in-place ``.add_(...)``.

    ## Why it breaks
    A buffer created with ``nn.Buffer(...)`` is marked on the tensor itself (``Module.__setattr__``
    reads the mark to keep it a buffer and its ``persistent`` flag). When the method changes
    nothing it returns that very tensor (``.to()`` to the dtype and device it already has), and
    dynamo, holding it as the result of an operation, cannot read the flag off it:
    ``Module.__setattr__`` calls ``register_buffer``, which stops at ``if persistent:``
    (GB4841, "Unsupported python_type() call"). Measured on torch 2.13: assigning a converted
    tensor traces, and so does assigning the attribute's own value read from the module
    (``self.b = self.b``), with buffers from ``register_buffer`` and plain tensor attributes too.
    The result is bound to a local, and the assignment assigns the attribute's own object when
    the local *is* that object, else the local.

    ## Example
    ```python
    self.pos_encoding = self.pos_encoding.to(device=device, dtype=x.dtype)
    pos_embeds = self.pos_encoding[position_ids, :]
    ```
    becomes
    ```python
    pos_encoding = self.pos_encoding.to(device=device, dtype=x.dtype)
    # Its own object when the call returned it (the same value): torch.compile traces that.
    self.pos_encoding = self.pos_encoding if pos_encoding is self.pos_encoding else pos_encoding
    pos_embeds = self.pos_encoding[position_ids, :]
    ```

    ## Fix safety
    Safe: the attribute is assigned on every call, as before, and always exactly the object the
    method returned: the conditional picks the attribute's own object only when it *is* that
    object. Buffer registration, persistence, registration hooks and a custom ``__setattr__`` see
    the same assignment, and the method runs once, as before. The attribute is read once or twice
    more, which only matters for a property or ``__getattr__`` with side effects. Only
    ``a.b = a.b.method(...)`` with ``a.b`` a chain of plain attribute reads (``self.table``,
    ``self.block.table``), alone on its line, is rewritten; a receiver reached through a call or a
    subscript (``self.blocks[0].table``) would be evaluated again, and is left alone.
    """

    CODE = "BF402"
    FIX_TITLE = "Assign the attribute its own object when the method returned it"
    GB_IDS = frozenset({"GB4841"})
    GB_TYPES = frozenset({"Unsupported python_type() call"})
    APPLICABILITY = Applicability.SAFE

    SITE = "attribute assignment"
    IMPORTS = ()

    METADATA_DEPENDENCIES = (PositionProvider,)

    def leave_SimpleStatementLine(
        self,
        original: cst.SimpleStatementLine,
        updated: cst.SimpleStatementLine,
    ) -> cst.BaseStatement | cst.FlattenSentinel:
        if self.rewritten or not self.functions or not self.spans_break(original):
            return updated
        pattern = m.Assign(
            targets=[m.AssignTarget(target=m.Attribute())], value=m.Call(func=m.Attribute(value=m.Attribute()))
        )
        if len(updated.body) != 1 or not m.matches(updated.body[0], pattern):
            self.refused = f"line {self.request.brk.site.lineno} is not one `obj.attr = obj.attr.method(...)`"
            return updated
        assign = updated.body[0]
        target = assign.targets[0].target
        receiver = assign.value.func.value
        if not receiver.deep_equals(target):
            self.refused = "the method is called on another value than the one assigned"
            return updated
        if not _plain_attribute_chain(target):
            self.refused = "the attribute is not a chain of plain attribute reads: it would be evaluated again"
            return updated
        local = fresh_name(target.attr.value, names_in(self.functions[-1]))
        bind = updated.with_changes(body=[cst.Assign(targets=[cst.AssignTarget(cst.Name(local))], value=assign.value)])
        own_or_result = cst.IfExp(
            test=cst.Comparison(cst.Name(local), [cst.ComparisonTarget(cst.Is(), target)]),
            body=target,
            orelse=cst.Name(local),
        )
        comment = cst.EmptyLine(
            comment=cst.Comment(
                "# Its own object when the call returned it (the same value): torch.compile traces that."
            )
        )
        reassign = cst.SimpleStatementLine(
            [assign.with_changes(value=own_or_result)],
            leading_lines=[comment],
            trailing_whitespace=updated.trailing_whitespace,
        )
        self.rewritten += 1
        return cst.FlattenSentinel([bind.with_changes(trailing_whitespace=cst.TrailingWhitespace()), reassign])


def _plain_attribute_chain(node: cst.BaseExpression) -> bool:
    """``a.b.c``: reading it again gives the same object and runs nothing but attribute reads."""
    while isinstance(node, cst.Attribute):
        node = node.value
    return isinstance(node, cst.Name)
