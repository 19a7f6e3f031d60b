"""Don't compile the I/O: split the function around it (recipe 4 of the fullgraph chapter)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from breakfix.codemods._base import (
    UNREADABLE,
    BreakfixCodemod,
    FixRequest,
    fresh_name,
    names_in,
    parameter_names,
    read_module,
)
from breakfix.codemods._flow import Cut, Flow, has_return, is_trivial
from breakfix.codemods._orchestration import (
    FunctionSite,
    NotSplittable,
    PieceCall,
    as_orchestrator,
    blank_lines,
    compile_decorator,
    compiled_function,
    compiled_piece,
    function_site,
    install,
    is_compiled_piece,
    is_orchestrator,
    piece_call,
    piece_options,
    single_caller,
    temporary_name,
)
from breakfix.gb_ids import gb_id_of
from breakfix.piece_options import PieceOptions
from breakfix.types import Applicability, Frame, GraphBreak

HEAD, TAIL, BODY = temporary_name(1), temporary_name(2), temporary_name(3)
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
    ``with`` or ``try`` block around the I/O (``if step % 100 == 0: torch.save(...)``); a loop
    whose iteration breaks is first tried by BF302, which compiles its body. A second I/O statement is split out in
    the next round; the pieces are renumbered so the result reads as one split. Methods keep their
    place in the class; their pieces are module-level functions taking ``self``. A function that
    declares ``global`` names keeps the declarations: the pieces take a global's value as a
    parameter, the first piece returns it when it rebinds it, and the orchestrator's assignment
    rebinds the module's name, as the function did. A ``return`` before the statement, inside an
    ``if``, a loop or another block (``if not normalization: return x``), stays in the first
    piece, which then returns whether it returned and what (``return True, (x), None``, and
    ``False, None`` with its outputs when it did not): the orchestrator returns that value when
    it did, so the statement and what follows run exactly when they did.

    ## Fix safety
    Safe: the statement runs once per call, eagerly, in the same order, on the same values; only
    the code around it is compiled. A block kept eager as a whole is not compiled at all (a loop
    with a ``print`` in it runs eagerly), which is correct but gains nothing for that block. Not
    applied after an unconditional ``return`` (the statement never runs), in a nested function,
    in a function that calls ``super()`` or is a generator, when a global is rebound after the
    statement kept eager or read by a nested function, when nothing computational is left to compile, or when names are rebound
    in ways the name analysis cannot follow. One exception to "nothing left": a statement that
    itself calls a function already running eagerly (GB0098, GB0099; an orchestrator BF303 made
    of the project function it calls) makes the compiled function an eager caller of it; the
    verifier accepts that only when a compiled piece runs.
    Callers that compile the function themselves now call an eager function: compile its pieces,
    not the function.
    """

    CODE = "BF301"
    FIX_TITLE = "Keep the breaking statement eager and compile the code around it"
    REQUIRES = ("torch.compile", "torch.compiler.disable")
    GB_IDS = frozenset({"GB0007", "GB0059", "GB0098", "GB0099", "GB0291", "GB0569"})
    APPLICABILITY = Applicability.SAFE
    # Keeping any statement eager computes exactly what it did; tried after the specific fixes.
    CATCH_ALL = True

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        """Where the compiled frame is: the split happens there, even when the I/O is deeper."""
        return request.brk.project_stack[0].filename

    # BF302 compiles the body of a loop whose iteration breaks; BF301 keeps the loop eager whole.
    COMPILE_LOOP_BODY = False

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        if gb_id_of(self.request.brk) in ITERATOR_INPUT_BREAKS:
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
            compiled_frame = brk.project_stack[0]
            # Lines of the compiled frame where other breaks were located: a loop body holding one
            # would break again as a piece (BF301 keeps such a loop eager as a whole).
            breaking = {
                b.project_stack[0].lineno
                for b in self.request.other_breaks
                if b.project_stack[0].filename == compiled_frame.filename
            }
            result = split_around(
                tree,
                compiled_frame.lineno,
                self.COMPILE_LOOP_BODY,
                breaking,
                require_work=not calls_eager_function,
                defaults=self.request.piece_options,
            )
        except NotSplittable as e:
            raise self.skip(str(e)) from e
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return result


