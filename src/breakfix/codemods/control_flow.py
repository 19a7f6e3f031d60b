"""Data-dependent control flow: a branch on a tensor's value becomes ``torch.cond``."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import PositionProvider

from breakfix.codemods._base import BreakfixCodemod, fresh_name, names_in
from breakfix.types import Applicability

COND = "torch.cond"


class DataDependentBranch(BreakfixCodemod):
    """Turn an ``if``/``else`` (or a conditional expression) on a tensor's value into ``torch.cond``.

    ## What it fixes
    A branch on a value computed from tensors, ``if x.sum() > 0:`` or
    ``y = a if (x < 0).any() else b``, whose two branches only compute values: each branch is
    assignments to names; the names both assign are the results, and a name only one branch
    assigns is a temporary of that branch.

    ## Why it breaks
    Dynamo traces one path through the code; which path a data-dependent condition takes is only
    known when the graph runs, so it stops there (GB0170, or a data-dependent guard with no GB id).
    ``torch.cond(pred, true_fn, false_fn, operands)`` is a branch inside the graph: both branches
    are traced, and exactly one runs, on the values of the call. The branches become two nested
    functions returning the names they assign; a name a branch reads before rebinding it is
    passed in as an operand, the rest are read from the enclosing function.

    ## Example
    ```python
    s = x.sum()
    if s > 0:
        y = x * w
    else:
        y = x - w
    ```
    becomes
    ```python
    s = x.sum()

    def _if_true():
        y = x * w
        return y

    def _if_false():
        y = x - w
        return y

    y = torch.cond(s > 0, _if_true, _if_false)
    ```

    ## Fix safety
    Safe: exactly one branch runs, as before, on the same values, and gradients flow through it
    as before. ``torch.cond`` traces its branches even in eager code and rejects what would change
    the meaning, so such a rewrite does not compile and is not written: a branch with side effects (print, I/O, mutating a tensor or a
    Python object), branches whose results differ in shape or dtype, a result that is an input
    unchanged (an alias), or results that are not tensors. Only branches that are plain
    assignments are rewritten (no ``+=``, which updates a tensor in place), with an ``else``; the
    names both branches assign are the results, and a name only one branch assigns must not be
    mentioned anywhere else in the function; ``elif`` chains are left alone, and so is an ``if`` without ``else``:
    its other branch keeps the very objects, which ``torch.cond`` cannot return, and a copy is
    not the same object (an in-place update of it would no longer reach the caller's tensor). Both branches are traced when the
    code compiles, so a branch that cannot be traced for the other branch's shapes fails to
    compile instead of being skipped.
    """

    CODE = "BF601"
    FIX_TITLE = "Branch inside the graph with torch.cond"
    GB_IDS = frozenset({"GB0170", "GB0035"})
    GB_TYPES = frozenset({"Data-dependent guard", "Data-dependent branching"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.refused = ""  # why the branch at the site was not rewritten
        self.functions: list[cst.FunctionDef] = []
        self.in_test = 0
        self.elifs: set[cst.If] = set()  # Ifs in an elif position: their replacement must be an If

    def _at_site(self, node: cst.CSTNode) -> bool:
        position = self.get_metadata(PositionProvider, node)
        return position.start.line <= self.request.brk.site.lineno <= position.end.line

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.append(node)

    # A conditional expression inside an if's test is the if's business: rewriting it alone would
    # leave the if for a second pass (the rewrite must be idempotent).
    def visit_If_test(self, node: cst.If) -> None:
        self.in_test += 1

    def leave_If_test(self, node: cst.If) -> None:
        self.in_test -= 1

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.functions.pop()
        return updated

    def visit_If(self, node: cst.If) -> None:
        if isinstance(node.orelse, cst.If):
            self.elifs.add(node.orelse)

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.BaseStatement | cst.FlattenSentinel:
        if self.rewritten or not self.functions or not self._at_site(original.test):
            return updated
        if original in self.elifs:  # its replacement would have to be an `else:` block, not statements
            self.refused = "the condition is an elif's"
            return updated
        try:
            true_names, false_names = self._branches(updated)
        except _Refused as why:
            self.refused = str(why)
            return updated
        false_assigned = _assigned_in_order(updated.orelse.body.body)
        outputs = [name for name in _assigned_in_order(updated.body.body) if name in false_assigned]
        taken = names_in(self.functions[-1])
        true_fn, false_fn = fresh_name("_if_true", taken), fresh_name("_if_false", taken)
        operands = sorted(true_names | false_names, key=lambda n: outputs.index(n) if n in outputs else len(outputs))
        definitions = [
            _branch_function(true_fn, operands, updated.body.body, outputs),
            _branch_function(false_fn, operands, updated.orelse.body.body, outputs),
        ]
        arguments = [updated.test, cst.Name(true_fn), cst.Name(false_fn)]
        call = _cond_call(arguments, operands)
        target = cst.AssignTarget(cst.parse_expression(", ".join(outputs)))
        assignment = cst.SimpleStatementLine([cst.Assign(targets=[target], value=call)], leading_lines=[cst.EmptyLine(indent=False)])
        definitions[0] = definitions[0].with_changes(leading_lines=updated.leading_lines)
        definitions[1] = definitions[1].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        self.rewritten += 1
        return cst.FlattenSentinel([*definitions, assignment])

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        if self.rewritten or self.in_test or not self.functions or not self._at_site(original.test):
            return updated
        if any(m.findall(part, m.Yield() | m.Await() | m.NamedExpr() | m.IfExp())
               for part in (updated.test, updated.body, updated.orelse)):
            # A nested conditional would be rewritten by a second pass: the rewrite must be idempotent.
            self.refused = "the conditional expression nests another, yields, awaits or binds a name"
            return updated
        self.rewritten += 1
        lambdas = [cst.Lambda(params=cst.Parameters(), body=branch) for branch in (updated.body, updated.orelse)]
        return _cond_call([updated.test, *lambdas], [])

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.rewritten:
            raise self.skip(self.refused or f"no if/else or conditional expression at line {self.request.brk.site.lineno}")
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return updated

    def _branches(self, node: cst.If) -> tuple[set[str], set[str]]:
        """Names each branch reads before it binds them (they become operands); refuse what is not
        two blocks of plain assignments binding the same names."""
        if node.orelse is None:
            raise _Refused("the if has no else: the other branch would return its inputs unchanged, which "
                           "torch.cond refuses (an output may not alias an input) and a copy would not be the same object")
        if isinstance(node.orelse, cst.If):
            raise _Refused("an elif chain")
        reads = []
        for block in (node.body.body, node.orelse.body.body):
            for statement in block:
                if not m.matches(statement, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(
                        target=m.Name() | m.Tuple(elements=[m.AtLeastN(m.Element(m.Name()), n=1)]))])])):
                    raise _Refused("a branch does more than assign names")
                if m.findall(statement, m.Yield() | m.Await() | m.NamedExpr() | m.Lambda()):
                    raise _Refused("a branch yields, awaits, or defines a function")
            reads.append(_read_before_bound(block))
        true_names, false_names = (set(_assigned_in_order(b)) for b in (node.body.body, node.orelse.body.body))
        if not true_names & false_names:
            raise _Refused("the branches assign no name in common")
        # A name only one branch assigns stays inside that branch's function: only when nothing
        # else in the enclosing function mentions it (a temporary of the branch).
        function = self.functions[-1]
        for name, block in [*((n, node.body) for n in true_names - false_names),
                            *((n, node.orelse.body) for n in false_names - true_names)]:
            if len(m.findall(function, m.Name(name))) != len(m.findall(block, m.Name(name))):
                raise _Refused(f"{name} is assigned on one branch only and used outside it")
        return reads[0], reads[1]


class _Refused(Exception):
    pass


def _assigned_in_order(block) -> list[str]:
    names: list[str] = []
    for statement in block:
        for target in statement.body[0].targets:
            for name in m.findall(target.target, m.Name()):
                if name.value not in names:
                    names.append(name.value)
    return names


def _read_before_bound(block) -> set[str]:
    bound: set[str] = set()
    read: set[str] = set()
    for statement in block:
        assign = statement.body[0]
        read |= {n.value for n in m.findall(assign.value, m.Name())} - bound
        for target in assign.targets:
            bound |= {n.value for n in m.findall(target.target, m.Name())}
    return read & bound


def _branch_function(name: str, params: list[str], body, outputs: list[str]) -> cst.FunctionDef:
    statements = [*body, cst.parse_statement(f"return {', '.join(outputs)}\n")]
    return cst.FunctionDef(name=cst.Name(name), params=cst.Parameters([cst.Param(cst.Name(p)) for p in params]),
                           body=cst.IndentedBlock(body=statements))


def _cond_call(arguments: list[cst.BaseExpression], operands: list[str]) -> cst.Call:
    args = [cst.Arg(a) for a in arguments]
    if operands:
        args.append(cst.Arg(cst.parse_expression(f"({', '.join(operands)},)")))
    return cst.Call(func=cst.parse_expression(COND), args=args)
