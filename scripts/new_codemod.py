"""Scaffold a codemod, as Ruff's add_rule.py does: the class, its registration and two fixture folders.

    python scripts/new_codemod.py FAMILY CODE ClassName

- appends a ``SiteCodemod`` subclass to ``src/breakfix/codemods/FAMILY.py`` (a new module for a
  new family; a new module ``FAMILY/class_name.py`` when the family is a package of one module per
  codemod), with the docstring headings the docs need and a visitor that rewrites nothing yet
  (the base then skips with "no <SITE> at line N");
- registers it in ``REGISTRY`` before the catch-alls;
- creates ``fixtures/FAMILY/CODE_positive/`` and ``CODE_negative/`` (before.py, after.py, inputs.py,
  case.toml) around a ``torch._dynamo.graph_break()`` to replace with the pattern.

Every TODO must go before the tests pass (docs/contributing.md has the checklist). Exit 2 with one
line when an argument is wrong or the code or class already exists; nothing is written then.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

PROJECT = Path(__file__).resolve().parent.parent
CODEMODS = PROJECT / "src" / "breakfix" / "codemods"
FIXTURES = PROJECT / "fixtures"

NEW_MODULE = '''"""TODO: the fix family, in one line."""

from __future__ import annotations

import libcst as cst
from libcst.metadata import PositionProvider

from breakfix.codemods._base import SiteCodemod
from breakfix.types import Applicability
'''

# What an existing family module may lack for the new class (ruff check --fix sorts them).
IMPORTS = ("from libcst.metadata import PositionProvider", "from breakfix.codemods._base import SiteCodemod")

CLASS = '''

class {name}(SiteCodemod):
    """TODO: what the fix does, in one line.

    ## What it fixes
    TODO: the pattern, as a user writes it.

    ## Why it breaks
    TODO: what dynamo cannot trace, and why.

    ## Example
    ```python
    TODO  # before
    TODO  # after
    ```

    ## Fix safety
    TODO: why the rewrite keeps the meaning, and where the codemod refuses.
    """

    CODE = "{code}"
    FIX_TITLE = "TODO: the fix, as an imperative"
    GB_IDS = frozenset({{"GB0025"}})  # TODO: the GB ids it answers (breakfix explain GBnnnn)
    APPLICABILITY = Applicability.SAFE
    SITE = "TODO: what it rewrites, as in 'no <SITE> at line N'"

    METADATA_DEPENDENCIES = (PositionProvider,)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        # TODO: rewrite the node at the break (self.spans_break(original)) and count it in
        # self.rewritten, or set self.refused to why it is left alone.
        return updated
'''

BEFORE = """import torch


def f(x):
    y = x.sin()
    torch._dynamo.graph_break()  # TODO: the pattern
    return y.cos()
"""

INPUTS = """import torch


def example_inputs():
    return (torch.randn(4),)
"""

CASE = """code = "{code}"
kind = "{kind}"
target = "f"
exit_code = {exit_code}
description = "TODO: what is special about this case."

[[breaks]]
gb_id = "GB0025"
gb_type = "Call to `torch._dynamo.graph_break()`"
stack = ["before.py:6:f"]
"""


def _fail(message: str) -> None:
    click.echo(f"new_codemod: error: {message}", err=True)
    sys.exit(2)


def _register(init: str, module: str, name: str, catch_alls: list[str]) -> str:
    """``codemods/__init__.py`` with the import and the REGISTRY entry (before the first catch-all)."""
    imports = list(re.finditer(r"^from breakfix\.codemods\.[\w.]+ import .+$", init, re.M))
    at = imports[-1].end()
    init = f"{init[:at]}\nfrom breakfix.codemods.{module} import {name}{init[at:]}"
    first_catch_all = re.search(rf"^    ({'|'.join(catch_alls)}),$", init, re.M) if catch_alls else None
    end = first_catch_all.start() if first_catch_all else init.index("\n)\n", init.index("REGISTRY")) + 1
    return f"{init[:end]}    {name},\n{init[end:]}"


@click.command()
@click.argument("family")
@click.argument("code")
@click.argument("name")
def main(family: str, code: str, name: str) -> None:
    """Scaffold codemod NAME with code CODE in FAMILY (a module of src/breakfix/codemods/)."""
    sys.path.insert(0, str(PROJECT / "src"))
    from breakfix.codemods import BY_CODE, REGISTRY

    if not re.fullmatch(r"[a-z][a-z0-9_]*", family):
        _fail(f"family {family!r}: a lowercase module name (side_effects)")
    if not re.fullmatch(r"BF\d{3}", code) or code in BY_CODE:
        _fail(f"code {code!r}: BFnnn, not taken ({', '.join(sorted(BY_CODE))} are)")
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name) or name in {c.__name__ for c in REGISTRY}:
        _fail(f"class {name!r}: CamelCase, naming the pattern, and not an existing codemod")
    dotted = family
    if (CODEMODS / family).is_dir():  # a family package: one module per codemod
        dotted = f"{family}.{re.sub(r'(?<!^)(?=[A-Z])', '_', name).lower()}"
    module = CODEMODS / f"{dotted.replace('.', '/')}.py"
    init_path = CODEMODS / "__init__.py"
    init = _register(init_path.read_text(encoding="utf-8"), dotted, name, [c.__name__ for c in REGISTRY if c.CATCH_ALL])
    folders = {kind: FIXTURES / family / f"{code}_{kind}" for kind in ("positive", "negative")}
    if any(folder.exists() for folder in folders.values()):
        _fail(f"fixtures/{family}/{code}_positive or _negative already exists")

    source = module.read_text(encoding="utf-8") if module.exists() else NEW_MODULE
    missing = [line for line in IMPORTS if line not in source]
    if missing:
        future = "from __future__ import annotations\n"
        at = source.index(future) + len(future) if future in source else 0
        source = source[:at] + "".join(f"{line}\n" for line in missing) + source[at:]
    module.write_text(source + CLASS.format(name=name, code=code), encoding="utf-8")
    init_path.write_text(init, encoding="utf-8")
    for kind, folder in folders.items():
        folder.mkdir(parents=True)
        (folder / "before.py").write_text(BEFORE, encoding="utf-8")
        (folder / "after.py").write_text(BEFORE, encoding="utf-8")  # TODO for the positive case: the fix
        (folder / "inputs.py").write_text(INPUTS, encoding="utf-8")
        exit_code = 0 if kind == "positive" else 1
        (folder / "case.toml").write_text(CASE.format(code=code, kind=kind, exit_code=exit_code), encoding="utf-8")
    for path in (module, init_path, *folders.values()):
        click.echo(f"wrote {path.relative_to(PROJECT)}")
    click.echo("next: the TODOs, then the checklist of docs/contributing.md (imports may need `ruff check --fix`)")


if __name__ == "__main__":
    main()