class OpaqueLoopIteration(IoInCompiledRegion):
    """Iterate eagerly over what dynamo cannot iterate, and compile the loop body.

    ## What it fixes
    A ``for`` loop in compiled code whose iteration itself breaks: a ``tqdm`` progress bar, a
    data loader, a generator or any iterable dynamo refuses to trace, directly in the compiled
    function (``for x in tqdm(batches):``). Also a statement of the loop's body that breaks and
    is not fixed otherwise (a log line of ``json.dumps(x.tolist())``, a file write, a call of
    library code): the loop and that statement run eagerly, and the rest of each pass is compiled.

    ## Why it breaks
    Dynamo has to trace the iterator's ``__next__`` to unroll the loop; when that code is skipped
    or untraceable, the graph breaks at the ``for``. The iteration (and the progress bar it draws)
    should run eagerly, but the work done per item is tensor code that compiles. BF301 keeps the
    whole loop eager; this fix keeps only the iteration eager: the function becomes an eager
    orchestrator, the ``for`` stays in it, and its body becomes a compiled piece called once per
    pass. The piece takes the loop variables and the values carried from the previous pass (and
    those bound before the loop that it reads), and returns the values the next pass or the code
    after the loop reads. The code before and after the loop is compiled as in BF301. When a
    statement of the body broke, the body's piece is split around it in the same rewrite: it
    becomes an eager orchestrator (``@torch.compiler.disable``) of the compiled statements before
    and after the one kept eager, which runs between them on every pass.

    ## Example
    ```python
    def evaluate(model, batches):
        total = torch.zeros(())
        for x in tqdm(batches):
            total = total + model(x).sum()
        return total
    ```
    becomes
    ```python
    @torch.compiler.disable
    def evaluate(model, batches):
        total = _evaluate_piece_1()
        for x in tqdm(batches):
            total = _evaluate_piece_2(model, total, x)
        return total


    @torch.compile(fullgraph=True)
    def _evaluate_piece_1():
        total = torch.zeros(())
        return total


    @torch.compile(fullgraph=True)
    def _evaluate_piece_2(model, total, x):
        total = total + model(x).sum()
        return total
    ```

    ## Fix safety
    Safe: the iterator is created and advanced eagerly, exactly as before, and each pass runs the
    same statements on the same values; only where they run changes. Not applied when the body
    returns, breaks or continues (the piece could not leave the loop), defines a function or
    class, reads or rebinds a ``global``, holds another break, or reads a value that is not bound
    before the loop or earlier in the same pass, when the statement that broke is repeated word
    for word elsewhere in the file, or when the loop is async or has an ``else``; then BF301
    keeps the whole loop eager. A value that changes on every pass and is not a tensor (a Python
    ``int`` counter) is a compile-time constant of the piece: it recompiles once, then is
    treated as dynamic; one that changes its structure on every pass (a list it appends to) makes
    the piece recompile on every pass, and verification refuses the rewrite.
    """

    CODE = "BF302"
    FIX_TITLE = "Iterate eagerly and compile the loop body"
    REQUIRES = ("torch.compile", "torch.compiler.disable")
    COMPILE_LOOP_BODY = True


