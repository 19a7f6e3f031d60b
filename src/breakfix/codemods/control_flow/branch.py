"""BF601: a branch on a tensor's value becomes ``torch.cond``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import libcst as cst
import libcst.matchers as m
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider, QualifiedNameProvider

from breakfix.codemods._base import (
    Refused,
    SiteCodemod,
    code_of,
    fresh_name,
    function_at,
    imported_from,
    in_place_update_of,
    names_in,
    parameters,
    readable_module,
)
from breakfix.codemods._log_calls import InGraphLogs
from breakfix.codemods.control_flow._cond import COND, cond_call
from breakfix.codemods.control_flow._numbers import (
    NUMBER_AS_TENSOR,
    NUMBER_HELPER,
    as_tensor,
    item_of,
    number_names,
    number_valued,
    read_off_data,
    reading_items,
    tensor_names,
)
from breakfix.types import DATA_DEPENDENT_GUARD, Applicability


class DataDependentBranch(SiteCodemod):
    """Turn an ``if``/``else`` (or a conditional expression) on a tensor's value into ``torch.cond``.

    ## What it fixes
    A branch on a value computed from tensors, ``if x.sum() > 0:``, ``if x.abs().max() > t:``,
    ``if torch.isnan(loss).any():``, ``if a.item() > t:``, tests joined by ``and``/``or``/``not``
    (``if huber and err.max() > 1:``) or ``y = a if (x < 0).any() else b``, in
    the compiled function, a helper, a method or a child module (the file of the innermost project
    frame), in a loop body too, whose branches only compute values: each branch is assignments to
    names, and ``if`` statements on Python state (``if self.mode == "tanh":``, its ``elif`` and
    ``else`` blocks of the same kind, an ``else`` that raises on a bad configuration), whose path
    dynamo takes while it traces the branch; the names both bind on every path are the results,
    and a name only one branch (or one path) binds is a temporary of that branch. An
    ``if``/``elif``/``else`` chain is one too: the names every block assigns are the results, and each ``elif`` is the ``else`` of the test before it. An ``if``
    without ``else`` is one too when each name it rebinds was last bound before it by an assignment that makes a new tensor (arithmetic; a function of
    ``torch``, ``torch.nn.functional``, ``torch.linalg``, ``torch.fft`` or ``torch.special``, under
    the names the module imports them as (``F.cross_entropy``), other than those that may return a
    view or their input, such as ``reshape``, ``flatten``, ``to``, ``detach``, ``dropout``; a tensor
    method that never does, such as ``sum``, ``clamp``, ``softmax``; not a call of a module or
    method of ``self``, nor a call given ``inplace=`` or ``out=``): the untaken branch passes a
    copy of it through (``return grad.clone()``). So is one that rebinds a parameter
    (``if not torch.all((p >= 0) & (p <= 1)): p = p.sigmoid()``) when no code can tell the copy
    from the caller's tensor: the function neither updates it in place after the ``if`` nor
    gives it to a call that may, and
    where it returns it as it is (alone or in a tuple), each caller up the break's stack calls
    the function directly (a child module through its object) and binds the result to a name
    (or unpacks the tuple: ``preds, target = fmt(preds, target)``) that it rebinds at once to a
    new tensor (``preds = preds > t``) or only computes on (arithmetic, its ``device``, a torch
    function, a project function that only computes on it; see Fix safety) or returns on to its
    own caller, which is asked the same, or it only computes on the call's result
    (``return f(x) * 2``). A branch of an ``if``/``else`` that binds a result to an existing
    tensor (``h = x``, ``h = x.float()``, which is ``x`` for a float32 ``x``) returns a copy of it
    under the same rule: everything after reads the result only by arithmetic, non-in-place
    methods, or returns it to such callers. A conditional
    expression whose branch reads an existing tensor (``a[t] if t >= 0 else self.final``) returns
    a copy of it (``self.final.clone()``) under the same rule: its result is bound to a name only
    read by arithmetic, non-in-place methods, or returned to such callers. A ``not`` test
    becomes the predicate with the branches swapped. The branches may compute Python numbers
    (``if v > 2.0: coef = 0.1 elif v > 0.5: coef = 0.3 else: coef = 0.5``, ``scale = 1.0 /
    math.sqrt(var) if var > eps else 1.0``, an ``if`` without ``else`` updating a number bound
    before it), and read numbers read off the data (``var = x.var().item()``). The ``if`` and
    ``else`` blocks may log too (``if not torch.isfinite(loss): warnings.warn(...); loss =
    torch.zeros_like(loss)``, or a block that only logs, ``if (s > t).any(): logger.warning(...)``):
    each log call BF503 takes (a logger method, a ``logging`` function, ``warnings.warn``) and
    each ``print`` without ``sep``/``end``/``file`` (``print(f"nan at {step}", x.shape)``) is
    made before the branch, on its condition.

    ## Why it breaks
    Dynamo traces one path through the code; which path a data-dependent condition takes is only
    known when the graph runs, so it stops there (GB0170, or a data-dependent guard with no GB id).
    ``torch.cond(pred, true_fn, false_fn, operands)`` is a branch inside the graph: both branches
    are traced, and exactly one runs, on the values of the call. The branches become two nested
    functions returning the names they assign; a name a branch reads before rebinding it is
    passed in as an operand, the rest are read from the enclosing function. ``torch.cond`` takes
    and returns tensors (and ints) only: a Python number crosses it as a 0-d tensor that holds it
    exactly (float64 for a float, int64 for an int, bool for a bool, made by a module-level
    ``_number_as_tensor``), and ``.item()`` reads it back, the same number of the same type. A
    number is crossed so when it is surely one: a numeric literal, ``True``/``False``,
    ``x.item()``, ``float``/``int``/``bool`` of anything, ``math`` functions, ``abs``/``min``/
    ``max``/``round`` and arithmetic of numbers, or a local the function binds only to such
    values. A number a branch returns crosses out; a number passed in (read before a branch
    rebinds it) crosses in, and so does a float or bool read off the data that a branch or a
    nested test reads (an unbacked symbol, which a branch cannot close over; an int it can).

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
    Safe: exactly one branch runs, as before, on the same values, and gradients flow through it as
    before. ``torch.cond`` traces its branches even in eager code and rejects what would change the
    meaning, so such a rewrite does not compile and is not written: a branch with side effects
    (print, I/O, mutating a tensor or a Python object), branches whose results differ in shape or
    dtype, a result that is an input unchanged (an alias), or results that are not tensors (a
    Python number is crossed as a tensor that holds it exactly, see above; a name one branch binds
    to a number and another to a tensor is not a number, and fails to compile). Only
    branches that are plain assignments and ``if`` statements on Python state are rewritten (an
    inner ``if`` whose test may read a tensor, a name bound to a call's result, is refused: a
    test that only looks like Python state and reads a tensor fails to compile); an augmented
    assignment (``idx += col``) updates its tensor in place, so it is taken only for a name the
    same branch bound before to a new tensor (``idx = row * n``), whose update nothing outside
    the branch can see. A ``raise`` on a bad configuration inside a branch is traced with it:
    with a configuration that reaches it, the rewrite raises ``UncapturedHigherOrderOpError`` on
    every call, where the original raised its own error only on the calls that took the branch
    (verification runs the configuration the inputs build, which does not reach it). A log call
    in a branch cannot run inside ``torch.cond`` (a branch has no side effects): it is made
    before it, through BF503's ordered log operator (a print as one ``str.format`` template of
    the line it writes, each argument as ``{!s}``), given the test's tensor (bound once,
    ``_condition = torch.isfinite(loss)``; ``torch.logical_not`` of it for the ``else`` block or
    under ``not``), and the operator makes the call only when it is true: the same records, in
    the same order with the graph's other effects, on the calls that took the block. Its values
    are then evaluated on every call, so they must only read (names, attributes, constants,
    constant subscripts such as ``x.shape[0]``, strings formatted of those, ``.item()``), and it
    must read no name the block binds before it (it would log the value from before the block);
    refused otherwise, in an ``elif`` chain, and under a test joined by ``and``/``or`` (whose
    condition is not one tensor); a block that only logs with an ``else`` that computes is
    refused too. Under a test of Python numbers (``if loss.item() > limit:``) the condition is a
    bool, which the operator does not take: that rewrite fails verification and is not written. BF503's limits hold (see its page: ``stacklevel``, a logger that is not a
    module-level name). The names both branches assign are the results, and a name only some
    branches assign must not be mentioned anywhere else in the function. An ``elif`` chain without a final ``else`` is refused
    (its last branch would pass inputs through). At a break at an ``elif``'s test, the tests
    before it ran in Python while tracing: they stay, and the chain from the break's test on
    becomes the ``else`` block of the one before it. An ``elif``'s test was never traced: one
    that looks like Python state (a flag, a mode, ``is None``; not a name bound to a call's
    result) stays a Python conditional expression, any other is a nested ``torch.cond``. An
    ``if`` without ``else`` keeps the very objects on its untaken branch, which ``torch.cond`` cannot return; the
    rewrite returns copies, which is the same only where nothing can tell a copy from the tensor. So
    it is refused when a rebound name was bound another way (a loop, ``with``, unpacking), when it
    is a parameter the function returns (alone, or as an element of a tuple the caller unpacks:
    ``preds, target = fmt(preds, target)``) to a caller that may tell the copy apart or returns it
    to the user's code (the caller's tensor, whose in-place updates would no longer reach the
    caller): each later read of the result in a caller must compute on it (arithmetic, a
    comparison other than ``is``, a method that makes a new tensor, its shape, dtype or device, a
    torch function), give it to a project function whose parameter is only so read, or return it
    on to that function's caller; another name for it, a store, an in-place update, a view, a
    library function, method or module given it refuse; the walk stops at a library frame and
    at a call it cannot see the result of, such as ``other(f(x))``. It is refused when the
    name's last value before the ``if`` may be a view or the input itself (``x.view(...)``,
    ``x.to(...)``, ``x.float()``, ``self.block(x)``: a copy would not share its memory), and when
    the function updates it in place after the ``if``, or gives it to a call that may (the
    update would reach the copy). A compound test with ``and``/``or`` branches on its left operand and on its
    right one only on the branch where Python evaluates it (``a and b``: ``b`` only where ``a``
    holds), so an operand Python skips is never run; an operand that reads no tensor (a name, an
    attribute, an ``is`` test, ``isinstance``) stays a Python conditional expression, the others
    are nested ``torch.cond`` calls. Both branches are traced when the code compiles,
    so a branch that cannot be traced for the other branch's shapes fails to compile instead of
    being skipped.
    """

    CODE = "BF601"
    FIX_TITLE = "Branch inside the graph with torch.cond"
    SITE = "if/else or conditional expression"
    REQUIRES = (COND,)
    GB_IDS = frozenset({"GB0170", "GB0035"})
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD, "Data-dependent branching"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider, ParentNodeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.logs = InGraphLogs(self, prints=True)  # the log calls of a branch, made on its condition
        self.in_test = 0
        self.elifs: set[cst.If] = set()  # Ifs in an elif position: their replacement must be an If
        self.torch_modules: dict[str, str] = {}  # names the module binds to torch modules
        self.bound_to: dict[cst.IfExp, str] = {}  # conditional expressions that are an assignment's value
        self.numbers_cross = False  # whether a rewrite passes Python numbers through torch.cond

    def visit_Module(self, node: cst.Module) -> None:
        self.torch_modules = _torch_modules(node)
        self.logs.find_loggers(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        if (
            isinstance(node.value, cst.IfExp)
            and len(node.targets) == 1
            and isinstance(node.targets[0].target, cst.Name)
        ):
            self.bound_to[node.value] = node.targets[0].target.value

    # A conditional expression inside an if's test is the if's business: rewriting it alone would
    # leave the if for a second pass (the rewrite must be idempotent).
    def visit_If_test(self, node: cst.If) -> None:
        self.in_test += 1

    def leave_If_test(self, node: cst.If) -> None:
        self.in_test -= 1

    def visit_If(self, node: cst.If) -> None:
        if isinstance(node.orelse, cst.If):
            self.elifs.add(node.orelse)

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.BaseStatement | cst.FlattenSentinel:
        # An elif is rewritten from the top of its chain: its replacement is an `else:` block.
        if self.rewritten or not self.functions or original in self.elifs:
            return updated
        at_break, updated_at_break, depth = original, updated, 0
        while not self.spans_break(at_break.test):
            if not isinstance(at_break.orelse, cst.If) or not isinstance(updated_at_break.orelse, cst.If):
                return updated
            at_break, updated_at_break, depth = at_break.orelse, updated_at_break.orelse, depth + 1
        statements = self._as_cond(at_break, updated_at_break)
        if statements is None:
            return updated
        if depth == 0:
            return cst.FlattenSentinel(statements)
        # The tests before the break ran in Python while tracing: they stay, and the chain from
        # the break's test on becomes the else block of the one before it.
        return _with_else(updated, depth, statements)

    def _as_cond(self, original: cst.If, updated: cst.If) -> list[cst.BaseStatement] | None:
        """The branch functions and the assignment of their results through ``torch.cond`` that
        replace the chain from ``updated`` on; None when refused (``self.refused`` says why)."""
        function = self.functions[-1]
        numbers = number_names(function)
        try:
            logged = self._logs_on_condition(original, updated)
            if logged is not None:
                updated, made_on = logged
                if not updated.body.body:
                    # The branch only logged: its log calls, made on its condition, are all there is.
                    self.rewritten += 1
                    return [made_on[0].with_changes(leading_lines=updated.leading_lines), *made_on[1:]]
            if updated.orelse is None and original in self.elifs:
                # What a name held before the chain is not what the blocks above bound: no copy rule holds.
                raise Refused("the elif at the break has no else: its untaken branch would pass on values")
            if updated.orelse is None:
                outputs = self._passthrough_outputs(original, updated.body.body, numbers)
                arms = [(updated.test, [*updated.body.body])]
                otherwise: list[cst.BaseStatement] = []
                reads = _read_before_bound(updated.body.body) | set(outputs)
            else:
                arms, otherwise, reads = self._chain(updated, numbers)
                surely = [_surely_bound(body) for _, body in arms] + [_surely_bound(otherwise)]
                outputs = [n for n in _assigned_in_order(arms[0][1]) if all(n in b for b in surely)]
        except Refused as why:
            self.refused = str(why)
            return None
        blocks = [body for _, body in arms] + [otherwise]
        number_outputs = {n for n in outputs if all(_binds_number(b, n, numbers) for b in blocks)}
        # Python numbers cross the branch functions' boundary as tensors (_numbers): those passed
        # in, and those read off the data that a branch or a test inside one reads.
        # The first test runs outside the branches, but for the right operand of an and/or.
        inside = [i > 0 or len(_boolean_operands(t)) > 1 for i, (t, _) in enumerate(arms)]
        mentioned = {n for b in blocks for n in _flow(b, frozenset())[0]}
        mentioned |= {n for (t, _), nested in zip(arms, inside) if nested for n in names_in(t)}
        crossing = sorted((reads & (numbers | number_outputs)) | (read_off_data(function, numbers) & mentioned))
        taken = names_in(function)
        tensors = tensor_names(crossing, taken)
        names = [fresh_name("_if_true", taken | set(tensors.values()))]
        for _ in arms[1:]:
            names.append(fresh_name("_elif_true", taken | set(names)))
        false_fn = fresh_name("_if_false", taken | set(names))
        reads |= set(crossing)
        ordered = sorted(reads, key=lambda n: outputs.index(n) if n in outputs else len(outputs))
        operands = [tensors.get(n, n) for n in ordered]

        def returned(name: str, body: list[cst.BaseStatement], passed_through: bool) -> str:
            if name in number_outputs:
                return f"{NUMBER_AS_TENSOR}({name})"
            if passed_through or self._may_alias_where_a_copy_is_the_same(name, body):
                return f"{name}.clone()"
            return name

        def branch(name: str, body: list[cst.BaseStatement], passed_through: bool) -> cst.FunctionDef:
            values = ", ".join(returned(n, body, passed_through) for n in outputs)
            # A number passed in is read back at the top of the branch, where it is used.
            used = _flow(body, frozenset())[0] | (set(outputs) if passed_through else set())
            prologue = [cst.parse_statement(f"{n} = {tensors[n]}.item()\n") for n in crossing if n in used]
            return _branch_function(name, operands, [*prologue, *body, cst.parse_statement(f"return {values}\n")])

        definitions = [
            *(branch(name, body, False) for name, (_, body) in zip(names, arms)),
            branch(false_fn, otherwise, updated.orelse is None),
        ]
        tests = [reading_items(t, tensors) if nested else t for (t, _), nested in zip(arms, inside)]
        # if A: ... elif B: ... else: ...  is  if A: ... else: (if B: ... else: ...)
        computed = _computed_names(function)
        call: cst.BaseExpression = cst.Name(false_fn)
        for name, test in reversed(list(zip(names, tests))[1:]):
            call = _branch_on(test, cst.Name(name), _as_branch(call, operands), operands, computed, at_break=False)
        call = _branch_on(tests[0], cst.Name(names[0]), _as_branch(call, operands), operands, computed)
        if len(outputs) == 1 and number_outputs:
            call = item_of(call)
        target = cst.AssignTarget(cst.parse_expression(", ".join(outputs)))
        passing = [cst.parse_statement(f"{tensors[n]} = {NUMBER_AS_TENSOR}({n})\n") for n in crossing]
        assignment = cst.SimpleStatementLine(
            [cst.Assign(targets=[target], value=call)], leading_lines=[cst.EmptyLine(indent=False)]
        )
        reading = (
            []
            if len(outputs) == 1
            else [cst.parse_statement(f"{n} = {n}.item()\n") for n in outputs if n in number_outputs]
        )
        # An elif's comments go above its else block.
        first = [] if original in self.elifs else updated.leading_lines
        made_before = logged[1] if logged is not None else []
        if made_before:
            made_before = [made_before[0].with_changes(leading_lines=first), *made_before[1:]]
            first = [cst.EmptyLine(indent=False)]
        statements = [*passing, *definitions]
        statements = [
            d.with_changes(
                leading_lines=first if i == 0 else [cst.EmptyLine(indent=False)] if i >= len(passing) else []
            )
            for i, d in enumerate(statements)
        ]
        self.rewritten += 1
        self.numbers_cross |= bool(crossing or number_outputs)
        return [*made_before, *statements, assignment, *reading]

    def _logs_on_condition(self, original: cst.If, updated: cst.If) -> tuple[cst.If, list[cst.BaseStatement]] | None:
        """The log calls of an ``if`` on a tensor, made before it on its condition: ``updated``
        without them, testing the condition bound once, and the statements that bind it and make
        the calls (``_condition = torch.isnan(loss).any()``, ``_log_in_graph(..., _condition, ...)``,
        ``torch.logical_not(_condition)`` for those of the ``else`` block); None when it has none.
        A log call is a statement of the ``if`` or ``else`` block (``logger.warning(...)``,
        ``logging.info(...)``, ``warnings.warn(...)``, as BF503 takes them, or ``print(...)``); it
        reads no name the block binds before it, and its values only read (names, attributes,
        constants, strings formatted of those, ``x.shape[0]``, ``.item()``): made before the
        branch, it is evaluated on every call."""
        blocks = [(original.body.body, updated.body.body)]
        if isinstance(updated.orelse, cst.Else):
            blocks.append((cst.ensure_type(original.orelse, cst.Else).body.body, updated.orelse.body.body))
        kept: list[list[cst.BaseStatement]] = []
        calls: list[tuple[cst.Call, cst.Call, bool, cst.BaseStatement]] = []
        for in_else, (originals, updates) in enumerate(blocks):
            kept.append([])
            for before, after in zip(originals, updates):
                original_call, updated_call = _log_statement(before), _log_statement(after)
                if original_call is None or updated_call is None or self.logs.emitter(original_call) is None:
                    kept[-1].append(after)
                    continue
                read = {n for v in updated_call.args for n in names_in(v.value)}
                bound_before = read & set(_assigned_in_order(kept[-1]))
                if bound_before:
                    raise Refused(
                        f"a log call in the branch reads {', '.join(sorted(bound_before))}, which the branch "
                        "binds before it: made before the branch, it would log the value before it"
                    )
                if not all(_only_reads(a.value) for a in updated_call.args):
                    raise Refused(
                        "a log call in the branch computes a value (a call other than .item()): made before "
                        "the branch, it would compute it on every call"
                    )
                calls.append((original_call, updated_call, bool(in_else), after))
        if not calls:
            return None
        if isinstance(updated.orelse, cst.If) or original in self.elifs:
            raise Refused("a log call in a block of an elif chain: only an if's and its else's are made on a condition")
        if len(_boolean_operands(updated.test)) > 1:
            raise Refused("a log call under a test joined by and/or: its condition is not one tensor")
        if kept[0] == [] and len(kept) > 1 and kept[1]:
            raise Refused("the if's block only logs and its else block computes")
        test, negated = updated.test, False
        while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            test, negated = test.expression, not negated
        condition = fresh_name("_condition", names_in(self.functions[-1]))
        made: list[cst.BaseStatement] = [
            cst.parse_statement(f"{condition} = {code_of(test.with_changes(lpar=[], rpar=[]))}\n")
        ]
        for original_call, updated_call, in_else, statement in calls:
            holds = cst.parse_expression(condition if in_else == negated else f"torch.logical_not({condition})")
            call = cst.ensure_type(self.logs.in_graph(original_call, updated_call, holds), cst.Call)
            made.append(cst.SimpleStatementLine([cst.Expr(call)], leading_lines=statement.leading_lines))
        orelse = updated.orelse
        if isinstance(orelse, cst.Else):
            orelse = orelse.with_changes(body=orelse.body.with_changes(body=kept[1])) if kept[1] else None
        branch = updated.with_changes(
            test=cst.parse_expression(("not " if negated else "") + condition),
            body=updated.body.with_changes(body=kept[0]),
            orelse=orelse,
        )
        return branch, made

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        if self.rewritten or self.in_test or not self.functions or not self.spans_break(original.test):
            return updated
        if any(
            m.findall(part, m.Yield() | m.Await() | m.NamedExpr() | m.IfExp())
            for part in (updated.test, updated.body, updated.orelse)
        ):
            # A nested conditional would be rewritten by a second pass: the rewrite must be idempotent.
            self.refused = "the conditional expression nests another, yields, awaits or binds a name"
            return updated
        function = self.functions[-1]
        numbers = number_names(function)
        branches = [updated.body, updated.orelse]
        numeric = all(number_valued(b, numbers) for b in branches)
        if numeric:
            # Python numbers cross torch.cond as tensors (_numbers), and are read back after it.
            branches = [as_tensor(b) for b in branches]
        elif any(_read_only(b) for b in branches):
            # A branch that reads an existing tensor would return it unchanged, which torch.cond
            # refuses (an output may not alias an input); its copy is the same where the result is
            # only ever read by arithmetic.
            binding = self.bound_to.get(original)
            if binding is None or not self._only_read_by_arithmetic(binding):
                self.refused = (
                    "a branch of the conditional expression returns an existing tensor, which torch.cond "
                    "refuses, and a copy would be told apart: the result is not bound to a name only read by arithmetic"
                )
                return updated
            branches = [cst.parse_expression(f"{code_of(b)}.clone()") if _read_only(b) else b for b in branches]
        # A number read off the data is an unbacked symbol a branch cannot close over: it is passed in.
        mentioned = {n for b in branches for n in names_in(b)}
        crossing = sorted(read_off_data(function, numbers) & mentioned)
        tensors = tensor_names(crossing, names_in(function))
        params = cst.Parameters([cst.Param(cst.Name(tensors[n])) for n in crossing])
        lambdas = [cst.Lambda(params=params, body=reading_items(b, tensors)) for b in branches]
        self.rewritten += 1
        self.numbers_cross |= numeric or bool(crossing)
        call = cond_call(
            [*_predicate_and_branches(updated.test, *lambdas)], [f"{NUMBER_AS_TENSOR}({n})" for n in crossing]
        )
        return item_of(call) if numeric else call

    def helpers(self) -> list[str]:
        return [NUMBER_HELPER] if self.numbers_cross else []

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        updated = super().leave_Module(original, updated)
        return self.logs.with_helpers(updated) if self.logs.emitters else updated

    def _may_alias_where_a_copy_is_the_same(self, name: str, body: Sequence[cst.BaseStatement]) -> bool:
        """Whether a branch may bind ``name`` to an existing tensor (``h = x``, ``h = x.float()``,
        a view), which torch.cond refuses to return (an output may not alias an input), where a
        copy of it is the same: everything after reads the result only by arithmetic
        (``_only_read_by_arithmetic``)."""
        values = [
            a.value
            for a in m.findall(cst.IndentedBlock(body=list(body)), m.Assign())
            if isinstance(a, cst.Assign) and any(m.matches(t.target, m.Name(name)) for t in a.targets)
        ]
        aliasing = [v for v in values if not _fresh(v, self.torch_modules) and not m.matches(v, m.Name("None"))]
        return bool(aliasing) and self._only_read_by_arithmetic(name)

    def _passthrough_outputs(
        self, node: cst.If, body: Sequence[cst.BaseStatement], numbers: frozenset[str]
    ) -> list[str]:
        """The names an ``if`` without ``else`` rebinds in ``body`` (its block, but for the log calls
        made before it) that the untaken branch passes through as copies; refuse where a copy is not
        the same as the tensor it copies (a Python number, ``numbers``, is immutable: it is passed
        through as it is)."""
        self._check_assignments(
            body, "the if has no else and its body does more than assign names and branch on Python state", numbers
        )
        if m.findall(cst.IndentedBlock(body=list(body)), m.Yield() | m.Await() | m.NamedExpr() | m.Lambda()):
            raise Refused("the if has no else and its body yields, awaits or defines a function")
        function = self.functions[-1]
        start, end = self._lines(node)
        outputs = []
        for name in _assigned_in_order(body):
            if len(m.findall(function, m.Name(name))) == len(
                m.findall(cst.IndentedBlock(body=list(body)), m.Name(name))
            ):
                continue  # a temporary of the branch
            if name in numbers:
                outputs.append(name)
                continue
            binding = self._binding_before(function, name, start)
            if binding is None and not self._private_parameter(function, name, end):
                raise Refused(
                    f"the if has no else and {name} is not bound by an assignment before it, or is a "
                    "parameter the function returns to a caller that may update it in place: on the "
                    "untaken branch it would hold the caller's object (or nothing), which a copy is not"
                )
            if binding is not None and not _fresh(binding, self.torch_modules):
                raise Refused(
                    f"the if has no else and {name} may be a view or alias of another tensor before it "
                    f"(`{code_of(binding)}`): a copy would not share its memory"
                )
            if any(self._lines(found)[0] > end for found in m.findall(function, in_place_update_of(cst.Name(name)))):
                raise Refused(
                    f"{name} is updated in place after the if: on the untaken branch the update would reach a copy"
                )
            later_calls = [c for c in m.findall(function, m.Call()) if self._lines(c)[0] > end]
            filename = self.request.brk.site.filename
            if not all(self._keeps_arguments(filename, self.module, self.torch_modules, c, name) for c in later_calls):
                raise Refused(
                    f"{name} is passed after the if to a function that may update it in place or keep it: "
                    "on the untaken branch it would get a copy"
                )
            outputs.append(name)
        if not outputs:
            raise Refused("the if has no else and rebinds no name that is used after it")
        return outputs

    def _check_assignments(
        self,
        block: Sequence[cst.BaseStatement],
        refusal: str,
        numbers: frozenset[str],
        fresh: frozenset[str] = frozenset(),
        nested: bool = False,
    ) -> frozenset[str]:
        """Refuse a branch that is not assignments to names, and ``if`` statements on Python state
        (``if self.use_bias:``, ``elif mode == "sum":``) whose blocks are such branches too, or end
        in a ``raise``: dynamo takes their path while it traces the branch. An augmented assignment
        (``idx += other``) updates its tensor in place, which only that branch can see when the
        branch itself bound the name before, to a new tensor (``idx = row * n``): it is a step of
        building the branch's value; on a Python number (``numbers``) it makes a new one. Returns
        the names bound to a new tensor on every path through ``block`` (``fresh``: those bound so
        before it)."""
        computed = _computed_names(self.functions[-1])
        for statement in block:
            if isinstance(statement, cst.If):
                test = next(
                    (
                        t
                        for t in _tests(statement)
                        if not all(_reads_no_tensor(o, computed) for o in _boolean_operands(t))
                    ),
                    None,
                )
                if test is not None:
                    raise Refused(
                        f"a branch holds an `if` whose test may read a tensor (`{code_of(test)}`): only "
                        "tests of Python state are taken while the branch is traced"
                    )
                after = [
                    self._check_assignments(arm, refusal, numbers, fresh, nested=True)
                    for arm in _arms(statement)
                    if not _raises(arm)
                ]
                fresh = frozenset.intersection(*after) if after else fresh
            elif nested and statement is block[-1] and _raises([statement]):
                continue
            elif m.matches(statement, _ASSIGNMENT):
                assign = cst.ensure_type(cst.ensure_type(statement, cst.SimpleStatementLine).body[0], cst.Assign)
                bound = {n.value for t in assign.targets for n in m.findall(t.target, m.Name())}
                single = m.matches(assign, m.Assign(targets=[m.AssignTarget(target=m.Name())]))
                fresh = (fresh - bound) | (bound if single and _fresh(assign.value, self.torch_modules) else set())
            elif m.matches(statement, _AUGMENTED):
                update = cst.ensure_type(cst.ensure_type(statement, cst.SimpleStatementLine).body[0], cst.AugAssign)
                name = cst.ensure_type(update.target, cst.Name).value
                if name not in fresh and name not in numbers:
                    raise Refused(
                        f"a branch updates {name} in place (`{code_of(update)}`) where it did not bind it to a "
                        "new tensor itself: the update would reach a tensor the other branch or the caller sees"
                    )
            else:
                raise Refused(refusal)
        return fresh

    def _private_parameter(self, function: cst.FunctionDef, name: str, end: int) -> bool:
        """Whether ``name`` is a parameter that no code can tell from a copy after the ``if``: the
        function binds it no other way and, where it returns it, each caller up the break's stack
        binds the result to a name it neither updates in place nor returns (where it returns it,
        the question goes to its caller; the target's caller is the user's code, which may)."""
        if name not in {p.name.value for p in parameters(function)} or self._bound_otherwise(function, name):
            return False
        returned = [
            r
            for r in m.findall(function, m.Return())
            if self._lines(r)[0] > end and _hands_on(r, name, self.torch_modules)
        ]
        if not returned:
            return True
        handed_at = _handed_at(returned, name, self.torch_modules)
        return len(handed_at) == 1 and self._callers_keep_private(function, *handed_at)

    def _callers_keep_private(self, function: cst.FunctionDef, position: int | None) -> bool:
        """Whether every caller up the break's stack of ``function``, which returns a copy where
        the original returned an existing tensor (as its value, or as the element ``position`` of
        the tuple it returns), binds it to a name (``y = f(x)``; ``y, aux = f(x)``) it neither
        updates in place, nor passes to a function that may, nor returns, or only computes on it
        (where it returns it, the question goes to its caller; the target's caller is the user's
        code, which may tell)."""
        stack = self.request.brk.project_stack
        if self.request.brk.user_stack[-len(stack) :] != stack:
            return False  # a library frame between two project frames: its code is not read
        callee = function.name.value
        for caller in reversed(stack[:-1]):
            module = self.parse_file(caller.filename)
            torch_modules = _torch_modules(module)
            positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
            outer = function_at(module, caller.lineno)
            if outer is None:
                return False
            statements = [
                s
                for s in m.findall(outer, m.SimpleStatementLine())
                if s in positions and positions[s].start.line <= caller.lineno <= positions[s].end.line
            ]
            if len(statements) != 1 or len(statements[0].body) != 1:
                return False
            statement = statements[0].body[0]
            value = statement.value if isinstance(statement, (cst.Return, cst.Assign)) else None
            # A child module's forward is called through the module object (``self.block(x)``).
            calls_callee = (
                m.Call(func=m.Name() | m.Attribute())
                if callee == "forward"
                else m.Call(func=m.Name(callee) | m.Attribute(attr=m.Name(callee)))
            )
            if value is None:
                return False
            if not m.matches(value, calls_callee):
                # The result only feeds arithmetic, which makes a new tensor of it.
                operands = [getattr(value, f, None) for f in ("left", "right", "expression")]
                operands += [c.comparator for c in getattr(value, "comparisons", ())]
                return (
                    position is None
                    and _fresh(value, torch_modules)
                    and any(m.matches(o, calls_callee) for o in operands)
                )
            callee = outer.name.value
            if isinstance(statement, cst.Return):
                continue  # the copy goes on to this function's caller, where it was
            result = _bound_at(cst.ensure_type(statement, cst.Assign), position)
            if result is None:
                return False
            if _rebound_fresh_next(outer, statements[0], result, torch_modules):
                return True
            after = positions[statements[0]].end.line
            if any(positions[n].start.line > after for n in m.findall(outer, in_place_update_of(cst.Name(result)))):
                return False
            # Every later read of the name computes on it, gives it to a call that keeps its
            # arguments, or returns it (to this function's caller).
            kept = _computed_on(outer, torch_modules)
            for node in m.findall(outer, m.Call()):
                call = cst.ensure_type(node, cst.Call)
                if positions[call].start.line > after and self._keeps_arguments(
                    caller.filename, module, torch_modules, call, result
                ):
                    kept |= {id(a.value) for a in call.args}
            kept |= {id(t.target) for t in m.findall(outer, m.AssignTarget(target=m.Name(result)))}
            handing = []
            for node in m.findall(outer, m.Return()):
                returned = {id(v) for v in _returned_values(node) if m.matches(v, m.Name(result))}
                if returned and positions[node].start.line > after:
                    handing.append(node)
                    kept |= returned
            reads = [n for n in m.findall(outer, m.Name(result)) if positions[n].start.line > after]
            if any(id(n) not in kept for n in reads):
                return False
            if not handing:
                return True
            handed_at = _handed_at(handing, result, torch_modules)
            if len(handed_at) != 1:
                return False
            (position,) = handed_at
        return False

    def _keeps_arguments(
        self, filename: str, module: cst.Module, torch_modules: Mapping[str, str], call: cst.Call, name: str
    ) -> bool:
        """Whether ``call``, where it is given the object ``name`` holds, cannot update it in place
        (nor keep it): a function of torch's tensor namespaces that makes a new tensor, ``len``,
        ``isinstance`` and the like, or a function of the project whose parameter for it is only
        computed on (``_only_computed_on``). A method, a module call or a library function may."""
        given = [i for i, a in enumerate(call.args) if m.matches(a.value, m.Name(name))]
        if not given:
            return True
        if _torch_function(call, torch_modules):
            return True  # torch.sigmoid(x), F.softmax(x): a new tensor, the argument untouched
        if m.matches(call.func, m.Name(m.MatchIfTrue(lambda n: n in _INERT_BUILTINS))):
            return True
        if not isinstance(call.func, cst.Name):
            return False
        callee = _defined_function(module, call.func.value)
        if callee is None:
            for path in imported_from(filename, module, call.func.value):
                source = readable_module(self.request, path)
                callee = _defined_function(source, call.func.value) if source is not None else None
                if callee is not None:
                    module = source
                    break
        if callee is None:
            return False
        params = parameters(callee, variadic=False)
        for index in given:
            arg = call.args[index]
            if arg.star:
                return False
            if arg.keyword is not None:
                param = arg.keyword.value
            elif index < len(params) and all(a.keyword is None for a in call.args[:index]):
                param = params[index].name.value
            else:
                return False
            if not _only_computed_on(callee, param, _torch_modules(module)):
                return False
        return True

    def _only_read_by_arithmetic(self, name: str) -> bool:
        """Whether every read of ``name`` in the function is an operand of an arithmetic or
        comparison operator, calls a method of it that is neither in-place nor may return it or a
        view of it (``x.sqrt()``, not ``x.view(-1)``), or
        returns it to callers that keep it private (``_callers_keep_private``)."""
        function = self.functions[-1]
        parents = {
            id(child): parent
            for parent in m.findall(
                function, m.BinaryOperation() | m.UnaryOperation() | m.Comparison() | m.ComparisonTarget()
            )
            for child in parent.children
        }
        methods = {
            id(c.func.value)
            for c in m.findall(function, m.Call(func=m.Attribute(value=m.Name(name))))
            if isinstance(c.func, cst.Attribute)
            and not c.func.attr.value.endswith("_")
            and c.func.attr.value not in MAY_ALIAS
        }
        returned: set[int] = set()
        returns = []  # the returns that hand ``name`` back as it is
        for r in m.findall(function, m.Return()):
            handed = {id(v) for v in _returned_values(r) if m.matches(v, m.Name(name))}
            if handed:
                returned |= handed
                returns.append(r)
        bound = {id(t.target) for t in m.findall(function, m.AssignTarget(target=m.Name(name)))}
        reads = [n for n in m.findall(function, m.Name(name)) if id(n) not in bound]
        if not reads or not all(id(n) in parents or id(n) in methods or id(n) in returned for n in reads):
            return False
        if not returns:
            return True
        handed_at = _handed_at(returns, name, self.torch_modules)
        return len(handed_at) == 1 and self._callers_keep_private(function, *handed_at)

    def _bound_otherwise(self, function: cst.FunctionDef, name: str) -> bool:
        """Whether ``function`` binds ``name`` other than by a plain assignment or as a parameter."""
        others = (
            m.For(target=m.MatchIfTrue(lambda t: bool(m.findall(t, m.Name(name)))))
            | m.AsName(name=m.Name(name))
            | m.NamedExpr(target=m.Name(name))
            | m.AugAssign(target=m.Name(name))
            | m.AssignTarget(target=m.Tuple() | m.List())
        )
        return any(m.findall(a, m.Name(name)) for a in m.findall(function, others))

    def _lines(self, node: cst.CSTNode) -> tuple[int, int]:
        position = self.get_metadata(PositionProvider, node)
        return position.start.line, position.end.line

    def _binding_before(self, function: cst.FunctionDef, name: str, line: int) -> cst.BaseExpression | None:
        """The value of the last binding of ``name`` before ``line`` in ``function``, when that is a
        plain assignment and the function binds ``name`` no other way (parameters, loops, ``with``)."""
        if name in {p.name.value for p in parameters(function)} or self._bound_otherwise(function, name):
            return None
        assignments = [
            a for a in m.findall(function, m.Assign(targets=[m.AssignTarget(m.Name(name))])) if self._lines(a)[1] < line
        ]
        return max(assignments, key=lambda a: self._lines(a)[0]).value if assignments else None

    def _chain(
        self, node: cst.If, numbers: frozenset[str]
    ) -> tuple[list[tuple[cst.BaseExpression, list]], list, set[str]]:
        """The tests and blocks of an ``if``/``elif`` chain, its ``else`` block, and the names a block
        reads before it binds them (they become operands); refuse what is not blocks of plain
        assignments that all bind the results."""
        arms: list[tuple[cst.BaseExpression, list]] = []
        blocks: list[cst.BaseSuite] = []
        link: cst.If | cst.Else | None = node
        while isinstance(link, cst.If):
            arms.append((link.test, [*link.body.body]))
            blocks.append(link.body)
            link = link.orelse
        if link is None:
            raise Refused(
                "the elif chain has no else: the last branch would return its inputs unchanged, which "
                "torch.cond refuses (an output may not alias an input) and a copy would not be the same object"
            )
        blocks.append(link.body)
        reads: set[str] = set()
        assigned: list[set[str]] = []
        surely: list[frozenset[str]] = []
        for block in blocks:
            statements = list(block.body)
            self._check_assignments(
                statements, "a branch does more than assign names and branch on Python state", numbers
            )
            if any(m.findall(s, m.Yield() | m.Await() | m.NamedExpr() | m.Lambda()) for s in statements):
                raise Refused("a branch yields, awaits, or defines a function")
            reads |= _read_before_bound(statements)
            assigned.append(set(_assigned_in_order(statements)))
            surely.append(_surely_bound(statements))
        if not frozenset.intersection(*surely):
            raise Refused("the branches assign no name in common")
        # A name only some branches (or paths through them) assign stays inside their functions:
        # only when nothing else in the enclosing function mentions it (a temporary of those branches).
        function = self.functions[-1]
        for name in set.union(*assigned) - frozenset.intersection(*surely):
            inside = sum(len(m.findall(b, m.Name(name))) for b, a in zip(blocks, assigned) if name in a)
            if len(m.findall(function, m.Name(name))) != inside:
                raise Refused(f"{name} is assigned on some branches only and used outside them")
        return arms, [*link.body.body], reads


_ASSIGNMENT = m.SimpleStatementLine(
    body=[
        m.Assign(targets=[m.AssignTarget(target=m.Name() | m.Tuple(elements=[m.AtLeastN(m.Element(m.Name()), n=1)]))])
    ]
)
_AUGMENTED = m.SimpleStatementLine(body=[m.AugAssign(target=m.Name())])

# Tensor methods and torch functions that always return a new tensor (never a view, never their
# input unchanged); a module call (``self.drop(x)`` may be an identity) is not one of them.
_FRESH = frozenset(
    {
        "abs",
        "add",
        "sub",
        "mul",
        "div",
        "true_divide",
        "pow",
        "neg",
        "exp",
        "expm1",
        "log",
        "log1p",
        "log2",
        "sqrt",
        "rsqrt",
        "reciprocal",
        "sign",
        "sin",
        "cos",
        "tanh",
        "sigmoid",
        "relu",
        "gelu",
        "silu",
        "softplus",
        "softmax",
        "log_softmax",
        "logsumexp",
        "sum",
        "mean",
        "std",
        "var",
        "prod",
        "norm",
        "amax",
        "amin",
        "cumsum",
        "cumprod",
        "clamp",
        "clip",
        "where",
        "masked_fill",
        "nan_to_num",
        "round",
        "floor",
        "ceil",
        "matmul",
        "mm",
        "bmm",
        "einsum",
        "cat",
        "stack",
        "clone",
        "zeros_like",
        "ones_like",
        "full_like",
        "empty_like",
        "zeros",
        "ones",
        "full",
        "lerp",
        "addcmul",
        "addcdiv",
        "maximum",
        "minimum",
        "fmod",
        "remainder",
        "normalize",
        "linear",
        "layer_norm",
        "square",
        "erf",
        "logaddexp",
        "outer",
        "cross",
        "diff",
    }
)


def _fresh(value: cst.BaseExpression, torch_modules: Mapping[str, str]) -> bool:
    """Whether ``value`` always makes a new tensor (arithmetic; a tensor method of ``_FRESH``; a
    function of ``torch``, ``torch.nn.functional``, ``torch.linalg``, ``torch.fft`` or
    ``torch.special``, reached through the names in ``torch_modules``, that is not one of
    ``MAY_ALIAS``): then a copy of it is indistinguishable from it."""
    if isinstance(value, (cst.BinaryOperation, cst.UnaryOperation, cst.Comparison)):
        return True
    if isinstance(value, cst.Call) and isinstance(value.func, (cst.Attribute, cst.Name)):
        receiver = value.func.value if isinstance(value.func, cst.Attribute) else None
        if m.matches(receiver, m.Name("self")) or m.matches(receiver, m.Attribute(value=m.Name("self"))):
            return False  # a module or method of the object: it may hand back its input
        name = value.func.attr.value if isinstance(value.func, cst.Attribute) else value.func.value
        chain = value.func
        while isinstance(chain, cst.Attribute):
            chain = chain.value
        # A plain dotted name (``F.softmax``), not a method of a value (``torch.ones(3).sum``).
        dotted = code_of(value.func).split(".") if isinstance(chain, cst.Name) else []
        if len(dotted) > 1 and dotted[0] in torch_modules:
            namespace = ".".join([torch_modules[dotted[0]], *dotted[1:-1]])
            # ``F.relu(x, inplace=True)`` and ``torch.add(a, b, out=a)`` hand back a tensor they were given.
            writes = any(
                arg.keyword is not None
                and arg.keyword.value in ("inplace", "out")
                and not m.matches(arg.value, m.Name("False") | m.Name("None"))
                for arg in value.args
            )
            return namespace in _TENSOR_NAMESPACES and name not in MAY_ALIAS and not name.endswith("_") and not writes
        return name in _FRESH
    return False


def _torch_modules(module: cst.Module) -> dict[str, str]:
    """The names a module binds to torch modules, and the module each is (``F``:
    ``torch.nn.functional``)."""
    bound: dict[str, str] = {}
    for node in m.findall(module, m.Import() | m.ImportFrom()):
        if isinstance(node, cst.Import):
            for alias in node.names:
                dotted = code_of(alias.name)
                if dotted == "torch" or dotted.startswith("torch."):
                    if alias.asname:
                        bound[code_of(alias.asname.name)] = dotted
                    else:
                        bound["torch"] = "torch"
        elif isinstance(node, cst.ImportFrom) and node.module is not None and not node.relative:
            package = code_of(node.module)
            if (package == "torch" or package.startswith("torch.")) and isinstance(node.names, Sequence):
                for alias in node.names:  # from torch import nn; from torch.nn import functional as F
                    name = code_of(alias.name)
                    bound[code_of(alias.asname.name) if alias.asname else name] = f"{package}.{name}"
    return bound


# The torch modules whose functions compute tensors from tensors (not torch.utils, torch.nn's classes).
_TENSOR_NAMESPACES = frozenset({"torch", "torch.nn.functional", "torch.linalg", "torch.fft", "torch.special"})

# torch functions that may return a view of an argument or the argument itself: their result is not
# always a new tensor (``F.dropout`` in eval mode and ``x.to(x.dtype)`` hand back their input).
MAY_ALIAS = frozenset(
    {
        "view",
        "view_as",
        "reshape",
        "reshape_as",
        "flatten",
        "unflatten",
        "ravel",
        "squeeze",
        "unsqueeze",
        "transpose",
        "permute",
        "movedim",
        "moveaxis",
        "swapaxes",
        "swapdims",
        "t",
        "adjoint",
        "narrow",
        "select",
        "expand",
        "expand_as",
        "broadcast_to",
        "broadcast_tensors",
        "split",
        "split_with_sizes",
        "chunk",
        "unbind",
        "tensor_split",
        "hsplit",
        "vsplit",
        "dsplit",
        "diagonal",
        "as_strided",
        "detach",
        "contiguous",
        "to",
        "type",
        "type_as",
        "real",
        "imag",
        "view_as_real",
        "view_as_complex",
        "conj",
        "resolve_conj",
        "resolve_neg",
        "alias",
        "unfold",
        "atleast_1d",
        "atleast_2d",
        "atleast_3d",
        "meshgrid",
        "as_tensor",
        "asarray",
        "from_numpy",
        "dropout",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "feature_alpha_dropout",
        "identity",
        "Identity",
        "cast",
        "align_to",
        "rename",
    }
)


def _read_only(branch: cst.BaseExpression) -> bool:
    """Whether a branch only reads an existing object (a name or an attribute)."""
    return isinstance(branch, (cst.Name, cst.Attribute)) and not m.matches(branch, m.Name("None"))


def _rebound_fresh_next(
    function: cst.FunctionDef, statement: cst.SimpleStatementLine, name: str, torch_modules: Mapping[str, str]
) -> bool:
    """Whether the statement after ``statement`` in its block rebinds ``name`` to a new tensor
    (``preds = preds > threshold``): then nothing holds the value ``statement`` bound any more."""
    for block in m.findall(function, m.IndentedBlock()):
        body = list(block.body)
        if any(s is statement for s in body):
            index = next(i for i, s in enumerate(body) if s is statement)
            following = body[index + 1] if index + 1 < len(body) else None
            rebinding = m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name(name))])])
            return (
                isinstance(following, cst.SimpleStatementLine)
                and m.matches(following, rebinding)
                and _fresh(cst.ensure_type(following.body[0], cst.Assign).value, torch_modules)
            )
    return False


def _hands_on(statement: cst.CSTNode, name: str, torch_modules: Mapping[str, str]) -> bool:
    """Whether a ``return`` may hand the caller the object ``name`` holds (or a view of it): a
    value it returns (or an element of the tuple or list it returns) mentions ``name`` and is not
    a new tensor (``return y * 2, aux`` hands on a new one)."""
    if not isinstance(statement, cst.Return) or statement.value is None:
        return bool(m.findall(statement, m.Name(name)))
    return any(bool(m.findall(v, m.Name(name))) and not _fresh(v, torch_modules) for v in _returned_values(statement))


def _returned_values(statement: cst.CSTNode) -> list[cst.BaseExpression]:
    """What a ``return`` hands back: its value, or each element of the tuple or list it returns."""
    value = cst.ensure_type(statement, cst.Return).value
    if value is None:
        return []
    return [e.value for e in value.elements] if isinstance(value, (cst.Tuple, cst.List)) else [value]


def _handed_at(returns: Sequence[cst.CSTNode], name: str, torch_modules: Mapping[str, str]) -> set[int | None]:
    """Where ``returns`` hand the caller the object ``name`` holds: None for the returned value
    itself, ``k`` for the ``k``-th element of a returned tuple (two places, or a starred element,
    give more than one answer)."""
    handed: set[int | None] = set()
    for statement in returns:
        value = cst.ensure_type(statement, cst.Return).value
        if isinstance(value, (cst.Tuple, cst.List)):
            for k, element in enumerate(value.elements):
                if m.findall(element.value, m.Name(name)) and not _fresh(element.value, torch_modules):
                    handed |= {k, -1} if isinstance(element, cst.StarredElement) else {k}
        elif value is not None:
            handed.add(None)
    return handed


def _bound_at(assign: cst.Assign, position: int | None) -> str | None:
    """The name ``assign`` binds the returned value to (``position`` None), or its element
    ``position`` to (``y, aux = f(x)``); None when it binds it any other way."""
    if len(assign.targets) != 1:
        return None
    target = assign.targets[0].target
    if position is None:
        return target.value if isinstance(target, cst.Name) else None
    if not isinstance(target, (cst.Tuple, cst.List)) or position >= len(target.elements):
        return None
    elements = target.elements
    if not all(isinstance(e, cst.Element) and isinstance(e.value, cst.Name) for e in elements):
        return None
    return cst.ensure_type(elements[position].value, cst.Name).value


# Builtins that read an object and keep no reference to it.
_INERT_BUILTINS = frozenset({"len", "isinstance", "float", "int", "bool", "str", "repr", "print", "hasattr", "type"})


def _defined_function(module: cst.Module, name: str) -> cst.FunctionDef | None:
    """The module-level function ``name`` of ``module``."""
    return next(
        (s for s in module.body if isinstance(s, cst.FunctionDef) and s.name.value == name),
        None,
    )


def _computed_on(function: cst.FunctionDef, torch_modules: Mapping[str, str]) -> set[int]:
    """The expressions of ``function`` that are only computed on (by id): the operands of
    arithmetic and comparisons (not ``is``, which tells a copy apart), the receivers of methods
    that neither update in place nor may return a view, the object or its memory (``x.sum()``,
    not ``x.add_(1)``, ``x.view(-1)`` or ``x.numpy()``) and of attributes that describe a tensor
    (``x.device``), and the arguments of torch functions that make a new tensor
    (``torch.sigmoid(x)``)."""
    computed_on: set[int] = set()
    for parent in m.findall(function, m.BinaryOperation() | m.UnaryOperation() | m.Comparison()):
        if isinstance(parent, cst.Comparison):
            if any(isinstance(c.operator, (cst.Is, cst.IsNot)) for c in parent.comparisons):
                continue
            computed_on |= {id(parent.left), *(id(c.comparator) for c in parent.comparisons)}
        else:
            computed_on |= {id(child) for child in parent.children}
    for node in m.findall(function, m.Call()):
        call = cst.ensure_type(node, cst.Call)
        if isinstance(call.func, cst.Attribute):
            method = call.func.attr.value
            if not method.endswith("_") and method not in MAY_ALIAS and method not in _REACHES_MEMORY:
                computed_on.add(id(call.func.value))
        if _torch_function(call, torch_modules):
            computed_on |= {id(a.value) for a in call.args if not a.star}
    for node in m.findall(function, m.Attribute(attr=m.Name(m.MatchIfTrue(lambda a: a in _METADATA)))):
        computed_on.add(id(cst.ensure_type(node, cst.Attribute).value))
    return computed_on


def _torch_function(call: cst.Call, torch_modules: Mapping[str, str]) -> bool:
    """Whether ``call`` is a function of torch's tensor namespaces, reached through a name the
    module binds to one (``torch.sigmoid(x)``, ``F.softmax(x)``), that makes a new tensor."""
    root = call.func
    while isinstance(root, cst.Attribute):
        root = root.value
    return (
        isinstance(call.func, cst.Attribute)
        and isinstance(root, cst.Name)
        and root.value in torch_modules
        and _fresh(call, torch_modules)
    )


# Tensor methods that hand out its memory or act on the object itself.
_REACHES_MEMORY = frozenset({"numpy", "storage", "untyped_storage", "data_ptr", "register_hook", "retain_grad"})


# Tensor attributes that describe it and share none of its memory (``x.data``, ``x.T`` do).
_METADATA = frozenset({"shape", "dtype", "device", "ndim", "layout", "is_cuda", "requires_grad", "is_sparse"})


def _only_computed_on(function: cst.FunctionDef, name: str, torch_modules: Mapping[str, str]) -> bool:
    """Whether ``function`` only computes new values from its parameter ``name`` (``_computed_on``)."""
    bound = {id(t.target) for t in m.findall(function, m.AssignTarget(target=m.Name(name)))}
    declared = {id(p.name) for p in parameters(function)}
    computed_on = _computed_on(function, torch_modules)
    return all(id(n) in computed_on | bound | declared for n in m.findall(function, m.Name(name)))


def _predicate_and_branches(
    test: cst.BaseExpression, if_true: cst.BaseExpression, if_false: cst.BaseExpression
) -> tuple[cst.BaseExpression, cst.BaseExpression, cst.BaseExpression]:
    """torch.cond's predicate and branches for ``test``: ``not x`` asks Python for the truth of a
    tensor while tracing, so its operand becomes the predicate and the branches swap."""
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test, if_true, if_false = test.expression, if_false, if_true
    if test.lpar and isinstance(test, (cst.BinaryOperation, cst.BooleanOperation, cst.Comparison)):
        test = test.with_changes(lpar=[], rpar=[])
    return test, if_true, if_false


def _with_else(node: cst.If, depth: int, statements: list[cst.BaseStatement]) -> cst.If:
    """``node`` with the elif ``depth`` links down its chain replaced by an else block of ``statements``."""
    link = cst.ensure_type(node.orelse, cst.If)
    if depth > 1:
        return node.with_changes(orelse=_with_else(link, depth - 1, statements))
    return node.with_changes(orelse=cst.Else(body=cst.IndentedBlock(body=statements), leading_lines=link.leading_lines))


def _branch_on(
    test: cst.BaseExpression,
    if_true: cst.BaseExpression,
    if_false: cst.BaseExpression,
    operands: list[str],
    computed: frozenset[str],
    at_break: bool = True,
) -> cst.BaseExpression:
    """The value of ``if_true(*operands) if test else if_false(*operands)`` as the graph can take
    it. An ``and``/``or`` test branches on its left operand, and on its right one only on the
    branch where Python evaluates it (``a and b``: ``b`` only where ``a`` holds), so an operand
    Python would skip is never run; an operand that reads no tensor (``_reads_no_tensor``) is a
    Python conditional expression, any other a ``torch.cond``. At the break, when every operand
    looks static, each is taken as a tensor's (the break says one is); an elif's test was never
    traced, so it is judged by its looks alone (``at_break=False``)."""
    tests = _boolean_operands(test)
    python_tests = not at_break or (len(tests) > 1 and not all(_reads_no_tensor(t, computed) for t in tests))

    def build(
        test: cst.BaseExpression, if_true: cst.BaseExpression, if_false: cst.BaseExpression
    ) -> cst.BaseExpression:
        test, if_true, if_false = _predicate_and_branches(test, if_true, if_false)
        if isinstance(test, cst.BooleanOperation):
            params = cst.Parameters([cst.Param(cst.Name(o)) for o in operands])
            right = cst.Lambda(params=params, body=build(test.right, if_true, if_false))
            if isinstance(test.operator, cst.And):
                return build(test.left, right, if_false)
            return build(test.left, if_true, right)
        if python_tests and _reads_no_tensor(test, computed):
            return cst.IfExp(test=test, body=_called(if_true, operands), orelse=_called(if_false, operands))
        return cond_call([test, if_true, if_false], operands)

    return build(test, if_true, if_false)


def _boolean_operands(test: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The operands of the ``and``/``or``/``not`` tree of ``test`` (``test`` itself when it is none)."""
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test = test.expression
    if isinstance(test, cst.BooleanOperation):
        return [*_boolean_operands(test.left), *_boolean_operands(test.right)]
    return [test]


