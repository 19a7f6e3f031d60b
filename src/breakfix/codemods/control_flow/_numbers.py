"""Python numbers across a ``torch.cond``: which names hold them, and how they cross.

``torch.cond`` takes and returns tensors (and ints): a branch that binds a Python float
(``coef = 0.1``), or reads one read off the data (``var = x.var().item()``, an unbacked float
while dynamo traces), does not compile as it is. Such a number crosses as a 0-d tensor of the
dtype that holds it exactly (float64 for a float, int64 for an int, bool for a bool) and is read
back with ``.item()``, which gives the same Python number (a float stays a float, an int an int).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import libcst as cst
import libcst.matchers as m

from breakfix.codemods._base import fresh_name, names_in, parameter_names

NUMBER_AS_TENSOR = "_number_as_tensor"

NUMBER_HELPER = f'''
def {NUMBER_AS_TENSOR}(value):
    """A Python number as a 0-d tensor that holds it exactly, for torch.cond; .item() gives it back."""
    return torch.tensor(value, dtype=torch.float64) if isinstance(value, float) else torch.tensor(value)
'''

_ARITHMETIC = (
    cst.Add,
    cst.Subtract,
    cst.Multiply,
    cst.Divide,
    cst.FloorDivide,
    cst.Modulo,
    cst.Power,
)
# Builtins that always give a Python number.
_NUMBER_BUILTINS = frozenset({"float", "int", "bool"})
# Builtins that give a Python number when their arguments are numbers.
_NUMBER_OF_NUMBERS = frozenset({"abs", "min", "max", "round"})


def number_valued(value: cst.BaseExpression, numbers: frozenset[str]) -> bool:
    """Whether ``value`` is surely a Python number (int, float or bool), ``numbers`` being the names
    known to hold one: a numeric literal, ``True``/``False``, ``x.item()``, ``float(...)``,
    ``int(...)``, ``bool(...)``, a function of ``math`` or ``abs``/``min``/``max``/``round`` of
    numbers, arithmetic, comparisons and ``not`` of numbers."""
    if isinstance(value, (cst.Integer, cst.Float)):
        return True
    if isinstance(value, cst.Name):
        return value.value in {"True", "False"} or value.value in numbers
    if isinstance(value, cst.UnaryOperation):
        return number_valued(value.expression, numbers)
    if isinstance(value, cst.BinaryOperation):
        return (
            isinstance(value.operator, _ARITHMETIC)
            and number_valued(value.left, numbers)
            and number_valued(value.right, numbers)
        )
    if isinstance(value, cst.Comparison):
        return number_valued(value.left, numbers) and all(
            number_valued(c.comparator, numbers) for c in value.comparisons
        )
    if isinstance(value, cst.Call):
        if m.matches(value, m.Call(func=m.Attribute(attr=m.Name("item")), args=[])):
            return True
        builtin = value.func.value if isinstance(value.func, cst.Name) else None
        if builtin in _NUMBER_BUILTINS:
            return not any(a.star or a.keyword for a in value.args)
        arguments_are_numbers = all(not a.star and number_valued(a.value, numbers) for a in value.args)
        if m.matches(value.func, m.Attribute(value=m.Name("math"))):
            return arguments_are_numbers
        if builtin in _NUMBER_OF_NUMBERS:
            return bool(value.args) and arguments_are_numbers
    return False


def _bindings(function: cst.FunctionDef) -> tuple[dict[str, list[cst.BaseExpression]], set[str]]:
    """The values ``function`` assigns to each name (plain and augmented assignments), and the
    names it binds some other way (parameters, loops, ``with ... as``, unpacking, ``:=``)."""
    values: dict[str, list[cst.BaseExpression]] = {}
    others = set(parameter_names(function))
    for node in m.findall(function, m.Assign() | m.AugAssign() | m.For() | m.CompFor() | m.AsName() | m.NamedExpr()):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    values.setdefault(target.target.value, []).append(node.value)
                else:
                    others |= names_in(target.target)
        elif isinstance(node, cst.AugAssign):
            if isinstance(node.target, cst.Name):
                values.setdefault(node.target.value, []).append(node.value)
        elif isinstance(node, (cst.For, cst.CompFor, cst.NamedExpr)):
            others |= names_in(node.target)
        elif isinstance(node, cst.AsName):
            others |= names_in(node.name)
    return values, others


def number_names(function: cst.FunctionDef, known: frozenset[str] = frozenset()) -> frozenset[str]:
    """The names ``function`` binds only to Python numbers: every assignment of the name (plain or
    augmented) gives one, ``known`` being names known to hold one, and it binds it no other way
    (not a parameter, a loop variable, an unpacking)."""
    values, others = _bindings(function)
    numbers = frozenset(values) - others
    while True:  # drop a name one of whose values is not surely a number, until none is left to drop
        kept = frozenset(n for n in numbers if all(number_valued(v, numbers | known) for v in values[n]))
        if kept == numbers:
            return numbers
        numbers = kept


_CONVERSIONS = m.Call(func=m.Attribute(attr=m.Name("item"))) | m.Call(
    func=m.Name("float") | m.Name("int") | m.Name("bool"),
    args=[m.Arg(value=~(m.Integer() | m.Float() | m.SimpleString()))],
)


def _surely_int(value: cst.BaseExpression, ints: frozenset[str]) -> bool:
    """Whether ``value`` is surely a Python int: an int literal, ``int(...)``, ``len(...)``, a name
    in ``ints``, or ``+ - * // %`` of those."""
    if isinstance(value, cst.Integer):
        return True
    if isinstance(value, cst.Name):
        return value.value in ints
    if isinstance(value, cst.UnaryOperation):
        return isinstance(value.operator, (cst.Minus, cst.Plus)) and _surely_int(value.expression, ints)
    if isinstance(value, cst.BinaryOperation):
        return (
            isinstance(value.operator, (cst.Add, cst.Subtract, cst.Multiply, cst.FloorDivide, cst.Modulo))
            and _surely_int(value.left, ints)
            and _surely_int(value.right, ints)
        )
    return m.matches(value, m.Call(func=m.Name("int") | m.Name("len")))