class BreakInLibraryCall(BreakfixCodemod):
    """Run the breaking call eagerly in the innermost project function, and compile the code around it.

    ## What it fixes
    A graph break inside a library the project calls (an installed package, which breakfix never
    edits), reached through the project's own functions: ``forward`` calls ``self.model(...)``,
    whose ``forward`` builds a library object whose constructor branches on a tensor
    (``if not self.is_sliding[i]:``, transformers' ``HybridCache``). Likewise a statement that
    breaks in a project function below the compiled one (a model's ``forward`` that writes a
    checkpoint), when no specific fix verifies: BF301 would keep the whole model call eager and
    compile almost nothing (refused below ``--min-coverage``), so the split goes where the break
    is. It is also the answer to the
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
    values; only the code around it is compiled. Only for a break whose innermost project frame is
    below the compiled one: a call into a library, a call to a ``torch.compiler.disable``'d
    function, or, when no specific fix verifies and BF301's split of the compiled function would
    compile too little (``--min-coverage``), any statement that breaks in a project function the
    target calls (a model's ``forward`` writing a checkpoint); refused on the same grounds as BF301
    (nothing left to compile around the call, an unconditional ``return`` before it, ``super()``,
    a generator, names the analysis cannot follow). The split function is not the target: any other caller that compiles it with
    ``fullgraph=True`` now calls an eager function and must compile its pieces instead.
    """

    CODE = "BF303"
    FIX_TITLE = "Keep the breaking call eager in the innermost project function and compile the code around it"
    REQUIRES = ("torch.compile", "torch.compiler.disable")
    GB_IDS = EAGER_CALLEE_BREAKS  # and, as a last resort, any break inside a library
    APPLICABILITY = Applicability.SAFE
    # Tried after BF301: a split of the compiled function, when it leaves work to compile, needs
    # no orchestrator below the target.
    CATCH_ALL = True

    @classmethod
    def refusal(cls, brk: GraphBreak) -> str | None:
        if gb_id_of(brk) in ITERATOR_INPUT_BREAKS:
            return "an iterator input would be passed on to the compiled pieces"
        if len(brk.project_stack) < 2:
            return "the call is in the compiled function itself (BF301 splits it)"
        return None

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        return cls._frame_to_split(request).filename

    @classmethod
    def _frame_to_split(cls, request: FixRequest) -> Frame:
        """The innermost project frame below the compiled one with work to compile around its call
        (a helper whose only statement is the print is kept eager whole, by its caller's split);
        the innermost frame when none has, so that the transform says why."""
        frames = request.brk.project_stack[1:]
        for frame in reversed(frames):
            try:
                module = read_module(request, frame.filename)
                if is_orchestrator(function_site(module, frame.lineno).function):
                    return frame  # split already: the code around the break is compiled
                _split(module, frame.lineno, request.piece_options)
            except (*UNREADABLE, NotSplittable):
                continue
            return frame
        return frames[-1] if frames else request.brk.site

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        refusal = self.refusal(self.request.brk)
        if refusal is not None:
            raise self.skip(refusal)
        try:
            result = _split(tree, self._frame_to_split(self.request).lineno, self.request.piece_options)
        except NotSplittable as e:
            raise self.skip(str(e)) from e
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return result


def _split(tree: cst.Module, line: int, defaults: PieceOptions) -> cst.Module:
    """BF303's split of the function holding ``line``, which must not be a compiled piece."""
    site = function_site(tree, line)
    if is_compiled_piece(site.function):
        raise NotSplittable(f"{site.qualname} is a compiled piece (BF301 splits it)")
    if is_orchestrator(site.function):
        raise NotSplittable(f"{site.qualname} already runs eagerly")
    return split_around(tree, line, defaults=defaults)


def split_around(
    module: cst.Module,
    line: int,
    compile_loop_body: bool = False,
    breaking_lines: frozenset[int] | set[int] = frozenset(),
    require_work: bool = True,
    defaults: PieceOptions = (),
    body_breaks: bool = False,
) -> cst.Module:
    """Keep the top-level statement spanning ``line`` eager; compile what comes before and after.
    ``compile_loop_body``: the statement is a ``for`` whose header holds ``line`` (its iteration
    broke), and its body, which must hold none of ``breaking_lines``, is compiled as a piece
    called once per pass; when its body holds ``line``, that piece is split around the statement
    there too. ``require_work``: refuse when nothing computational is left around the
    statement. ``body_breaks``: make the piece of a body that holds ``line`` (split next)."""
    site = function_site(module, line)
    flow = Flow(module, site.function)
    index = flow.index_at(line)
    caller = single_caller(module, site.function) if is_compiled_piece(site.function) else None
    loop_body = None
    if compile_loop_body:
        in_body = flow.body_loop(index, line)
        loop = in_body if body_breaks else flow.header_loop(index, line)
        if loop is None and in_body is not None:
            return _split_in_loop_body(module, in_body, line, breaking_lines, defaults)
        if loop is None:
            raise NotSplittable(f"line {line} is not in a for loop")
        loop_body = flow.loop_body(index, breaking_lines)
    # Only a piece its orchestrator calls may be left trivial: the orchestrator compiles the others.
    # A function the user compiled must keep work to compile, or the "fix" would compile nothing.
    cut = flow.cut(index, require_work=require_work and caller is None and loop_body is None)
    # A function the user compiled: its pieces are compiled with the user's options.
    compiled_by = compile_decorator(module, site.function)
    options = piece_options(module, site.function, compiled_by, defaults)
    pieces = {}
    if loop_body is not None:
        pieces[BODY] = compiled_piece(BODY, loop_body.inputs, loop_body.statements, loop_body.outputs, options)
        call = piece_call(BODY, loop_body.inputs, loop_body.outputs, like=loop_body.statements[0])
        cut = dataclasses.replace(cut, eager=loop.with_changes(body=loop.body.with_changes(body=[call])))
    head_outputs = cut.head_outputs
    early_return: list[cst.BaseStatement] = []
    if cut.head_returns:
        # Piece 1 says whether it returned and what: (True, value, None...) or (False, None, outputs...).
        taken = names_in(site.function)
        returned = fresh_name("_returned", taken)
        value = fresh_name("_returned_value", taken | {returned})
        head_outputs = [returned, value, *cut.head_outputs]
        early_return = [cst.parse_statement(f"if {returned}:\n    return {value}\n")]
        flagged = _FlaggedReturns(len(cut.head_outputs))
        head_body = [s.visit(flagged) for s in cut.head]
        pieces[HEAD] = compiled_piece(HEAD, cut.head_inputs, head_body, ["False", "None", *cut.head_outputs], options)
    elif cut.head:
        pieces[HEAD] = compiled_piece(HEAD, cut.head_inputs, cut.head, cut.head_outputs, options)
    if cut.tail:
        pieces[TAIL] = compiled_piece(TAIL, cut.tail_inputs, cut.tail, options=options)
    if caller is not None and _inlinable(site, flow, index, cut, caller):
        return _inline(module, site, cut, caller, pieces)
    # A head or tail of plain reads and returns (``return out.logits``) would be a piece that
    # compiles nothing: it stays in the orchestrator as written.
    head = (
        cut.head
        if all(is_trivial(s) for s in cut.head)
        else [piece_call(HEAD, cut.head_inputs, head_outputs, like=cut.head[0]), *early_return]
    )
    tail = (
        cut.tail
        if all(is_trivial(s) for s in cut.tail)
        else [piece_call(TAIL, cut.tail_inputs, returns=cut.tail_returns, like=cut.tail[0])]
    )
    body = [*cut.prologue, *head, cut.eager, *tail]
    return install(module, site, as_orchestrator(site.function, body, compiled_by), pieces)