# Calls that read Python state only (a tensor's len is its static first size).
_PYTHON_STATE_CALLS = m.Name("isinstance") | m.Name("hasattr") | m.Name("callable") | m.Name("len")


def _reads_no_tensor(test: cst.BaseExpression, computed: frozenset[str]) -> bool:
    """Whether a test looks like it only reads Python state: names (but those in ``computed``) and
    attributes (a flag, a mode), constants, arithmetic and comparisons of those, an ``is`` test,
    ``isinstance``, ``hasattr``, ``callable`` and ``len``. A guess either way costs no soundness:
    a tensor's test taken for Python state breaks the graph again, and Python state taken for a
    tensor's makes torch.cond warn; either rewrite fails verification and is not written."""
    if isinstance(test, cst.Name):
        return test.value not in computed
    if isinstance(test, (cst.Attribute, cst.BaseNumber, cst.BaseString)):
        return True
    if isinstance(test, cst.UnaryOperation):
        return _reads_no_tensor(test.expression, computed)
    if isinstance(test, cst.BinaryOperation):
        return _reads_no_tensor(test.left, computed) and _reads_no_tensor(test.right, computed)
    if isinstance(test, cst.Comparison):
        if all(isinstance(c.operator, (cst.Is, cst.IsNot)) for c in test.comparisons):
            return True
        return _reads_no_tensor(test.left, computed) and all(
            _reads_no_tensor(c.comparator, computed) for c in test.comparisons
        )
    return m.matches(test, m.Call(func=_PYTHON_STATE_CALLS))


