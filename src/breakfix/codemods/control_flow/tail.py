"""BF603: a data-dependent early return becomes ``torch.cond`` over two copies of the function's tail."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.metadata import PositionProvider

from breakfix.codemods._base import Refused, SiteCodemod, fresh_name, names_in, parameters
from breakfix.codemods.control_flow._cond import COND, cond_call
from breakfix.codemods.control_flow.branch import MAY_ALIAS
from breakfix.types import DATA_DEPENDENT_GUARD, Applicability


class DataDependentTail(SiteCodemod):
    """Turn the rest of a function after ``if flag:`` into ``torch.cond`` over two specialised copies.

    ## What it fixes
    A flag read off the data (``flag = mask.any().item()``, or passed in by the caller) that
    several ``if flag:`` blocks of one function test, where a branch changes what the code after
    it sees: a tensor of another shape, names only that branch binds, indices from ``nonzero()``.
    The longformer/LED self-attention is this: ``if is_global_attn:`` concatenates global-key
    scores onto the local ones, and later ``if is_global_attn:`` blocks use them.
    An early ``return`` under a data-dependent test of any form (``if torch.isnan(loss).any():
    return fallback``) is one too: the rest of the function is what the test decides.

    ## Why it breaks
    Dynamo traces one path through the code; a data-dependent flag is only known when the graph
    runs, so ``if flag:`` stops it (a data-dependent guard with no GB id, or GB0170). One
    ``if``/``else`` that only assigns names is BF601's; here the branch has no ``else``, or more
    than assignments, and its effect reaches the next ``if flag:``. Everything from the first
    ``if flag:`` to the ``return`` is what the flag decides, so that whole tail becomes the two
    branches of ``torch.cond``: one copy with every test of ``flag`` true, one with it false.
    ``torch.cond`` accepts branches whose intermediate shapes differ and which call ``nonzero()``;
    only their results must agree in dtype and layout.

    ## Example
    ```python
    has_global = is_global.any().item()
    scores = x @ x.T
    if has_global:
        scores = torch.cat((x @ x[is_global].T, scores), dim=-1)
    probs = scores.softmax(-1)
    if has_global:
        out = probs[:, :n] @ x[is_global] + probs[:, n:] @ x
    else:
        out = probs @ x
    return out
    ```
    becomes
    ```python
    has_global = is_global.any().item()
    scores = x @ x.T
    def _tail_true(scores):
        scores = torch.cat((x @ x[is_global].T, scores), dim=-1)
        probs = scores.softmax(-1)
        out = probs[:, :n] @ x[is_global] + probs[:, n:] @ x
        return out

    def _tail_false(scores):
        probs = scores.softmax(-1)
        out = probs @ x
        return out

    if not isinstance(has_global, (bool, torch.SymBool, torch.Tensor)):
        has_global = bool(has_global)
    return torch.cond(has_global, _tail_true, _tail_false, (scores,))
    ```

    ## Fix safety
    Safe: the flag is a name the tail never rebinds, so every test of it in the tail has the value
    the first one had; each copy is the tail with those tests decided (``if flag:`` keeps its body
    or its ``else``, ``flag and c`` becomes ``c`` or ``False``, ``not flag`` its value), and
    exactly one copy runs, as before. A flag that is neither a bool nor a tensor (``None``) is
    first turned into its truth value, which is what ``if`` tested. Names the tail rebinds that
    were bound before it are passed in as operands (in eager code ``torch.cond`` runs the chosen
    copy directly on them); the rest are read from the enclosing function. ``torch.cond`` rejects
    what would change the meaning, so such a rewrite does not compile and is not written: a tail
    that updates an input or a captured tensor in place, returns a parameter unchanged, returns
    results whose dtype or number differ between the copies, or rebinds a name that is not a
    tensor. A test that is not a plain name (``if torch.isnan(loss).any():`` over an early
    ``return``) is first named where it stands (``_taken = torch.isnan(loss).any()``), which
    evaluates it once, at the same point, as the ``if`` did. A ``not`` test (``if not
    torch.isfinite(x).all():``) names the value it negates, and the tail tests ``not`` of the
    name. A returned local bound before the ``if`` to what looks like a tensor (a call's result
    or arithmetic, not ``len(...)`` or ``.item()``), or a view or detached alias of it
    (``return loss, recon.detach()``), is returned as a copy (``recon.detach().clone()``):
    ``torch.cond``'s outputs may not alias its inputs, and no caller holds the function's own
    local. Where the local is a view of an argument after all (a module that hands back its
    input), the copy is told apart by a caller that updates the result in place: verification
    compares which outputs share memory with which arguments, on the copies its calls take; a
    copy no call takes is not checked for it. Refused before trying: the ``if`` is
    not a statement of the function's own body; the tail rebinds the flag, has no final
    ``return``, returns from inside a block, yields, awaits, defines a function, class or lambda, or declares
    ``global``/``nonlocal``; an ``elif`` tests the flag; the function's own nested functions use
    a name the tail binds, or it calls ``locals``/``vars``/``eval``/``exec``. Both copies are traced
    when the code compiles, so code that only the untaken copy runs must compile too.
    """

    CODE = "BF603"
    FIX_TITLE = "Branch the rest of the function inside the graph with torch.cond"
    REQUIRES = (COND, "torch.SymBool")
    GB_IDS = frozenset({"GB0170", "GB0035"})
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD, "Data-dependent branching"})
    APPLICABILITY = Applicability.SAFE

    SITE = "`if` in a function body"

    METADATA_DEPENDENCIES = (PositionProvider,)

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        updated = super().leave_FunctionDef(original, updated)
        if self.rewritten or not isinstance(original.body, cst.IndentedBlock):
            return updated
        statements = list(original.body.body)
        for index, statement in enumerate(statements):
            if isinstance(statement, cst.If) and self.spans_break(statement.test):
                break
        else:
            return updated
        hoisted: list[cst.BaseStatement] = []
        # `not t` asks Python for a tensor's truth: the flag is `t`, and the tail tests `not flag`.
        test, negations = statement.test, 0
        while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            test, negations = test.expression, negations + 1
        if isinstance(test, cst.Name):
            flag = test.value
        else:
            # `if torch.isnan(loss).any():` tests a value once, where it stands: name it there, and
            # the tail tests the name (which nothing else binds) with the same truth.
            flag = fresh_name("_taken", names_in(original))
            hoisted = [
                cst.SimpleStatementLine(
                    [cst.Assign([cst.AssignTarget(cst.Name(flag))], test.with_changes(lpar=[], rpar=[]))],
                    leading_lines=statement.leading_lines,
                )
            ]
            flag_test: cst.BaseExpression = cst.Name(flag)
            for _ in range(negations):
                flag_test = cst.UnaryOperation(operator=cst.Not(), expression=flag_test)
            statements[index] = statement.with_changes(test=flag_test, leading_lines=())
            original = original.with_changes(body=original.body.with_changes(body=statements))
        try:
            replacement = self._rewrite(original, index, flag)
        except Refused as why:
            self.refused = str(why)
            return updated
        self.rewritten += 1
        body = [*statements[:index], *hoisted, *replacement]
        return updated.with_changes(body=updated.body.with_changes(body=body))

    def _rewrite(self, function: cst.FunctionDef, index: int, flag: str) -> list[cst.BaseStatement]:
        before, tail = function.body.body[:index], function.body.body[index:]
        # The comments above the `if` go above the first copy, once.
        tail_module = cst.Module(body=[tail[0].with_changes(leading_lines=()), *tail[1:]])
        if m.findall(
            tail_module, m.FunctionDef() | m.ClassDef() | m.Lambda() | m.Yield() | m.Await() | m.Global() | m.Nonlocal()
        ):
            raise Refused("the tail defines a function, class or lambda, yields, awaits or declares global/nonlocal")
        tail_bound = _bound_names(tail_module)
        if flag in tail_bound:
            raise Refused(f"the tail rebinds {flag}")
        if m.findall(
            tail_module, m.If(orelse=m.If(test=m.MatchIfTrue(lambda test: bool(m.findall(test, m.Name(flag))))))
        ):
            raise Refused(f"an elif tests {flag}")
        if m.findall(function, m.Name(m.MatchIfTrue(lambda n: n in {"locals", "vars", "eval", "exec"}))):
            raise Refused("the function calls locals, vars, eval or exec")
        for scope in m.findall(cst.Module(body=list(before)), m.FunctionDef() | m.ClassDef() | m.Lambda()):
            if {n.value for n in m.findall(scope, m.Name())} & tail_bound:
                raise Refused("a nested function of the function uses a name the tail binds")
        params = {p.name.value for p in parameters(function)}
        bound_before = params | _bound_names(cst.Module(body=list(before)))
        tensors_before = _tensor_locals(list(before)) - params
        copies = [_copying_locals(_returning_copy(tail_module, flag, value), tensors_before) for value in (True, False)]
        operands = [
            name
            for name in _names_in_order(tail_module)
            if name in bound_before and any(name in _bound_names(c) and name in _read_names(c) for c in copies)
        ]
        taken = names_in(function)
        names = [fresh_name("_tail_true", taken), fresh_name("_tail_false", taken)]
        signature = cst.Parameters([cst.Param(cst.Name(p)) for p in operands])
        definitions = [
            cst.FunctionDef(name=cst.Name(name), params=signature, body=cst.IndentedBlock(body=copy.body))
            for name, copy in zip(names, copies)
        ]
        definitions[0] = definitions[0].with_changes(leading_lines=tail[0].leading_lines)
        definitions[1] = definitions[1].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        # `if flag:` tested truth; torch.cond takes a bool or a tensor as it is and refuses the rest (None).
        prelude = cst.parse_statement(
            f"if not isinstance({flag}, (bool, torch.SymBool, torch.Tensor)):\n    {flag} = bool({flag})\n"
        )
        prelude = prelude.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        call = cond_call([cst.Name(flag), cst.Name(names[0]), cst.Name(names[1])], operands)
        return [*definitions, prelude, cst.SimpleStatementLine([cst.Return(value=call)])]


class _TargetNames(cst.CSTVisitor):
    """The Name nodes a block binds (assignment, augmented assignment, for, with, del, walrus,
    import, except) and every Name node it reads."""

    def __init__(self) -> None:
        self.bound: list[cst.Name] = []

    def _targets(self, node: cst.CSTNode | None) -> None:
        if node is None:
            return
        if isinstance(node, cst.Name):
            self.bound.append(node)
        elif isinstance(node, (cst.Tuple, cst.List)):
            for element in node.elements:
                self._targets(element.value)
        elif isinstance(node, cst.StarredElement):
            self._targets(node.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._targets(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._targets(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._targets(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._targets(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        return None  # a comprehension binds in its own scope

    def visit_AsName(self, node: cst.AsName) -> None:
        self._targets(node.name)

    def visit_Del(self, node: cst.Del) -> None:
        self._targets(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._targets(node.target)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if node.asname is None:
            self.bound.append(cst.Name(cst.Module([]).code_for_node(node.name).split(".")[0]))


def _bound_names(block: cst.Module) -> set[str]:
    visitor = _TargetNames()
    block.visit(visitor)
    return {n.value for n in visitor.bound}


def _read_names(block: cst.Module) -> set[str]:
    visitor = _TargetNames()
    block.visit(visitor)
    targets = {id(n) for n in visitor.bound}
    # `x += 1` and `del x` read x too.
    extra = {node.target.value for node in m.findall(block, m.AugAssign(target=m.Name()) | m.Del(target=m.Name()))}
    return {n.value for n in m.findall(block, m.Name()) if id(n) not in targets} | extra


def _names_in_order(block: cst.Module) -> list[str]:
    return list(dict.fromkeys(n.value for n in m.findall(block, m.Name())))


def _literal(node: cst.BaseExpression) -> bool | None:
    if m.matches(node, m.Name("True")):
        return True
    if m.matches(node, m.Name("False")):
        return False
    return None


class _Specialise(cst.CSTTransformer):
    """The tail with every test of ``flag`` decided: only where its truth is all that is read."""

    def __init__(self, flag: str, value: bool) -> None:
        super().__init__()
        self.flag = flag
        self.value = value

    def _decide(self, test: cst.BaseExpression) -> cst.BaseExpression:
        if m.matches(test, m.Name(self.flag)):
            return cst.Name(str(self.value))
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            operand = self._decide(test.expression)
            known = _literal(operand)
            return cst.Name(str(not known)) if known is not None else test.with_changes(expression=operand)
        if isinstance(test, cst.BooleanOperation):
            left, right = self._decide(test.left), self._decide(test.right)
            known = _literal(left)
            if known is None:
                return test.with_changes(left=left, right=right)
            short_circuits = known is (not isinstance(test.operator, cst.And))
            return cst.Name(str(known)) if short_circuits else right
        return test

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.BaseStatement | cst.FlattenSentinel:
        test = self._decide(updated.test)
        known = _literal(test)
        if known is None:
            return updated.with_changes(test=test)
        if known:
            chosen = list(updated.body.body)
        elif isinstance(updated.orelse, cst.Else):
            chosen = list(updated.orelse.body.body)
        else:
            chosen = []
        if not chosen:
            return cst.FlattenSentinel([])
        # The `if` line's own comment goes above the statements that stay.
        header = updated.body.header.comment if known else None
        comment = [cst.EmptyLine(comment=header)] if header else []
        return cst.FlattenSentinel(
            [
                chosen[0].with_changes(leading_lines=[*updated.leading_lines, *comment, *chosen[0].leading_lines]),
                *chosen[1:],
            ]
        )

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        test = self._decide(updated.test)
        known = _literal(test)
        if known is None:
            return updated.with_changes(test=test)
        chosen = updated.body if known else updated.orelse
        # The conditional's own parentheses keep the chosen operand's precedence where it sits.
        return chosen.with_changes(lpar=updated.lpar, rpar=updated.rpar) if not chosen.lpar else chosen

    def leave_While(self, original: cst.While, updated: cst.While) -> cst.While:
        return updated.with_changes(test=self._decide(updated.test))

    def leave_Assert(self, original: cst.Assert, updated: cst.Assert) -> cst.Assert:
        return updated.with_changes(test=self._decide(updated.test))

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        return updated if updated.body else updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])


# Calls that compute a Python value, not a tensor (``n = len(xs)``, ``k = x.size(0)``).
_PYTHON_VALUED_FUNCTIONS = frozenset(
    {"len", "int", "float", "bool", "str", "tuple", "list", "dict", "set", "range", "round", "abs", "max", "min", "sum"}
)
_PYTHON_VALUED_METHODS = frozenset({"item", "tolist", "size", "dim", "numel", "keys", "values", "items", "get"})


def _tensor_valued(value: cst.BaseExpression, operand: bool = False) -> bool:
    """Whether ``value`` looks like it computes a tensor: a call that is not one of Python's
    value functions nor a method returning a Python value, or arithmetic on one or on a name
    (``x * 2``). A wrong guess costs no soundness: a copy of a Python value fails to compile and
    is not written."""
    if isinstance(value, cst.Call):
        if isinstance(value.func, cst.Name):
            return value.func.value not in _PYTHON_VALUED_FUNCTIONS
        return not (isinstance(value.func, cst.Attribute) and value.func.attr.value in _PYTHON_VALUED_METHODS)
    if isinstance(value, cst.BinaryOperation):
        return _tensor_valued(value.left, True) or _tensor_valued(value.right, True)
    if isinstance(value, cst.UnaryOperation):
        return _tensor_valued(value.expression, True)
    return operand and isinstance(value, (cst.Name, cst.Attribute))


def _tensor_locals(before: list[cst.BaseStatement]) -> set[str]:
    """The names whose last binding in ``before`` is a plain assignment of a value that looks like
    a tensor (``_tensor_valued``)."""
    last: dict[str, cst.BaseExpression | None] = {}
    for node in m.findall(cst.Module(body=before), m.Assign() | m.AugAssign() | m.For() | m.AsName()):
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            last[node.targets[0].target.value] = node.value
            continue
        if isinstance(node, cst.Assign):
            targets: list[cst.CSTNode] = [t.target for t in node.targets]  # a, b = ...; a = b = ...
        elif isinstance(node, cst.AsName):
            targets = [node.name]
        else:
            targets = [node.target]
        for name in (n for t in targets for n in m.findall(t, m.Name())):
            last[cst.ensure_type(name, cst.Name).value] = None
    return {name for name, value in last.items() if value is not None and _tensor_valued(value)}


def _copying_locals(copy: cst.Module, tensor_locals: set[str]) -> cst.Module:
    """``copy`` returning a copy of each value it returns that is a tensor local bound before the
    tail, or a view or detached alias of one (``recon.detach()``): torch.cond's outputs may not
    alias its inputs, and the local is the function's own, which no caller holds."""
    kept = tensor_locals - _bound_names(copy)

    def copied(value: cst.BaseExpression) -> cst.BaseExpression:
        receiver = value
        while m.matches(receiver, m.Call(func=m.Attribute(attr=m.Name(m.MatchIfTrue(lambda a: a in MAY_ALIAS))))):
            receiver = cst.ensure_type(cst.ensure_type(receiver, cst.Call).func, cst.Attribute).value
        if isinstance(receiver, cst.Name) and receiver.value in kept:
            return cst.Call(func=cst.Attribute(value=value, attr=cst.Name("clone")))
        return value

    body = list(copy.body)
    statement = cst.ensure_type(body[-1], cst.SimpleStatementLine)
    returned = cst.ensure_type(statement.body[-1], cst.Return)
    value = returned.value
    if isinstance(value, (cst.Tuple, cst.List)):
        value = value.with_changes(elements=[e.with_changes(value=copied(e.value)) for e in value.elements])
    elif value is not None:
        value = copied(value)
    body[-1] = statement.with_changes(body=[*statement.body[:-1], returned.with_changes(value=value)])
    return copy.with_changes(body=body)


def _returning_copy(tail: cst.Module, flag: str, value: bool) -> cst.Module:
    """The tail specialised for ``flag`` == ``value``, up to its first return, which every copy needs."""
    copy = tail.visit(_Specialise(flag, value))
    for index, statement in enumerate(copy.body):
        if not m.findall(statement, m.Return()):
            continue
        if not isinstance(statement, cst.SimpleStatementLine):
            raise Refused("the tail returns from inside a block")
        returns = [s for s in statement.body if isinstance(s, cst.Return)]
        if returns[0] is not statement.body[-1]:
            raise Refused("the tail returns from inside a block")
        if returns[0].value is None or m.matches(returns[0].value, m.Name("None")):
            break
        return copy.with_changes(body=list(copy.body[: index + 1]))
    raise Refused(f"the tail with {flag} {str(value).lower()} does not end in a return of a value")