def _split_in_loop_body(
    module: cst.Module, loop: cst.For, line: int, breaking_lines: frozenset[int] | set[int], defaults: PieceOptions
) -> cst.Module:
    """Keep the statement of a ``for`` loop's body spanning ``line`` eager, with the loop itself:
    the body becomes a piece called once per pass (as for a break in the loop's header), and that
    piece is split around the statement in the same rewrite, so what the body computes before and
    after it is compiled."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    around = [s for s in loop.body.body if not positions[s].start.line <= line <= positions[s].end.line]
    if all(is_trivial(s) for s in around):
        # An orchestrator of the statement alone would compile nothing: BF301 keeps the loop eager.
        raise NotSplittable("nothing in the loop's body is left to compile around the statement to keep eager")
    code = _text(_innermost_statement(module, positions, line))
    if sum(_text(s) == code for s in _statements(module)) != 1:
        raise NotSplittable(f"the statement at line {line} is repeated in the file: its copy in the piece is ambiguous")
    # The body as a piece: it holds the break (this rewrite splits it next), not the other breaks.
    with_body = split_around(
        module,
        line,
        compile_loop_body=True,
        breaking_lines=set(breaking_lines) - {line},
        defaults=defaults,
        body_breaks=True,
    )
    moved = next((s for s in _statements(with_body) if _text(s) == code), None)
    if moved is None:
        raise NotSplittable(f"the statement at line {line} is not in the piece made of the loop's body")
    moved_positions = MetadataWrapper(with_body, unsafe_skip_copy=True).resolve(PositionProvider)
    return split_around(with_body, moved_positions[moved].start.line, require_work=False, defaults=defaults)


def _text(statement: cst.CSTNode) -> str:
    """A statement's code without the comments and blank lines above it (a split may move those)."""
    return cst.Module([]).code_for_node(statement.with_changes(leading_lines=()))


def _statements(module: cst.Module) -> list[cst.CSTNode]:
    return list(m.findall(module, m.SimpleStatementLine() | m.If() | m.For() | m.While() | m.With() | m.Try()))


def _innermost_statement(module: cst.Module, positions: Mapping[cst.CSTNode, CodeRange], line: int) -> cst.CSTNode:
    """The innermost statement spanning ``line``."""
    spanning = [s for s in _statements(module) if positions[s].start.line <= line <= positions[s].end.line]
    if not spanning:
        raise NotSplittable(f"no statement at line {line}")
    return max(spanning, key=lambda s: positions[s].start.line)