def _computed_names(function: cst.FunctionDef) -> frozenset[str]:
    """The names ``function`` binds to a value a call computes (``peak = err.abs().max()``,
    ``n = int(x.sum())``, not ``n = len(x)``): a test of one may read a tensor."""
    return frozenset(
        cst.ensure_type(t.target, cst.Name).value
        for a in m.findall(function, m.Assign())
        if m.findall(cst.ensure_type(a, cst.Assign).value, m.Call(func=~_PYTHON_STATE_CALLS))
        for t in cst.ensure_type(a, cst.Assign).targets
        if isinstance(t.target, cst.Name)
    )


def _as_branch(value: cst.BaseExpression, operands: list[str]) -> cst.BaseExpression:
    """A branch function computing ``value``: a function's name as it is, else a lambda over the operands."""
    if isinstance(value, cst.Name):
        return value
    return cst.Lambda(params=cst.Parameters([cst.Param(cst.Name(o)) for o in operands]), body=value)


def _called(branch: cst.BaseExpression, operands: list[str]) -> cst.BaseExpression:
    """``branch(*operands)``; a lambda over the operands is its body (its parameters are the names)."""
    if isinstance(branch, cst.Lambda):
        return branch.body
    return cst.Call(func=branch, args=[cst.Arg(cst.Name(o)) for o in operands])


