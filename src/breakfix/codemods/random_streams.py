"""Random numbers drawn inside compiled code: the calls that draw them in a form dynamo traces."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.metadata import PositionProvider, QualifiedNameProvider, QualifiedNameSource

from breakfix.codemods._base import FixRequest, SiteCodemod
from breakfix.types import Applicability

FACTORIES = frozenset({"torch.randn", "torch.rand", "torch.randint"})
HELPER = "_generator_kwargs"
HELPER_SOURCE = f"""\
def {HELPER}(generator):
    # torch.randn, torch.rand and torch.randint given generator=None do not trace once sizes are
    # dynamic (torch 2.13); without the keyword they draw the same numbers from the default generator.
    return {{}} if generator is None else {{"generator": generator}}
"""


class NoneGeneratorOfRandomFactory(SiteCodemod):
    """Pass ``generator=`` to ``torch.randn``/``rand``/``randint`` only when it is a generator.

    ## What it fixes
    ``torch.randn(shape, generator=generator, ...)``, ``torch.rand(...)`` or
    ``torch.randint(...)`` inside compiled code, given ``generator=None`` (a library's
    ``randn_tensor(shape, generator=None)``, a sampling step whose ``generator`` parameter
    defaults to None), in the compiled function, a helper, a method or another file (the
    innermost project frame). It compiles on the first call and fails on the first call with new
    sizes: dynamo makes the sizes dynamic and the factory rejects them
    (GB4315, "RuntimeError when making fake tensor call", ``SymIntArrayRef expected to contain
    only concrete integers``; the report shows ``'generator': None``). A literal
    ``generator=None`` is dropped; any other value is passed as ``**_generator_kwargs(value)``,
    which leaves the keyword out when it is None and passes the generator otherwise. Every such
    call on the break's line is rewritten.

    It leaves alone a factory the call does not name (``self.noise = torch.randn``, then
    ``self.noise(shape, generator=g)``), factories called without ``generator=`` and other random
    functions
    (``torch.normal``, ``torch.bernoulli``, ``randperm``, the ``_like`` factories and the
    in-place ``uniform_``/``normal_`` trace with dynamic sizes as they are).

    ## Why it breaks
    With ``generator=`` given, even as None, torch dispatches the factory to its overload that
    takes a generator, whose kernel accepts only concrete sizes (torch 2.13); without it, the
    overload without a generator accepts symbolic sizes.

    ## Example
    ```python
    noise = torch.randn(sample.shape, generator=generator, dtype=sample.dtype)
    ```
    becomes
    ```python
    noise = torch.randn(sample.shape, **_generator_kwargs(generator), dtype=sample.dtype)
    ```
    with ``_generator_kwargs`` defined once in the module.

    ## Fix safety
    Safe: a factory called without ``generator=`` draws from the default generator, exactly as
    with ``generator=None`` (the same numbers for the same seed); a generator that is not None
    is passed as before.
    """

    CODE = "BF901"
    FIX_TITLE = "Leave generator=None out of torch.randn, torch.rand and torch.randint"
    GB_IDS = frozenset({"GB4315"})
    GB_TYPES = frozenset({"RuntimeError when making fake tensor call"})
    APPLICABILITY = Applicability.SAFE
    SITE = "torch.randn/rand/randint call given generator= on the break's line"
    HELPER_SOURCE = HELPER_SOURCE
    IMPORTS = ()

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def __init__(self, context: CodemodContext, request: FixRequest) -> None:
        super().__init__(context, request)
        self.helper_needed = False

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not self.spans_break(original) or not self._is_factory(original):
            return updated
        args = list(updated.args)
        at = next((i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == "generator"), None)
        if at is None:
            return updated
        value = args[at].value
        if isinstance(value, cst.Name) and value.value == "None":
            del args[at]
            if at == len(args) and args:  # the last argument is gone: no comma after the new last
                args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        else:
            helper = cst.Call(func=cst.Name(HELPER), args=[cst.Arg(value)])
            args[at] = cst.Arg(value=helper, star="**", comma=args[at].comma)
            self.helper_needed = True
        self.rewritten += 1
        return updated.with_changes(args=args)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if self.done() and not self.helper_needed:
            return updated  # only literal Nones were dropped: nothing to define
        return super().leave_Module(original, updated)

    def _is_factory(self, call: cst.Call) -> bool:
        return any(
            q.source is QualifiedNameSource.IMPORT and q.name in FACTORIES
            for q in self.get_metadata(QualifiedNameProvider, call.func, set())
        )