def _orchestrated(cut: Cut) -> list[cst.BaseStatement]:
    return [piece_call(HEAD, cut.head_inputs, cut.head_outputs, like=cut.head[0])] if cut.head else []


def _inlinable(piece: FunctionSite, flow: Flow, index: int, cut: Cut, caller: PieceCall) -> bool:
    """Whether re-splitting a piece can happen in its orchestrator's body instead of nesting a new
    orchestrator: the piece is called with its own parameter names, and the names its split binds
    in the orchestrator are not read there afterwards (they then are the original function's
    variables, and inlining equals splitting the original function at both places)."""
    if cut.head_returns:
        return False  # its returns would leave the orchestrator with piece 1's flagged values
    statement = caller.orchestrator.function.body.body[caller.index]
    if has_return(cut.eager) and not m.matches(statement, m.SimpleStatementLine(body=[m.Return()])):
        return False  # a return in the eager statement returns what the piece returned, not its caller
    args = [arg.value for arg in caller.call.args]
    if not all(isinstance(a, cst.Name) for a in args) or [a.value for a in args] != parameter_names(piece.function):
        return False
    targets = {n.value for t in m.findall(statement, m.AssignTarget()) for n in m.findall(t, m.Name())}
    if not cut.tail and targets:
        return False
    orchestrator = caller.orchestrator.function
    later = orchestrator.body.body[caller.index + 1 :]
    read_later = {n.value for s in later for n in m.findall(s, m.Name())}
    introduced = (set(cut.head_outputs) | flow.may[index]) - targets
    piece_locals = set(flow.params) | set(flow.binders)
    free_in_eager = {n.value for n in m.findall(cut.eager, m.Name())} - piece_locals
    return not (introduced & read_later) and not (free_in_eager & _bound_names(orchestrator))


class _FlaggedReturns(cst.CSTTransformer):
    """A head piece's ``return x`` as ``return True, (x), None...``: the orchestrator learns that the
    function returned, and what, where piece 1 otherwise returns ``False, None`` and its outputs.
    The returns of nested functions are theirs."""

    def __init__(self, outputs: int) -> None:
        self.placeholders = ", None" * outputs

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        value = cst.Module([]).code_for_node(updated.value) if updated.value is not None else "None"
        return updated.with_changes(
            value=cst.parse_expression(f"True, ({value}){self.placeholders}"),
            whitespace_after_return=cst.SimpleWhitespace(" "),
        )


def _bound_names(function: cst.FunctionDef) -> set[str]:
    """Every name the function may bind (an over-approximation is safe: it only prevents inlining)."""
    binders = m.AssignTarget() | m.AnnAssign() | m.AugAssign() | m.For() | m.AsName() | m.NamedExpr() | m.CompFor()
    names = set(parameter_names(function))
    for node in m.findall(function.body, binders):
        target = node.name if isinstance(node, cst.AsName) else node.target
        names |= {n.value for n in m.findall(target, m.Name())}
    return names


def _inline(
    module: cst.Module, piece: FunctionSite, cut: Cut, caller: PieceCall, pieces: dict[str, cst.FunctionDef]
) -> cst.Module:
    """Replace the orchestrator's call to the split piece by the split itself."""
    orchestrator = caller.orchestrator.function
    statements = list(orchestrator.body.body)
    calling = statements[caller.index]
    middle = [*_orchestrated(cut), cut.eager]
    comments = [line for line in middle[0].leading_lines if line.comment is not None]
    middle[0] = middle[0].with_changes(leading_lines=[*calling.leading_lines, *comments])
    if cut.tail:
        only = cut.tail[0].body[0] if len(cut.tail) == 1 and isinstance(cut.tail[0], cst.SimpleStatementLine) else None
        if isinstance(only, cst.Return) and only.value is not None and is_trivial(cut.tail[0]):
            # ``return a, b`` alone would be a piece that compiles nothing: the caller reads the values.
            tail_call: cst.BaseExpression = only.value
        else:
            tail_call = cst.parse_expression(f"{TAIL}({', '.join(cut.tail_inputs)})")
        middle.append(calling.deep_replace(caller.call, tail_call).with_changes(leading_lines=blank_lines(cut.tail[0])))
    body = [*statements[: caller.index], *middle, *statements[caller.index + 1 :]]
    rewritten = orchestrator.with_changes(body=orchestrator.body.with_changes(body=body))
    return install(module, caller.orchestrator, rewritten, pieces, removed=[piece.function.name.value])