def _targets(statement: cst.Assign | cst.AugAssign) -> list[cst.BaseExpression]:
    """What an assignment binds (an augmented one reads its target too)."""
    return [statement.target] if isinstance(statement, cst.AugAssign) else [t.target for t in statement.targets]


def _tests(node: cst.If) -> list[cst.BaseExpression]:
    """The tests of an ``if`` and of its ``elif`` chain."""
    tests = [node.test]
    while isinstance(node.orelse, cst.If):
        node = node.orelse
        tests.append(node.test)
    return tests


def _arms(node: cst.If) -> list[list[cst.BaseStatement]]:
    """The blocks an ``if``/``elif``/``else`` chain may run; an empty one where it has no ``else``."""
    arms: list[list[cst.BaseStatement]] = []
    link: cst.If | cst.Else | None = node
    while isinstance(link, cst.If):
        arms.append(list(link.body.body))
        link = link.orelse
    arms.append(list(link.body.body) if link is not None else [])
    return arms


def _raises(block: Sequence[cst.BaseStatement]) -> bool:
    return bool(block) and m.matches(block[-1], m.SimpleStatementLine(body=[m.Raise()]))


def _assigned_in_order(block: Sequence[cst.BaseStatement]) -> list[str]:
    """The names a branch of assignments (and ``if`` statements on Python state) may bind, in order."""
    names: list[str] = []
    for statement in block:
        if isinstance(statement, cst.If):
            bound = [n for arm in _arms(statement) for n in _assigned_in_order(arm)]
        elif _raises([statement]):
            bound = []
        else:
            bound = [n.value for t in _targets(statement.body[0]) for n in m.findall(t, m.Name())]
        names += [n for n in dict.fromkeys(bound) if n not in names]
    return names


