"""Don't compile the I/O: split the function around it (recipe 4 of the fullgraph chapter)."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor

from breakfix.codemods._base import BreakfixCodemod, FixRequest
from breakfix.codemods._orchestration import (
    Cut,
    Flow,
    FunctionSite,
    NotSplittable,
    PieceCall,
    as_orchestrator,
    blank_lines,
    compile_decorator,
    compile_options,
    compiled_function,
    compiled_piece,
    function_site,
    install,
    is_compiled_piece,
    parameter_names,
    piece_call,
    single_caller,
    temporary_name,
)
from breakfix.types import Applicability, GraphBreak

HEAD, TAIL = temporary_name(1), temporary_name(2)
ITERATOR_INPUT_BREAKS = frozenset({"GB4347", "GB0811"})  # answered by BF101 only
# A call to a torch.compiler.disable'd function: directly (GB0098), or a module's forward (GB0099).
EAGER_CALLEE_BREAKS = frozenset({"GB0098", "GB0099"})


class IoInCompiledRegion(BreakfixCodemod):
    """Run the I/O statement eagerly and compile the code before and after it as separate pieces.

    ## What it fixes
    A graph break on a call dynamo refuses to trace because it talks to the world: ``torch.save``,
    ``time.time``, ``warnings.warn``, ``print``, ``open``, logging, ``repr`` of a tensor, or a
    helper you already marked ``@torch.compiler.disable``; directly in the compiled function or in
    a helper it calls. It is also the last resort for any other break: when no specific fix
    verifies, the statement that breaks is kept eager and the rest is compiled.

    ## Why it breaks
    ``torch.compile`` compiles tensor computation; it cannot put disk or console I/O into a graph,
    so with ``fullgraph=True`` it stops there. The I/O should not be compiled at all: the function
    becomes an eager orchestrator (``@torch.compiler.disable``) that calls the compiled code before
    the I/O, runs the I/O statement as written, and calls the compiled code after it. Each piece
    receives exactly the local values it reads and returns exactly the values read after it.

    ## Example
    ```python
    def f(x):
        y = x ** 2 / 2
        torch.save(y, "foo.pt")
        z = y ** 3 / 6
        return z
    ```
    becomes
    ```python
    @torch.compiler.disable
    def f(x):
        y = _f_piece_1(x)
        torch.save(y, "foo.pt")
        return _f_piece_2(y)


    @torch.compile(fullgraph=True)
    def _f_piece_1(x):
        y = x ** 2 / 2
        return y


    @torch.compile(fullgraph=True)
    def _f_piece_2(y):
        z = y ** 3 / 6
        return z
    ```
    The statement kept eager is the one directly in the function body that contains the break: a
    call to a helper that does I/O stays eager as a whole, and so does an ``if``, ``for``,
    ``with`` or ``try`` block around the I/O (``if step % 100 == 0: torch.save(...)``). A second I/O statement is split out in
    the next round; the pieces are renumbered so the result reads as one split. Methods keep their
    place in the class; their pieces are module-level functions taking ``self``. A function that
    declares ``global`` names keeps the declarations: the pieces take a global's value as a
    parameter, the first piece returns it when it rebinds it, and the orchestrator's assignment
    rebinds the module's name, as the function did.

    ## Fix safety
    Safe: the statement runs once per call, eagerly, in the same order, on the same values; only
    the code around it is compiled. A block kept eager as a whole is not compiled at all (a loop
    with a ``print`` in it runs eagerly), which is correct but gains nothing for that block. Not
    applied after an early ``return``, in a nested function, in a function that calls
    ``super()`` or is a generator, when a global is rebound after the statement kept eager or read
    by a nested function, when nothing computational is left to compile, or when names are rebound
    in ways the name analysis cannot follow. One exception to "nothing left": a statement that
    itself calls a function already running eagerly (GB0098, GB0099; an orchestrator BF303 made
    of the project function it calls) makes the compiled function an eager caller of it; the
    verifier accepts that only when a compiled piece runs.
    Callers that compile the function themselves now call an eager function: compile its pieces,
    not the function.
    """

    CODE = "BF301"
    FIX_TITLE = "Keep the I/O eager and compile the code around it"
    GB_IDS = frozenset({"GB0007", "GB0059", "GB0098", "GB0099", "GB0291", "GB0569"})
    APPLICABILITY = Applicability.SAFE
    # Keeping any statement eager computes exactly what it did; tried after the specific fixes.
    CATCH_ALL = True

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        """Where the compiled frame is: the split happens there, even when the I/O is deeper."""
        return request.brk.project_stack[0].filename

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        if self.request.brk.gb_id in ITERATOR_INPUT_BREAKS:
            # The pieces would receive the iterator and break on it again on other inputs.
            raise self.skip("an iterator input would be passed on to the compiled pieces")
        brk = self.request.brk
        # The statement itself calls a function that runs eagerly (an orchestrator BF303 made of
        # the project function it calls, or the user's own): what is compiled is in that
        # function's pieces, so the compiled frame may become an eager caller with nothing of its
        # own to compile. The verifier still requires a compiled piece to run.
        calls_eager_function = brk.gb_id in EAGER_CALLEE_BREAKS and len(brk.project_stack) == 1
        try:
            compiled_function(tree, self.request)
            result = split_around(tree, brk.project_stack[0].lineno, require_work=not calls_eager_function)
        except NotSplittable as e:
            raise self.skip(str(e)) from e
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return result



class BreakInLibraryCall(BreakfixCodemod):
    """Run the project's call into a library eagerly, where the project makes it, and compile the code around it.

    ## What it fixes
    A graph break inside a library the project calls (an installed package, which breakfix never
    edits), reached through the project's own functions: ``forward`` calls ``self.model(...)``,
    whose ``forward`` builds a library object whose constructor branches on a tensor
    (``if not self.is_sliding[i]:``, transformers' ``HybridCache``). It is also the answer to the
    ``torch.compiler.disable`` call such a fix leaves in the project function above it (GB0098,
    GB0099), so the split climbs the project's call chain one frame per round.

    ## Why it breaks
    The library code cannot be compiled and cannot be changed; the project's call into it can be
    kept eager. Splitting the compiled function (BF301) would keep the whole call to the project
    function eager (the entire model when the compiled function is ``model(x)``); splitting the
    innermost project function keeps only the library call eager. That function becomes an eager
    orchestrator (``@torch.compiler.disable``) of compiled pieces, as in BF301, and each project
    function that calls it, up to the target, is then split around its call in the next rounds:
    the target ends as an eager caller, and every piece compiles with ``fullgraph=True``.

    ## Example
    ```python
    def forward(self, x):
        h = self.embed(x)
        cache = somelib.Cache(self.config, batch=x.shape[0])  # branches on a tensor inside
        return self.decode(h, cache)
    ```
    becomes
    ```python
    @torch.compiler.disable
    def forward(self, x):
        h = _forward_piece_1(self, x)
        cache = somelib.Cache(self.config, batch=x.shape[0])  # branches on a tensor inside
        return _forward_piece_2(self, h, cache)


    @torch.compile(fullgraph=True)
    def _forward_piece_1(self, x):
        h = self.embed(x)
        return h


    @torch.compile(fullgraph=True)
    def _forward_piece_2(self, h, cache):
        return self.decode(h, cache)
    ```

    ## Fix safety
    Safe, as BF301: the library call runs once per call, eagerly, in the same order, on the same
    values; only the code around it is compiled. Only for a break whose innermost frame is outside
    the project (or a call to a ``torch.compiler.disable``'d function) and whose innermost project
    frame is below the compiled one; refused on the same grounds as BF301 (nothing left to
    compile around the call, an early ``return``, ``super()``, a generator, names the analysis
    cannot follow). The split function is not the target: any other caller that compiles it with
    ``fullgraph=True`` now calls an eager function and must compile its pieces instead.
    """

    CODE = "BF303"
    FIX_TITLE = "Keep the library call eager where the project makes it and compile the code around it"
    GB_IDS = EAGER_CALLEE_BREAKS  # and, as a last resort, any break inside a library
    APPLICABILITY = Applicability.SAFE
    # Tried after BF301: a split of the compiled function, when it leaves work to compile, needs
    # no orchestrator below the target.
    CATCH_ALL = True

    @classmethod
    def refusal(cls, brk: GraphBreak) -> str | None:
        if brk.gb_id in ITERATOR_INPUT_BREAKS:
            return "an iterator input would be passed on to the compiled pieces"
        if len(brk.project_stack) < 2:
            return "the call is in the compiled function itself (BF301 splits it)"
        if not brk.in_library and brk.gb_id not in EAGER_CALLEE_BREAKS:
            return "the break is in project code, not in a library it calls"
        return None

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        brk = self.request.brk
        refusal = self.refusal(brk)
        if refusal is not None:
            raise self.skip(refusal)
        try:
            site = function_site(tree, brk.site.lineno)
            if is_compiled_piece(site.function):
                raise NotSplittable(f"{site.qualname} is a compiled piece (BF301 splits it)")
            result = split_around(tree, brk.site.lineno)
        except NotSplittable as e:
            raise self.skip(str(e)) from e
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return result


def split_around(module: cst.Module, line: int, require_work: bool = True) -> cst.Module:
    """Keep the top-level statement spanning ``line`` eager; compile what comes before and after.
    ``require_work``: refuse when nothing computational is left around the statement."""
    site = function_site(module, line)
    flow = Flow(module, site.function)
    index = flow.index_at(line)
    caller = single_caller(module, site.function) if is_compiled_piece(site.function) else None
    # Only a piece its orchestrator calls may be left trivial: the orchestrator compiles the others.
    # A function the user compiled must keep work to compile, or the "fix" would compile nothing.
    cut = flow.cut(index, require_work=require_work and caller is None)
    # A function the user compiled with a decorator: its pieces are compiled with the user's options.
    compiled_by = compile_decorator(module, site.function)
    options = compile_options(compiled_by)
    pieces = {}
    if cut.head:
        pieces[HEAD] = compiled_piece(HEAD, cut.head_inputs, cut.head, cut.head_outputs, options)
    if cut.tail:
        pieces[TAIL] = compiled_piece(TAIL, cut.tail_inputs, cut.tail, options=options)
    if caller is not None and _inlinable(site, flow, index, cut, caller):
        return _inline(module, site, cut, caller, pieces)
    body = [*cut.prologue, *_orchestrated(cut), cut.eager]
    if cut.tail:
        body.append(piece_call(TAIL, cut.tail_inputs, returns=cut.tail_returns, like=cut.tail[0]))
    return install(module, site, as_orchestrator(site.function, body, compiled_by), pieces)


def _orchestrated(cut: Cut) -> list[cst.BaseStatement]:
    return [piece_call(HEAD, cut.head_inputs, cut.head_outputs, like=cut.head[0])] if cut.head else []


def _inlinable(piece: FunctionSite, flow: Flow, index: int, cut: Cut, caller: PieceCall) -> bool:
    """Whether re-splitting a piece can happen in its orchestrator's body instead of nesting a new
    orchestrator: the piece is called with its own parameter names, and the names its split binds
    in the orchestrator are not read there afterwards (they then are the original function's
    variables, and inlining equals splitting the original function at both places)."""
    args = [arg.value for arg in caller.call.args]
    if not all(isinstance(a, cst.Name) for a in args) or [a.value for a in args] != parameter_names(piece.function):
        return False
    statement = caller.orchestrator.function.body.body[caller.index]
    targets = {n.value for t in m.findall(statement, m.AssignTarget()) for n in m.findall(t, m.Name())}
    if not cut.tail and targets:
        return False
    orchestrator = caller.orchestrator.function
    later = orchestrator.body.body[caller.index + 1:]
    read_later = {n.value for s in later for n in m.findall(s, m.Name())}
    introduced = (set(cut.head_outputs) | flow.may[index]) - targets
    piece_locals = set(flow.params) | set(flow.binders)
    free_in_eager = {n.value for n in m.findall(cut.eager, m.Name())} - piece_locals
    return not (introduced & read_later) and not (free_in_eager & _bound_names(orchestrator))


def _bound_names(function: cst.FunctionDef) -> set[str]:
    """Every name the function may bind (an over-approximation is safe: it only prevents inlining)."""
    binders = m.AssignTarget() | m.AnnAssign() | m.AugAssign() | m.For() | m.AsName() | m.NamedExpr() | m.CompFor()
    names = set(parameter_names(function))
    for node in m.findall(function.body, binders):
        target = node.name if isinstance(node, cst.AsName) else node.target
        names |= {n.value for n in m.findall(target, m.Name())}
    return names


def _inline(module: cst.Module, piece: FunctionSite, cut: Cut, caller: PieceCall,
            pieces: dict[str, cst.FunctionDef]) -> cst.Module:
    """Replace the orchestrator's call to the split piece by the split itself."""
    orchestrator = caller.orchestrator.function
    statements = list(orchestrator.body.body)
    calling = statements[caller.index]
    middle = [*_orchestrated(cut), cut.eager]
    comments = [line for line in middle[0].leading_lines if line.comment is not None]
    middle[0] = middle[0].with_changes(leading_lines=[*calling.leading_lines, *comments])
    if cut.tail:
        tail_call = cst.parse_expression(f"{TAIL}({', '.join(cut.tail_inputs)})")
        middle.append(calling.deep_replace(caller.call, tail_call).with_changes(leading_lines=blank_lines(cut.tail[0])))
    body = [*statements[:caller.index], *middle, *statements[caller.index + 1:]]
    rewritten = orchestrator.with_changes(body=orchestrator.body.with_changes(body=body))
    return install(module, caller.orchestrator, rewritten, pieces, removed=[piece.function.name.value])
