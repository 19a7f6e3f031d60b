"""The source BF503 writes into a rewritten module: the logging operator and its emitters."""

from __future__ import annotations

import re

import libcst as cst
import libcst.matchers as m
from libcst.metadata import MetadataWrapper, PositionProvider

# The helpers a rewritten module gets once, in this order, after its imports. Their exact text: a
# module that already has them is reused, a different function of the same name is never overwritten.
LOG_SOURCES = (
    """\
@torch.library.custom_op(f"breakfix::{__name__.replace('.', '_')}_log", mutates_args=())
def _log_op(emitter: str, style: str, kinds: str, tensors: list[torch.Tensor], scalars: list[int | float | bool],
            ints: list[int], strings: str) -> None:
    # A log call made by the compiled graph when it runs; registered below as an ordered effect, so no
    # backend drops it and it runs in program order, with the values of that point.
    given = {"t": iter(tensors), "n": iter(scalars), "s": iter(strings.split("\\0")), "i": iter(ints)}
    values = []
    for kind in kinds:
        if kind == "w":  # the condition of the branch the call was in, a tensor: made only when true
            if not next(given["t"]):
                return
        elif kind in "zul":  # a torch.Size, tuple or list of ints: its length, then its items
            items = [next(given["i"]) for _ in range(next(given["i"]))]
            values.append(torch.Size(items) if kind == "z" else tuple(items) if kind == "u" else items)
        elif kind in "dv":  # a dtype or device, by its text
            text = next(given["s"])
            values.append(getattr(torch, text.removeprefix("torch.")) if kind == "d" else torch.device(text))
        else:
            values.append(None if kind == "-" else next(given[kind]))
    _emit(emitter, style, values)
""",
    """\
@_log_op.register_fake
def _log_op_fake(emitter, style, kinds, tensors, scalars, ints, strings):
    return None
""",
    "torch.library._register_effectful_op(_log_op._qualname, torch._library.effects.EffectType.ORDERED)\n",
    """\
def _log_in_graph(emitter, style, numbers, *values):
    # Under torch.compile the values go to the graph's operator; a value whose text would differ there
    # (a tensor that requires grad or is a subclass) or that it cannot take is logged directly instead,
    # which breaks the graph as the original call did. A tensor the message formats as a number
    # (numbers[i] == "n": "%.4f", "{:.3f}") is the same number detached. A first value marked "w" is
    # the condition of the branch on a tensor the call was in: the call is made only when it is true.
    values = [v.detach() if n == "n" and isinstance(v, torch.Tensor) else v for n, v in zip(numbers, values)]
    kinds = [_graph_kind(v) for v in values]
    if numbers.startswith("w"):
        kinds[0] = "w" if kinds[0] == "t" else ""
    if not torch.compiler.is_compiling() or "" in kinds:
        if numbers.startswith("w"):
            if not values[0]:
                return None
            values = values[1:]
        return _emit(emitter, style, values)
    ints = []
    for kind, value in zip(kinds, values):
        if kind in "zul":
            ints += [len(value), *value]
    _log_op(emitter, style, "".join(kinds), [v for k, v in zip(kinds, values) if k in "tw"],
            [v for k, v in zip(kinds, values) if k == "n"], ints,
            "\\0".join(str(v) for k, v in zip(kinds, values) if k in "sdv"))
""",
    """\
def _graph_kind(value):
    if isinstance(value, torch.Tensor):
        return "t" if type(value) is torch.Tensor and not value.requires_grad else ""
    if isinstance(value, str):
        return "s" if "\\0" not in value else ""
    if isinstance(value, (torch.dtype, torch.device)):
        return "d" if isinstance(value, torch.dtype) else "v"
    if isinstance(value, (torch.Size, tuple, list)):
        ints = all(isinstance(v, (int, torch.SymInt)) and not isinstance(v, bool) for v in value)
        return ("z" if isinstance(value, torch.Size) else "u" if type(value) is tuple else "l") if ints else ""
    if value is None:
        return "-"
    return "n" if isinstance(value, (bool, int, float, torch.SymInt, torch.SymFloat, torch.SymBool)) else ""
""",
    """\
def _emit(emitter, style, values):
    if style == "format":
        values = [values[0].format(*values[1:])]
    elif style == "percent":
        values = [values[0] % tuple(values[1:])]
    elif style == "percent-one":
        values = [values[0] % values[1]]
    # A warning's emitter is given the line of its call too, which warnings.warn reads off its caller.
    name, _, line = emitter.partition(":")
    globals()[name](*values, *([int(line)] if line else []))
""",
)

EMITTER_SOURCE = """\
def {name}(*args):
    {call}
"""


# A rewritten warnings.warn names its emitter and the line of its call ("_warnings_warn_UserWarning:86",
# which warnings.warn reads off its caller's frame); WARNING_LINE stands for the line until it is known.
WARNING_LINE = "LINE"
_WARNING_SITE = re.compile(rf'^"(_warnings_warn_\w+):(?:{WARNING_LINE}|\d+)"$')


def with_warning_lines(module: cst.Module) -> cst.Module:
    """``module`` with the line each rewritten warning names set to the line its call is on: written
    once the module is whole (helpers and imports inserted above it), and kept right when a later
    rewrite of the file moves the call."""
    site = m.SimpleString(value=m.MatchRegex(_WARNING_SITE))
    if not m.findall(module, site):
        return module
    wrapper = MetadataWrapper(module)
    lines = wrapper.resolve(PositionProvider)

    class Lines(cst.CSTTransformer):
        def leave_SimpleString(self, original: cst.SimpleString, updated: cst.SimpleString) -> cst.SimpleString:
            found = _WARNING_SITE.match(original.value)
            if found is None:
                return updated
            return updated.with_changes(value=f'"{found[1]}:{lines[original].start.line}"')

    return wrapper.module.visit(Lines())
