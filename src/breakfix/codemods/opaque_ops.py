"""Opaque computations as custom operators (recipe 3 of the fullgraph chapter)."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.helpers import get_full_name_for_node

from breakfix.codemods._base import BreakfixCodemod
from breakfix.codemods._purity import impurity
from breakfix.codemods.escape_hatches import function_at
from breakfix.types import Applicability

FACT = "opaque_op"  # the key _facts.py files its findings under
CUSTOM_OP = "torch.library.custom_op"
_ATOMIC = (cst.Name, cst.Attribute, cst.Call, cst.Subscript)


class OpaqueComputation(BreakfixCodemod):
    """Turn a pure helper dynamo cannot trace into a custom operator with a derived fake kernel.

    ## What it fixes
    A graph break inside a helper function of your project that computes tensors through code
    dynamo cannot trace: PIL, numpy functions torch does not implement, byte-level tricks, C
    extensions. The helper must be pure, defined at module level, and take only tensors, ints,
    floats, bools, strings and sequences of ints.

    ## Why it breaks
    Dynamo traces Python bytecode and stops where the values stop being tensors it can model
    (a ``PIL.Image``, an ndarray method torch has no counterpart for). A custom operator is opaque:
    the compiler does not look inside it, it only needs a *fake* kernel that says what the outputs
    look like (sizes, dtype, device, strides).

    ## Example
    ```python
    def crop(pic, box):                              # before
        arr = (pic * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        cropped = PIL.Image.fromarray(arr).crop(box)
        return torch.from_numpy(np.array(cropped)).permute(2, 0, 1) / 255.0

    @torch.library.custom_op("breakfix::before_crop", mutates_args=())   # after
    def crop(pic: torch.Tensor, box: Sequence[int]) -> torch.Tensor:
        ...  # body unchanged

    @crop.register_fake
    def _(pic, box):
        return pic.new_empty((box[3] - box[1], box[2] - box[0], pic.shape[0]), dtype=torch.float32).permute(2, 0, 1)
    ```

    ## Fix safety
    Safe: the op runs the unchanged body on real tensors, so outputs are bit-equal. The fake is
    never guessed: breakfix captures the helper's arguments in an eager run, reruns it with each
    size, int and floating dtype nudged, fits every output size to the arguments, checks the fake
    against every run and with ``torch.library.opcheck``, and the rewrite is verified in a fresh
    process. Helpers with side effects are skipped (a custom op's effects are invisible to the
    compiler, and one returning nothing is dead-code-eliminated), and so are differentiable ones
    (the op has no autograd formula). When a result may alias an argument it is cloned. Other
    callers of the helper must pass the same kinds of arguments: the op checks them.
    """

    CODE = "BF202"
    FIX_TITLE = "Make the helper an opaque torch.library.custom_op with a derived fake"
    GB_IDS = frozenset({
        "GB4841",  # Unsupported python_type() call (PIL)
        "GB0294",  # numpy function torch does not implement
        "GB0156", "GB0158", "GB0147",  # unsupported (ndarray) method or function call
        "GB0087",  # fake tensor exception on a traced numpy op
        "GB0109",  # float .tolist()
        "GB0007", "GB0059", "GB0025",  # skipped function, untraceable builtin, graph_break()
    })
    APPLICABILITY = Applicability.SAFE

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        if len(self.request.brk.project_stack) < 2:
            raise self.skip("the break is in the compiled function itself, not in a helper it calls")
        fact = self.request.facts.get(FACT)
        if not fact:
            raise self.skip("no runtime facts about the helper: its fake kernel cannot be derived")
        if "rejected" in fact:
            raise self.skip(f"no fake kernel: {fact['rejected']}")
        definition = function_at(tree, self.request.brk.site.lineno)
        if definition is None or definition not in tree.body or definition.name.value != fact["helper"]:
            raise self.skip(f"{fact['helper']} is not a module-level function of this file")
        if definition.decorators or definition.asynchronous:
            raise self.skip(f"{fact['helper']} is decorated or async; a custom op wraps a plain function")
        reasons = impurity(definition, tree)
        if reasons:
            raise self.skip(f"the helper is not pure: {reasons[0]}")
        names = [p.name.value for p in (*definition.params.params, *definition.params.kwonly_params)]
        if definition.params.posonly_params or set(names) != set(fact["annotations"]):
            raise self.skip("the helper's parameters differ from the ones observed at runtime")

        op = self._as_custom_op(definition, fact, tree)
        fake = self._fake(definition, fact, names, tree)
        index = tree.body.index(definition)
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return tree.with_changes(body=[*tree.body[:index], op, fake, *tree.body[index + 1:]])

    def _as_custom_op(self, definition: cst.FunctionDef, fact: dict, tree: cst.Module) -> cst.FunctionDef:
        sequence = self._sequence_name(tree) if "Sequence[int]" in fact["annotations"].values() else ""

        def annotated(param: cst.Param) -> cst.Param:
            text = fact["annotations"][param.name.value].replace("Sequence", sequence)
            return param.with_changes(annotation=cst.Annotation(cst.parse_expression(text)))

        params = definition.params.with_changes(
            params=[annotated(p) for p in definition.params.params],
            kwonly_params=[annotated(p) for p in definition.params.kwonly_params])
        decorator = cst.Decorator(cst.parse_expression(f'{CUSTOM_OP}("{fact["op_name"]}", mutates_args=())'))
        body = definition.body
        if fact["wrap"]:
            body = body.visit(_WrapReturns(fact["wrap"], is_tuple=fact["returns"] != "torch.Tensor"))
        return definition.with_changes(
            decorators=[decorator], params=params, body=body,
            returns=cst.Annotation(cst.parse_expression(fact["returns"])))

    def _fake(self, definition: cst.FunctionDef, fact: dict, names: list[str], tree: cst.Module) -> cst.FunctionDef:
        # ``_`` as in the torch docs, unless the module already means something by it.
        name = f"_{definition.name.value}_fake" if m.findall(tree, m.Name("_")) else "_"
        source = (f"@{definition.name.value}.register_fake\n"
                  f"def {name}({', '.join(names)}):\n    return {fact['fake']}\n")
        fake = cst.parse_statement(source, config=tree.config_for_parsing)
        return fake.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])

    def _sequence_name(self, tree: cst.Module) -> str:
        """``Sequence`` as the module already imports it, else imported from collections.abc."""
        for node in m.findall(tree, m.ImportFrom()):
            module = get_full_name_for_node(node.module) if node.module else ""
            if module in ("typing", "collections.abc") and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    if alias.name.value == "Sequence":
                        return alias.asname.name.value if alias.asname else "Sequence"
        for node in m.findall(tree, m.Import()):
            for alias in node.names:
                if get_full_name_for_node(alias.name) in ("typing", "collections.abc") and alias.asname is None:
                    return f"{get_full_name_for_node(alias.name)}.Sequence"
        AddImportsVisitor.add_needed_import(self.context, "collections.abc", "Sequence")
        return "Sequence"


class _WrapReturns(cst.CSTTransformer):
    """``return x`` -> ``return x.clone()`` (or ``.contiguous()``) in the helper, not in nested scopes:
    a custom op's output must not alias its inputs, and a fake states one layout."""

    def __init__(self, wrap: str, is_tuple: bool) -> None:
        self.method = wrap
        self.is_tuple = is_tuple

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def _wrapped(self, value: cst.BaseExpression) -> cst.BaseExpression:
        if not isinstance(value, _ATOMIC) and not value.lpar:
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return cst.Call(func=cst.Attribute(value=value, attr=cst.Name(self.method)))

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        value = updated.value
        if value is None:
            return updated
        if not self.is_tuple:
            return updated.with_changes(value=self._wrapped(value))
        if isinstance(value, cst.Tuple):
            return updated.with_changes(value=value.with_changes(
                elements=[e.with_changes(value=self._wrapped(e.value)) for e in value.elements]))
        each = cst.parse_expression(f"tuple(t.{self.method}() for t in _)")
        return updated.with_changes(value=each.deep_replace(m.findall(each, m.Name("_"))[0], value))