def _flow(block: Sequence[cst.BaseStatement], bound: frozenset[str]) -> tuple[set[str], frozenset[str]]:
    """The names ``block`` reads where they may not be bound yet (``bound``: the names bound before
    it), and the names bound on every path through it that does not raise."""
    read: set[str] = set()
    for statement in block:
        if isinstance(statement, cst.If):
            read |= {n.value for t in _tests(statement) for n in m.findall(t, m.Name())} - bound
            after = []
            for arm in _arms(statement):
                arm_read, arm_bound = _flow(arm, bound)
                read |= arm_read
                if not _raises(arm):
                    after.append(arm_bound)
            bound = frozenset.intersection(*after) if after else bound
            continue
        small = statement.body[0]
        if isinstance(small, cst.Raise):
            read |= {n.value for n in m.findall(small, m.Name())} - bound
            continue
        reads = [small.value, small.target] if isinstance(small, cst.AugAssign) else [small.value]
        read |= {n.value for r in reads for n in m.findall(r, m.Name())} - bound
        bound |= {n.value for t in _targets(small) for n in m.findall(t, m.Name())}
    return read, bound


def _surely_bound(block: Sequence[cst.BaseStatement]) -> frozenset[str]:
    """The names every path through ``block`` that does not raise binds."""
    return _flow(block, frozenset())[1]


