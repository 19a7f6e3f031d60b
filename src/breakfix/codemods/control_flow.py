"""Data-dependent control flow: a branch on a tensor's value becomes ``torch.cond``."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import PositionProvider

from breakfix.codemods._base import BreakfixCodemod
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
        taken = _names_in(self.functions[-1])
        true_fn, false_fn = _fresh("_if_true", taken), _fresh("_if_false", taken)
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


def _names_in(function: cst.FunctionDef) -> set[str]:
    return {n.value for n in m.findall(function, m.Name())}


def _fresh(base: str, taken: set[str]) -> str:
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    return name


def _branch_function(name: str, params: list[str], body, outputs: list[str]) -> cst.FunctionDef:
    statements = [*body, cst.parse_statement(f"return {', '.join(outputs)}\n")]
    return cst.FunctionDef(name=cst.Name(name), params=cst.Parameters([cst.Param(cst.Name(p)) for p in params]),
                           body=cst.IndentedBlock(body=statements))


def _cond_call(arguments: list[cst.BaseExpression], operands: list[str]) -> cst.Call:
    args = [cst.Arg(a) for a in arguments]
    if operands:
        args.append(cst.Arg(cst.parse_expression(f"({', '.join(operands)},)")))
    return cst.Call(func=cst.parse_expression(COND), args=args)


class DataDependentTail(BreakfixCodemod):
    """Turn the rest of a function after ``if flag:`` into ``torch.cond`` over two specialised copies.

    ## What it fixes
    A flag read off the data (``flag = mask.any().item()``, or passed in by the caller) that
    several ``if flag:`` blocks of one function test, where a branch changes what the code after
    it sees: a tensor of another shape, names only that branch binds, indices from ``nonzero()``.
    The longformer/LED self-attention is this: ``if is_global_attn:`` concatenates global-key
    scores onto the local ones, and later ``if is_global_attn:`` blocks use them.

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
    that updates an input or a captured tensor in place, returns an input unchanged, returns
    results whose dtype or number differ between the copies, or rebinds a name that is not a
    tensor. Refused before trying: the ``if`` is not a statement of the function's own body, or
    its test is not a plain name; the tail rebinds the flag, has no final ``return``, returns from
    inside a block, yields, awaits, defines a function, class or lambda, or declares
    ``global``/``nonlocal``; an ``elif`` tests the flag; the function's own nested functions use
    a name the tail binds, or it calls ``locals``/``vars``/``eval``/``exec``. Both copies are traced
    when the code compiles, so code that only the untaken copy runs must compile too.
    """

    CODE = "BF603"
    FIX_TITLE = "Branch the rest of the function inside the graph with torch.cond"
    GB_IDS = frozenset({"GB0170", "GB0035"})
    GB_TYPES = frozenset({"Data-dependent guard", "Data-dependent branching"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.refused = ""

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        if self.rewritten or not isinstance(original.body, cst.IndentedBlock):
            return updated
        statements = list(original.body.body)
        for index, statement in enumerate(statements):
            if isinstance(statement, cst.If) and self._at_site(statement.test):
                break
        else:
            return updated
        if not isinstance(statement.test, cst.Name):
            self.refused = "the if's test is not a plain name"
            return updated
        try:
            replacement = self._rewrite(original, index, statement.test.value)
        except _Refused as why:
            self.refused = str(why)
            return updated
        self.rewritten += 1
        return updated.with_changes(body=updated.body.with_changes(body=[*statements[:index], *replacement]))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.rewritten:
            raise self.skip(self.refused or f"no `if NAME:` in a function body at line {self.request.brk.site.lineno}")
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return updated

    def _at_site(self, node: cst.CSTNode) -> bool:
        position = self.get_metadata(PositionProvider, node)
        return position.start.line <= self.request.brk.site.lineno <= position.end.line

    def _rewrite(self, function: cst.FunctionDef, index: int, flag: str) -> list[cst.BaseStatement]:
        before, tail = function.body.body[:index], function.body.body[index:]
        # The comments above the `if` go above the first copy, once.
        tail_module = cst.Module(body=[tail[0].with_changes(leading_lines=()), *tail[1:]])
        if m.findall(tail_module, m.FunctionDef() | m.ClassDef() | m.Lambda() | m.Yield() | m.Await()
                     | m.Global() | m.Nonlocal()):
            raise _Refused("the tail defines a function, class or lambda, yields, awaits or declares global/nonlocal")
        tail_bound = _bound_names(tail_module)
        if flag in tail_bound:
            raise _Refused(f"the tail rebinds {flag}")
        if m.findall(tail_module, m.If(orelse=m.If(test=m.MatchIfTrue(
                lambda test: bool(m.findall(test, m.Name(flag))))))):
            raise _Refused(f"an elif tests {flag}")
        if m.findall(function, m.Name(m.MatchIfTrue(lambda n: n in {"locals", "vars", "eval", "exec"}))):
            raise _Refused("the function calls locals, vars, eval or exec")
        for scope in m.findall(cst.Module(body=list(before)), m.FunctionDef() | m.ClassDef() | m.Lambda()):
            if {n.value for n in m.findall(scope, m.Name())} & tail_bound:
                raise _Refused("a nested function of the function uses a name the tail binds")
        copies = [_returning_copy(tail_module, flag, value) for value in (True, False)]
        bound_before = {p.name.value for p in _all_params(function.params)} | _bound_names(cst.Module(body=list(before)))
        operands = [name for name in _names_in_order(tail_module)
                    if name in bound_before and any(name in _bound_names(c) and name in _read_names(c) for c in copies)]
        taken = _names_in(function)
        names = [_fresh("_tail_true", taken), _fresh("_tail_false", taken)]
        params = cst.Parameters([cst.Param(cst.Name(p)) for p in operands])
        definitions = [cst.FunctionDef(name=cst.Name(name), params=params, body=cst.IndentedBlock(body=copy.body))
                       for name, copy in zip(names, copies)]
        definitions[0] = definitions[0].with_changes(leading_lines=tail[0].leading_lines)
        definitions[1] = definitions[1].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        # `if flag:` tested truth; torch.cond takes a bool or a tensor as it is and refuses the rest (None).
        prelude = cst.parse_statement(f"if not isinstance({flag}, (bool, torch.SymBool, torch.Tensor)):\n"
                                      f"    {flag} = bool({flag})\n")
        prelude = prelude.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        call = _cond_call([cst.Name(flag), cst.Name(names[0]), cst.Name(names[1])], operands)
        return [*definitions, prelude, cst.SimpleStatementLine([cst.Return(value=call)])]


def _all_params(params: cst.Parameters) -> list[cst.Param]:
    star = [params.star_arg] if isinstance(params.star_arg, cst.Param) else []
    return [*params.posonly_params, *params.params, *star, *params.kwonly_params,
            *([params.star_kwarg] if params.star_kwarg else [])]


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
            operand = self._decide(test.operand)
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
        return cst.FlattenSentinel([chosen[0].with_changes(leading_lines=[*updated.leading_lines, *comment,
                                                                           *chosen[0].leading_lines]), *chosen[1:]])

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


def _returning_copy(tail: cst.Module, flag: str, value: bool) -> cst.Module:
    """The tail specialised for ``flag`` == ``value``, up to its first return, which every copy needs."""
    copy = tail.visit(_Specialise(flag, value))
    for index, statement in enumerate(copy.body):
        if not m.findall(statement, m.Return()):
            continue
        returns = [s for s in getattr(statement, "body", ()) if isinstance(s, cst.Return)]
        if not isinstance(statement, cst.SimpleStatementLine) or returns[0] is not statement.body[-1]:
            raise _Refused("the tail returns from inside a block")
        if returns[0].value is None or m.matches(returns[0].value, m.Name("None")):
            break
        return copy.with_changes(body=list(copy.body[:index + 1]))
    raise _Refused(f"the tail with {flag} {str(value).lower()} does not end in a return of a value")