def read_off_data(function: cst.FunctionDef, numbers: frozenset[str]) -> frozenset[str]:
    """The number names whose value may be a float or a bool read off a tensor (``x.item()``,
    ``float(t)``, or arithmetic of such a name): an unbacked symbol while dynamo traces, which a
    ``torch.cond`` branch cannot close over (a constant it can, and an int read off the data)."""
    values = {n: vs for n, vs in _bindings(function)[0].items() if n in numbers}
    ints: frozenset[str] = frozenset()
    while True:
        grown = frozenset(n for n, vs in values.items() if all(_surely_int(v, ints) for v in vs))
        if grown == ints:
            break
        ints = grown
    values = {n: vs for n, vs in values.items() if n not in ints}

    def reads_data(value: cst.BaseExpression, found: frozenset[str]) -> bool:
        return bool(m.findall(value, _CONVERSIONS)) or bool(names_in(value) & found)

    found: frozenset[str] = frozenset()
    while True:
        grown = frozenset(n for n, vs in values.items() if any(reads_data(v, found) for v in vs))
        if grown == found:
            return found
        found = grown


def tensor_names(numbers: list[str], taken: set[str]) -> dict[str, str]:
    """A fresh name for the tensor each of ``numbers`` crosses as (``var`` -> ``var_tensor``)."""
    tensors: dict[str, str] = {}
    for name in numbers:
        tensors[name] = fresh_name(f"{name}_tensor", taken | set(tensors.values()))
    return tensors


def as_tensor(value: cst.BaseExpression) -> cst.Call:
    """``_number_as_tensor(value)``."""
    return cst.Call(func=cst.Name(NUMBER_AS_TENSOR), args=[cst.Arg(value)])


def item_of(value: cst.BaseExpression) -> cst.Call:
    """``value.item()``."""
    return cst.Call(func=cst.Attribute(value=value, attr=cst.Name("item")))


def reading_items(value: cst.BaseExpression, tensors: Mapping[str, str]) -> cst.BaseExpression:
    """``value`` with each read of a name in ``tensors`` replaced by ``<its tensor>.item()``: the
    number a tensor operand carries."""
    return cast(cst.BaseExpression, value.visit(_ReadsAsItems(tensors)))


class _ReadsAsItems(cst.CSTTransformer):
    def __init__(self, tensors: Mapping[str, str]) -> None:
        self.tensors = tensors

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if updated.value in self.tensors:
            return item_of(cst.Name(self.tensors[updated.value]))
        return updated

    # A keyword's name or an attribute's field is not a read of the name.
    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(keyword=original.keyword)

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(attr=original.attr)