def _read_before_bound(block: Sequence[cst.BaseStatement]) -> set[str]:
    """The names ``block`` binds that it may read before binding them: the branch's operands."""
    return _flow(block, frozenset())[0] & set(_assigned_in_order(block))


def _branch_function(name: str, params: list[str], statements) -> cst.FunctionDef:
    return cst.FunctionDef(
        name=cst.Name(name),
        params=cst.Parameters([cst.Param(cst.Name(p)) for p in params]),
        body=cst.IndentedBlock(body=list(statements)),
    )


def _log_statement(statement: cst.BaseStatement) -> cst.Call | None:
    """The call of a statement that is a call alone (``logger.warning(...)``), else None."""
    if m.matches(statement, m.SimpleStatementLine(body=[m.Expr(value=m.Call())])):
        expression = cst.ensure_type(cst.ensure_type(statement, cst.SimpleStatementLine).body[0], cst.Expr)
        return cst.ensure_type(expression.value, cst.Call)
    return None


def _only_reads(value: cst.BaseExpression) -> bool:
    """Whether evaluating ``value`` only reads: names, attributes, constants, constant subscripts
    (``x.shape[0]``), strings (f-strings, ``%`` and ``.format``) of such, tuples of such and
    ``x.item()``."""
    if isinstance(value, (cst.Name, cst.BaseNumber, cst.SimpleString)):
        return True
    if isinstance(value, cst.Attribute):
        return _only_reads(value.value)
    if isinstance(value, cst.Subscript):
        constant = m.SubscriptElement(slice=m.Index(value=m.Integer() | m.SimpleString()))
        return _only_reads(value.value) and m.matches(value, m.Subscript(slice=[constant]))
    if isinstance(value, cst.ConcatenatedString):
        return _only_reads(value.left) and _only_reads(value.right)
    if isinstance(value, cst.FormattedString):
        return all(_only_reads(p.expression) for p in value.parts if isinstance(p, cst.FormattedStringExpression))
    if isinstance(value, (cst.Tuple, cst.List)):
        return all(_only_reads(e.value) for e in value.elements)
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Modulo):
        return isinstance(value.left, cst.SimpleString) and _only_reads(value.right)
    if m.matches(value, m.Call(func=m.Attribute(attr=m.Name("item")), args=[])):
        return _only_reads(cst.ensure_type(value.func, cst.Attribute).value)
    if m.matches(value, m.Call(func=m.Attribute(value=m.SimpleString(), attr=m.Name("format")))):
        return all(not a.keyword and not a.star and _only_reads(a.value) for a in value.args)
    return False


def _binds_number(block: Sequence[cst.BaseStatement], name: str, numbers: frozenset[str]) -> bool:
    """Whether ``name`` holds a Python number after ``block``: each assignment of it there gives
    one (``numbers``, and the block's own temporaries that hold one, being known numbers), and it
    holds one before the block where a path through it leaves the name alone."""
    local = cst.FunctionDef(name=cst.Name("_block"), params=cst.Parameters(), body=cst.IndentedBlock(list(block)))
    known = numbers | number_names(local, numbers)
    values = [
        a.value
        for a in m.findall(local, m.Assign() | m.AugAssign())
        if isinstance(a, (cst.Assign, cst.AugAssign)) and any(m.matches(t, m.Name(name)) for t in _targets(a))
    ]
    if not all(number_valued(v, known) for v in values):
        return False
    return name in _surely_bound(block) or name in numbers
