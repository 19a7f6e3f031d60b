"""``breakfix check``: find likely graph breaks by reading the source. Runs no user code, imports no torch.

The scan looks at the functions that are compiled: decorated with ``torch.compile`` (any spelling
the imports allow, resolved with qualified names), passed to ``torch.compile(...)`` in the same
module, or the ``forward`` of an ``nn.Module`` subclass of the module whose instance is compiled
there; plus the functions and methods of the module those call, as dynamo inlines them. In them it
reports the patterns of ``PATTERNS``: calls and constructs that break on the installed torch
(each pattern's examples are compiled with ``fullgraph=True`` by a torch-tier test that checks the
GB id claimed here). A finding is *likely*, not verified: the types of values are not known
statically (``x.tolist()`` breaks only on a floating tensor).

A finding's code is the code of the codemod that would answer the break: the classifier's
candidates for the pattern's GB id are tried on the source, with a synthesized ``GraphBreak``
whose stack is the path from the compiled function to the site, and the first one that rewrites
it names the finding; trials stop at the pattern's ``fallback`` (the codemod that answers the
pattern wherever it is, so it names the finding whether or not it can rewrite this site).
``quick_fix`` returns the rewrite of the finding's codemod, unverified. ``# breakfix: ignore[CODE, ...]`` (or a bare ``# breakfix: ignore``) on the
first or last line of a finding suppresses it.
"""

from __future__ import annotations

import io
import os
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst
from libcst.codemod import CodemodContext, SkipFile
from libcst.metadata import (
    MetadataWrapper,
    ParentNodeProvider,
    PositionProvider,
    QualifiedNameProvider,
    QualifiedNameSource,
    ScopeProvider,
)

from breakfix import classifier
from breakfix.codemods import BY_CODE, FixRequest
from breakfix.docs import gb_type_of
from breakfix.errors import BreakfixError
from breakfix.types import Frame, GraphBreak
from breakfix.writer import read_source

COMPILE = "torch.compile"
_MODULE_BASES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
# Functions dynamo does not trace into: an eager region (calling one is its own pattern) or an
# opaque op. Their bodies are not scanned as compiled code.
_DISABLE = frozenset({"torch.compiler.disable", "torch._dynamo.disable"})
_OPAQUE = frozenset(
    {
        "torch._dynamo.nonstrict_trace",
        "torch.library.custom_op",
        "torch._dynamo.allow_in_graph",
        "torch.compiler.allow_in_graph",
    }
)
_LOGGING_FUNCTIONS = ("debug", "info", "warning", "warn", "error", "critical", "exception", "log")
# Tensor methods and torch functions whose result, tested by `if`/`while`, depends on tensor data.
_REDUCTIONS = frozenset({"sum", "mean", "max", "min", "any", "all", "norm", "prod", "isfinite", "isnan", "isinf"})
_ITERATOR_ANNOTATIONS = frozenset(
    {f"{m}.{t}" for m in ("typing", "collections.abc") for t in ("Iterator", "Generator")}
)
_NEVER_COMPILED = frozenset({"__init__", "example_inputs"})
_SUPPRESSION = re.compile(r"#\s*breakfix:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.I)


class CheckError(BreakfixError):
    """A file that cannot be read or parsed: reported, and the check exits 2."""


@dataclass(frozen=True)
class Finding:
    """One likely graph break. Lines are 1-based, columns 0-based character offsets; the range is
    the offending expression or statement (the whole ``print(...)`` call)."""

    code: str  # the codemod that would answer it (REGISTRY code); what suppression comments name
    gb_id: str | None
    gb_type: str
    message: str
    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    pattern: str = ""  # the slug of the pattern in PATTERNS
    function: str = ""  # qualname of the function the site is in
    compiled: str = ""  # qualname of the compiled function it is reached from (``function`` itself, or a caller)


@dataclass(frozen=True)
class Pattern:
    """A construct that breaks under ``fullgraph=True`` on the installed torch.

    ``examples`` are modules defining ``f``; compiled with ``fullgraph=True`` and called with
    ``example_args`` each breaks with ``gb_id`` (tests/test_check.py, torch tier). ``fallback`` is
    the code a finding gets when no codemod rewrites its site."""

    slug: str
    gb_id: str | None
    message: str
    examples: tuple[str, ...]
    calls: frozenset[str] = frozenset()  # qualified names of the callables this pattern is about
    example_args: str = "torch.randn(3)"
    fallback: str = "BF301"
    gb_type: str = ""  # only for breaks without a GB id
    needs: str = ""  # a module the examples import that may be missing (tqdm)


def _example(imports: str, body: str) -> str:
    lines = "\n".join(f"    {line}" for line in body.splitlines())
    return f"{imports}\nimport torch\n\n\ndef f(x):\n{lines}\n"


PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "print",
        "GB0059",
        "print() in compiled code: dynamo cannot trace console output",
        (_example("", "print(x)\nreturn x + 1"),),
        frozenset({"builtins.print"}),
    ),
    Pattern(
        "builtin-io",
        "GB0059",
        "{name}() in compiled code: file and console I/O cannot be traced",
        (
            _example("", "open('/dev/null')\nreturn x + 1"),
            _example("", "input()\nreturn x + 1"),
            _example("", "breakpoint()\nreturn x + 1"),
        ),
        frozenset({"builtins.open", "builtins.input", "builtins.breakpoint"}),
    ),
    Pattern(
        "repr",
        "GB0569",
        "repr() of a tensor in compiled code cannot be traced",
        (_example("", "s = repr(x)\nreturn x + 1"),),
        frozenset({"builtins.repr"}),
    ),
    Pattern(
        "graph-break",
        "GB0025",
        "torch._dynamo.graph_break() stops the graph on purpose",
        (_example("", "y = x + 1\ntorch._dynamo.graph_break()\nreturn y"),),
        frozenset({"torch._dynamo.graph_break"}),
    ),
    Pattern(
        "torch-save",
        "GB0007",
        "{name}() writes a file; dynamo skips it, which breaks the graph",
        (_example("", "torch.save(x, 'saved.pt')\nreturn x + 1"),),
        frozenset({"torch.save"}),
    ),
    Pattern(
        "warnings",
        "GB0007",
        "warnings.warn() in compiled code: dynamo skips it, which breaks the graph",
        (_example("import warnings", "warnings.warn('w')\nreturn x + 1"),),
        frozenset({"warnings.warn"}),
    ),
    Pattern(
        "clock",
        "GB0007",
        "{name}() reads the clock; dynamo skips it, which breaks the graph",
        (
            _example("import time", "t = time.time()\nreturn x + t"),
            _example("import time", "t = time.perf_counter()\nreturn x + t"),
            _example("import time", "t = time.monotonic()\nreturn x + t"),
        ),
        frozenset({"time.time", "time.perf_counter", "time.monotonic"}),
    ),
    Pattern(
        "wall-date",
        "GB0156",
        "{name}() reads the date and time; dynamo cannot trace it",
        (
            _example("from datetime import datetime", "s = datetime.now()\nreturn x + 1"),
            _example("import datetime", "s = datetime.datetime.utcnow()\nreturn x + 1"),
            _example("from datetime import date", "s = date.today()\nreturn x + 1"),
        ),
        frozenset({"datetime.datetime.now", "datetime.datetime.utcnow", "datetime.date.today"}),
    ),
    Pattern(
        "host-state",
        "GB0007",
        "{name}() asks the operating system; dynamo skips it, which breaks the graph",
        (
            _example("import uuid", "s = uuid.uuid4()\nreturn x + 1"),
            _example("import os", "s = os.getpid()\nreturn x + 1"),
            _example("import tempfile", "fd, path = tempfile.mkstemp()\nreturn x + 1"),
            _example("import os", "os.close(os.dup(1))\nreturn x + 1"),
            _example("import os", "os.remove('breakfix-example-never-created')\nreturn x + 1"),
            _example("import os", "os.makedirs('made', exist_ok=True)\nreturn x + 1"),
            _example("import os", "seed = os.urandom(8)\nreturn x + 1"),
        ),
        frozenset(
            {"uuid.uuid4", "os.getpid", "tempfile.mkstemp", "os.close", "os.remove", "os.makedirs", "os.urandom"}
        ),
    ),
    Pattern(
        "skipped-stdlib",
        "GB0007",
        "{name}(): dynamo skips this function, which breaks the graph",
        (
            _example("import heapq", "top = heapq.nlargest(2, [3, 1, 2])\nreturn x + top[0]"),
            _example("import heapq", "top = heapq.nsmallest(2, [3, 1, 2])\nreturn x + top[0]"),
        ),
        frozenset({"heapq.nlargest", "heapq.nsmallest"}),
    ),
    Pattern(
        "path-io",
        "GB0007",
        "Path.{name}() reads or writes a file; dynamo skips it, which breaks the graph",
        (
            _example("from pathlib import Path", "text = Path(__file__).read_text()\nreturn x + len(text)"),
            _example("from pathlib import Path", "with Path(__file__).open() as f:\n    f.read()\nreturn x + 1"),
        ),
    ),
    Pattern(
        "untraceable-object",
        "GB0156",
        "{name}() makes an object dynamo cannot trace",
        (
            _example("import io", "buffer = io.BytesIO()\nreturn x + 1"),
            _example("import json", "s = json.dumps({'a': 1})\nreturn x + len(s)"),
        ),
        frozenset({"io.BytesIO", "json.dumps"}),
    ),
    Pattern(
        "opaque-generator",
        "GB0363",
        "{name}() creates an opaque object in the middle of compiled code",
        (_example("", "g = torch.Generator()\nreturn x + 1"),),
        frozenset({"torch.Generator"}),
    ),
    Pattern(
        "numpy-unsupported",
        "GB0294",
        "{name}() is a numpy function torch cannot trace",
        (
            _example("import numpy as np", "np.save('saved.npy', x.numpy())\nreturn x + 1"),
            _example(
                "import numpy as np",
                "y = np.interp(np.linspace(0, 1, 3), np.linspace(0, 1, 3), x.numpy())\nreturn x + torch.from_numpy(y)",
            ),
            _example("import numpy as np", "rng = np.random.default_rng()\nreturn x + 1"),
        ),
        frozenset({"numpy.save", "numpy.interp", "numpy.random.default_rng"}),
    ),
    Pattern(
        "numpy-ufunc-method",
        "GB0290",
        "{name}(): a numpy ufunc method torch cannot trace",
        (_example("import numpy as np", "np.add.at(np.zeros(3), np.array([0, 1]), 1)\nreturn x + 1"),),
    ),
    Pattern(
        "backward",
        "GB0123",
        "{name}() in compiled code: dynamo does not trace backward()",
        (_example("", "y = (x * 2).sum()\ny.backward()\nreturn y"),),
        example_args="torch.randn(3, requires_grad=True)",
    ),
    Pattern(
        "zero-grad",
        "GB0008",
        "{name}() is skipped by dynamo, which breaks the graph",
        (
            "import torch\n\nparam = torch.nn.Parameter(torch.randn(3))\noptimizer = torch.optim.SGD([param], lr=0.1)\n\n\n"
            "def f(x):\n    optimizer.zero_grad()\n    return x + 1\n",
        ),
    ),
    Pattern(
        "optimizer-step",
        "GB0025",
        "{name}(): the optimizer step breaks the graph on purpose",
        (
            "import torch\n\nparam = torch.nn.Parameter(torch.randn(3))\noptimizer = torch.optim.SGD([param], lr=0.1)\n\n\n"
            "def f(x):\n    optimizer.step()\n    return x + 1\n",
        ),
    ),
    Pattern(
        "inspect-signature",
        "GB0088",
        "{name}() raises inside dynamo: it cannot inspect a signature while tracing",
        (
            _example(
                "import inspect", "n = len(inspect.signature(torch.nn.functional.softmax).parameters)\nreturn x + n"
            ),
        ),
        frozenset({"inspect.signature"}),
    ),
    Pattern(
        "global-rng",
        "GB0007",
        "{name}() uses global random state; dynamo skips it, which breaks the graph",
        (_example("import random", "return x + random.random()"), _example("", "torch.manual_seed(0)\nreturn x + 1")),
        frozenset({"random.random", "torch.manual_seed"}),
    ),
    Pattern(
        "inspect",
        "GB0007",
        "{name}() inspects the interpreter stack; dynamo skips it",
        (_example("import inspect", "inspect.stack()\nreturn x + 1"),),
        frozenset({"inspect.stack"}),
    ),
    Pattern(
        "tqdm",
        "GB0007",
        "tqdm progress bars write to the console; dynamo skips them",
        (_example("from tqdm import tqdm", "for _ in tqdm(range(2)):\n    x = x + 1\nreturn x"),),
        frozenset({"tqdm.tqdm", "tqdm.auto.tqdm"}),
        needs="tqdm",
    ),
    Pattern(
        "logging-function",
        "GB4841",
        "{name}() in compiled code: logging cannot be traced",
        (
            _example("import logging", "logging.warning('w')\nreturn x + 1"),
            _example("import logging", "logging.info('i')\nreturn x + 1"),
        ),
        frozenset(f"logging.{name}" for name in _LOGGING_FUNCTIONS),
    ),
    Pattern(
        "logger-method",
        "GB0291",
        "Logger.{name}() in compiled code: logging cannot be traced",
        (_example("import logging\nlogger = logging.getLogger('breakfix.example')", "logger.info('i')\nreturn x + 1"),),
    ),
    Pattern(
        "deepcopy",
        "GB4198",
        "copy.deepcopy() of a tensor cannot be traced",
        (_example("import copy", "y = copy.deepcopy(x)\nreturn y + 1"),),
        frozenset({"copy.deepcopy"}),
    ),
    Pattern(
        "copy",
        "GB0208",
        "copy.copy() of a tensor cannot be traced",
        (_example("import copy", "y = copy.copy(x)\nreturn y + 1"),),
        frozenset({"copy.copy"}),
    ),
    Pattern(
        "float-tolist",
        "GB0109",
        ".tolist() of a floating tensor cannot be traced (integer tensors compile)",
        (_example("", "y = x.tolist()\nreturn x + y[0]"),),
    ),
    Pattern(
        "data-dependent-branch",
        "GB0170",
        "Python `{name}` on a tensor's value: the branch depends on data dynamo does not know",
        (
            _example("", "if x.sum() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "if x.any():\n    return x + 1\nreturn x - 1"),
            _example("", "if torch.all(x > 0):\n    return x + 1\nreturn x - 1"),
            _example("", "while x.max() > 0:\n    x = x - 1\nreturn x"),
            _example("", "if x.mean() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "if x.min() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "if x.norm() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "if x.prod() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "return x + 1 if x.sum() > 0 else x - 1"),
            _example("", "if not torch.isfinite(x.sum()):\n    return x\nreturn x + 1"),
            _example("", "if x.isnan().any():\n    return x\nreturn x + 1"),
            _example("", "if torch.isinf(x.sum()):\n    return x\nreturn x + 1"),
        ),
    ),
    Pattern(
        "assert-message",
        "GB0170",
        "`assert` on a tensor's value with a computed message: dynamo must branch "
        "on the value to know whether to build the message",
        (
            _example("", "assert x.sum() > -100, f'bad {x}'\nreturn x + 1"),
            _example("", "assert torch.isfinite(x).all(), f'bad {x.shape}'\nreturn x + 1"),
        ),
    ),
    Pattern(
        "data-dependent-guard",
        None,
        "Python `{name}` on .item(): dynamo cannot guard on a data-dependent value",
        (_example("", "if x.sum().item() > 0:\n    return x + 1\nreturn x - 1"),),
        gb_type="Could not guard on data-dependent expression",
    ),
    Pattern(
        "iterator-next",
        "GB4347",
        "next() on the iterator parameter {name}: dynamo cannot step an iterator created outside the compiled code",
        ("import torch\n\n\ndef f(xs):\n    return next(xs) + 1\n",),
        example_args="iter([torch.randn(3)])",
        fallback="BF101",
    ),
    Pattern(
        "iterator-for",
        "GB0811",
        "for loop over the iterator parameter {name}: dynamo cannot step an iterator created outside the compiled code",
        (
            "from collections.abc import Iterator\n\nimport torch\n\n\n"
            "def f(xs: Iterator[torch.Tensor]):\n    y = 0\n    for x in xs:\n        y = y + x\n    return y\n",
        ),
        example_args="iter([torch.randn(3)])",
        fallback="BF101",
    ),
    Pattern(
        "generator",
        "GB0003",
        "the compiled function is a generator (yield): dynamo cannot compile one",
        (_example("", "yield x + 1"),),
    ),
    Pattern(
        "module-construction",
        "GB0264",
        "{name}() builds a module or parameter inside compiled code",
        (_example("", "m = torch.nn.Linear(3, 3)\nreturn m(x)"),),
    ),
    Pattern(
        "pil",
        "GB0007",
        "{name}(): dynamo skips PIL, which breaks the graph",
        (_example("import PIL.Image", "PIL.Image.new('RGB', (2, 2))\nreturn x + 1"),),
    ),
    Pattern(
        "disabled-call",
        "GB0098",
        "{name} is marked @torch.compiler.disable: calling it from compiled code breaks the graph",
        (
            "import torch\n\n\n@torch.compiler.disable\ndef g(x):\n    return x + 1\n\n\n"
            "def f(x):\n    return g(x) * 2\n",
        ),
    ),
)
BY_SLUG = {pattern.slug: pattern for pattern in PATTERNS}
_BY_CALL = {name: pattern for pattern in PATTERNS for name in pattern.calls}


# --- where compiled code is ----------------------------------------------------------------------


@dataclass
class _Function:
    node: cst.FunctionDef
    qualname: str
    owner: cst.ClassDef | None
    decorators: set[str]


@dataclass(frozen=True)
class _Site:
    """A pattern found in a compiled function; ``calls`` lead from the compiled function to it."""

    pattern: Pattern
    node: cst.CSTNode
    name: str  # what the message names ({name})
    function: _Function
    calls: tuple[tuple[_Function, cst.Call], ...]


class _Index(cst.CSTVisitor):
    """One pass over the module: its functions, classes, torch.compile calls and logger names."""

    METADATA_DEPENDENCIES = (QualifiedNameProvider, ScopeProvider, ParentNodeProvider, PositionProvider)

    def __init__(self) -> None:
        super().__init__()
        self.functions: dict[cst.FunctionDef, _Function] = {}
        self.classes: dict[str, cst.ClassDef] = {}
        self.class_bases: dict[str, set[str]] = {}
        self.compile_calls: list[cst.Call] = []  # torch.compile(x, ...)
        self.method_compiles: list[cst.Call] = []  # x.compile(): nn.Module.compile when x is a module
        self.loggers: set[str] = set()  # qualified names bound to logging.getLogger(...)
        self._path: list[str] = []

    def names(self, node: cst.CSTNode) -> set[str]:
        return {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        qualname = ".".join([*self._path, node.name.value])
        self.classes[qualname] = node
        self.class_bases[qualname] = (
            set().union(*(self.names(base.value) for base in node.bases)) if node.bases else set()
        )
        self._path.append(node.name.value)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._path.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        parent = self.get_metadata(ParentNodeProvider, node)
        owner = self.get_metadata(ParentNodeProvider, parent) if isinstance(parent, cst.IndentedBlock) else None
        decorators = set()
        for decorator in node.decorators:
            expression = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
            decorators |= self.names(expression)
        self.functions[node] = _Function(
            node,
            ".".join([*self._path, node.name.value]),
            owner if isinstance(owner, cst.ClassDef) else None,
            decorators,
        )
        self._path += [node.name.value, "<locals>"]

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        del self._path[-2:]

    def visit_Call(self, node: cst.Call) -> None:
        if COMPILE in self.names(node.func) and node.args:
            self.compile_calls.append(node)
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
            self.method_compiles.append(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        if isinstance(node.value, cst.Call) and "logging.getLogger" in self.names(node.value.func):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    self.loggers |= self.names(target.target)


class _Module:
    """A parsed module and what the scan needs to know about it."""

    def __init__(self, source: str, path: str) -> None:
        try:
            self.wrapper = MetadataWrapper(cst.parse_module(source))
        except cst.ParserSyntaxError as e:
            raise CheckError(f"{path}:{e.editor_line}:{e.editor_column}: cannot parse: {e.message}") from None
        self.source = source
        self.path = path
        self.index = _Index()
        self.wrapper.visit(self.index)
        self.positions = self.wrapper.resolve(PositionProvider)
        self.scopes = self.wrapper.resolve(ScopeProvider)
        self.parents = self.wrapper.resolve(ParentNodeProvider)
        self._qualified_names = self.wrapper.resolve(QualifiedNameProvider)
        self.by_qualname = {f.qualname: f for f in self.index.functions.values()}
        self.modules = self._module_classes()

    @property
    def tree(self) -> cst.Module:
        return self.wrapper.module

    def names(self, node: cst.CSTNode, external: bool = False) -> set[str]:
        """Qualified names of ``node``; ``external``: only those of imports and builtins (a local
        class called ``time`` is not the time module)."""
        names = self._qualified_names.get(node, set())
        names = names() if callable(names) else names  # LibCST resolves qualified names lazily
        return {q.name for q in names if not external or q.source is not QualifiedNameSource.LOCAL}

    def _module_classes(self) -> set[str]:
        """Qualnames of the module's ``nn.Module`` subclasses (directly or through its own classes)."""
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for qualname, bases in self.index.class_bases.items():
                if qualname not in found and bases & (_MODULE_BASES | found):
                    found.add(qualname)
                    changed = True
        return found

    def method(self, class_qualname: str, name: str) -> _Function | None:
        """``name`` defined in the class or in one of its bases of this module."""
        seen: set[str] = set()
        todo = [class_qualname]
        while todo:
            current = todo.pop(0)
            if current in seen:
                continue
            seen.add(current)
            function = self.by_qualname.get(f"{current}.{name}")
            if function is not None:
                return function
            todo += [b for b in self.index.class_bases.get(current, ()) if b in self.index.classes]
        return None

    def _instance_class(self, expression: cst.BaseExpression) -> str | None:
        """The module class ``expression`` is an instance of: ``M(...)`` or a name assigned one."""
        if isinstance(expression, cst.Call):
            classes = self.names(expression.func) & self.modules
            return next(iter(classes), None)
        if isinstance(expression, cst.Name):
            scope = self.scopes.get(expression)
            for assignment in scope[expression.value] if scope is not None else ():
                statement = getattr(assignment, "node", None)
                parent = self.parents.get(statement)
                while parent is not None and not isinstance(parent, (cst.Assign, cst.AnnAssign)):
                    parent = self.parents.get(parent)
                if parent is not None and parent.value is not None:
                    found = self._instance_class(parent.value)
                    if found:
                        return found
        return None

    def compiled(self, all_functions: bool) -> list[_Function]:
        """The functions compiled in this module (with ``all_functions``, every function but the
        ones nobody compiles: ``__init__``, which builds modules, and ``example_inputs``, which
        makes the inputs)."""
        if all_functions:
            return [f for f in self.index.functions.values() if f.node.name.value not in _NEVER_COMPILED]
        roots = [f for f in self.index.functions.values() if COMPILE in f.decorators]
        compiled_values = [call.args[0].value for call in self.index.compile_calls]
        compiled_values += [call.func.value for call in self.index.method_compiles]
        for value in compiled_values:
            if isinstance(value, cst.Name):
                roots += [self.by_qualname[q] for q in self.names(value) if q in self.by_qualname]
            cls = self._instance_class(value)
            forward = cls and self.method(cls, "forward")
            if forward:
                roots.append(forward)
        return list({id(r.node): r for r in roots}.values())

    def callees(self, function: _Function) -> Iterator[tuple[_Function, cst.Call]]:
        """The module's functions ``function`` calls by name, and methods of its class via ``self``."""
        for call in _findall(function.node.body, cst.Call):
            target = None
            if isinstance(call.func, cst.Name):
                target = next((self.by_qualname[q] for q in self.names(call.func) if q in self.by_qualname), None)
            elif (
                function.owner is not None
                and isinstance(call.func, cst.Attribute)
                and isinstance(call.func.value, cst.Name)
                and call.func.value.value == "self"
            ):
                owner = next(q for q, c in self.index.classes.items() if c is function.owner)
                target = self.method(owner, call.func.attr.value)
            if target is not None:
                yield target, call

    def reachable(self, roots: list[_Function]) -> list[tuple[_Function, tuple[tuple[_Function, cst.Call], ...]]]:
        """Every function dynamo traces from ``roots``, with the calls that lead there (first path)."""
        paths: dict[int, tuple[_Function, tuple]] = {id(r.node): (r, ()) for r in roots}
        todo = list(roots)
        while todo:
            function = todo.pop(0)
            path = paths[id(function.node)][1]
            for callee, call in self.callees(function):
                if id(callee.node) in paths or callee.decorators & (_DISABLE | _OPAQUE | {COMPILE}):
                    continue
                paths[id(callee.node)] = (callee, (*path, (function, call)))
                todo.append(callee)
        return list(paths.values())


def _findall(node: cst.CSTNode, kind: type) -> list:
    found = []

    class Collect(cst.CSTVisitor):
        def on_visit(self, n: cst.CSTNode) -> bool:
            if isinstance(n, kind):
                found.append(n)
            return not isinstance(n, cst.ClassDef)

    node.visit(Collect())
    return found


# --- the patterns ---------------------------------------------------------------------------------


def _call_name(call: cst.Call) -> str:
    """The callee as written (``t.save``): what the message names."""
    return cst.Module([]).code_for_node(call.func)


def _is_parameter(module: _Module, function: _Function, name: cst.Name) -> bool:
    """``name`` is a parameter of ``function`` that its body never rebinds."""
    scope = module.scopes.get(name)
    if scope is None:
        return False
    assignments = list(scope[name.value])
    return (
        bool(assignments)
        and all(isinstance(getattr(a, "node", None), cst.Param) for a in assignments)
        and any(p.name.value == name.value for p in _params(function.node))
    )


def _params(function: cst.FunctionDef) -> list[cst.Param]:
    params = function.params
    return [*params.posonly_params, *params.params, *params.kwonly_params]


def _sites_in(module: _Module, function: _Function, calls: tuple, root: bool) -> Iterator[_Site]:
    def site(slug: str, node: cst.CSTNode, name: str = "") -> _Site:
        return _Site(BY_SLUG[slug], node, name, function, calls)

    opaque = _opaque_locals(module, function)
    arguments = _example_arguments(module, function) if root else {}
    for call in _findall(function.node.body, cst.Call):
        names = module.names(call.func, external=True)
        pattern = next((_BY_CALL[n] for n in names if n in _BY_CALL), None)
        if pattern is not None:
            yield site(pattern.slug, call, _call_name(call))
            continue
        if isinstance(call.func, cst.Attribute):
            attr = call.func.attr.value
            receiver = call.func.value
            if attr == "tolist" and not call.args and not _integer_valued(module, receiver, arguments):
                yield site("float-tolist", call)
                continue
            if attr in _LOGGING_FUNCTIONS and (
                module.names(receiver) & module.index.loggers
                or (isinstance(receiver, cst.Call) and "logging.getLogger" in module.names(receiver.func))
            ):
                yield site("logger-method", call, attr)
                continue
            method = _method_pattern(attr, receiver, names, opaque)
            if method is not None:
                yield site(method, call, _call_name(call) if method != "path-io" else attr)
                continue
        passed = next(
            (
                a.value.value
                for a in call.args
                if isinstance(a.value, cst.Name) and opaque.get(a.value.value) == "opaque-generator"
            ),
            None,
        )
        if passed is not None:  # ``torch.randint(..., generator=gen)`` with ``gen = torch.Generator()``
            yield site("opaque-generator", call, _call_name(call))
        elif any(n.startswith("PIL.") for n in names):
            yield site("pil", call, _call_name(call))
        elif any(re.fullmatch(r"torch\.nn\.[A-Z]\w*", n) for n in names):
            yield site("module-construction", call, _call_name(call))
        elif (
            "builtins.next" in names
            and call.args
            and isinstance(call.args[0].value, cst.Name)
            and root
            and _is_parameter(module, function, call.args[0].value)
        ):
            yield site("iterator-next", call, call.args[0].value.value)
        else:
            callee = next((module.by_qualname[q] for q in module.names(call.func) if q in module.by_qualname), None)
            if callee is not None and callee.decorators & _DISABLE:
                yield site("disabled-call", call, callee.qualname)
    for node in _findall(function.node.body, (cst.If, cst.While, cst.IfExp)):
        keyword = {cst.If: "if", cst.While: "while", cst.IfExp: "if"}[type(node)]
        if _item_call(node.test) or any(_item_call(v) for v in _bound_values(module, node.test)):
            yield site("data-dependent-guard", node.test, keyword)
        elif _reduces(module, node.test):
            yield site("data-dependent-branch", node.test, keyword)
    for node in _findall(function.node.body, cst.Assert):
        # A constant message needs no branch: dynamo traces such an assert (torch._check).
        if node.msg is not None and not _constant_string(node.msg) and _reduces(module, node.test):
            yield site("assert-message", node.test)
    if root:
        iterator_params = {
            p.name.value
            for p in _params(function.node)
            if p.annotation is not None and _iterator_annotation(module, p.annotation.annotation)
        }
        iterator_params |= {name for name, value in arguments.items() if _makes_iterator(module, value)}
        for loop in _findall(function.node.body, cst.For):
            if (
                isinstance(loop.iter, cst.Name)
                and loop.iter.value in iterator_params
                and _is_parameter(module, function, loop.iter)
            ):
                yield site("iterator-for", loop.iter, loop.iter.value)
        # A yield in a nested function or lambda makes that one a generator, not the compiled function.
        found = _findall(function.node.body, (cst.Yield, cst.FunctionDef, cst.Lambda))
        nested = [n for n in found if not isinstance(n, cst.Yield)]
        direct = [y for y in found if isinstance(y, cst.Yield) and not any(_contains(n, y) for n in nested)]
        if direct:  # dynamo reports it at the def line
            yield site("generator", function.node.name)


_PATH_IO = frozenset({"open", "read_text", "write_text", "read_bytes", "write_bytes"})
_OPTIMIZER = re.compile(r"optim|^opt$", re.I)
_UFUNC_METHOD = re.compile(r"numpy\.\w+\.(at|reduceat|outer|accumulate)")
# Patterns whose calls return an object dynamo cannot trace: a method called on it breaks too.
_OPAQUE_RESULTS = frozenset({"pil", "untraceable-object", "numpy-unsupported", "opaque-generator", "host-state"})


def _method_pattern(attr: str, receiver: cst.BaseExpression, names: set[str], opaque: dict[str, str]) -> str | None:
    """The pattern of a method call ``receiver.attr(...)``, or None."""
    if isinstance(receiver, cst.Name) and receiver.value in opaque:
        return opaque[receiver.value]  # ``buffer.seek(0)`` on ``buffer = io.BytesIO()``
    if any(_UFUNC_METHOD.fullmatch(n) for n in names):
        return "numpy-ufunc-method"
    if any(n.startswith("PIL.") for n in names):
        return None  # the PIL pattern
    if attr == "backward":
        return "backward"
    if attr == "zero_grad":
        return "zero-grad"
    last = receiver.attr.value if isinstance(receiver, cst.Attribute) else getattr(receiver, "value", "")
    if attr == "step" and isinstance(last, str) and _OPTIMIZER.search(last):
        return "optimizer-step"
    if attr in _PATH_IO and all(n.startswith("pathlib.") for n in names):  # a path, not ``gzip.open``
        return "path-io"
    return None


def _opaque_locals(module: _Module, function: _Function) -> dict[str, str]:
    """Local names ``function`` binds (``name = call(...)``) to an object dynamo cannot trace, with
    the pattern of the call that made it."""
    found = {}
    for statement in _findall(function.node.body, cst.Assign):
        if len(statement.targets) != 1 or not isinstance(statement.targets[0].target, cst.Name):
            continue
        value = statement.value
        while (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and isinstance(value.func.value, cst.Call)
        ):
            value = value.func.value  # ``Image.open(b).convert("RGB")``: what made it
        if not isinstance(value, cst.Call):
            continue
        names = module.names(value.func, external=True)
        slug = next((_BY_CALL[n].slug for n in names if n in _BY_CALL), None)
        if slug is None and any(n.startswith("PIL.") for n in names):
            slug = "pil"
        if slug in _OPAQUE_RESULTS:
            found[statement.targets[0].target.value] = slug
    return found


def _contains(outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
    return any(n is inner for n in _findall(outer, type(inner)))


# Tensor methods whose result is an integer (or bool) tensor, and those that keep the dtype: the
# `.tolist()` of such a value compiles under fullgraph=True.
_INTEGER_RESULTS = frozenset({"argmax", "argmin", "argsort", "long", "int", "short", "bool", "nonzero", "bincount"})
_SAME_DTYPE = frozenset(
    {"squeeze", "unsqueeze", "flatten", "view", "reshape", "t", "contiguous", "cpu", "detach", "clone", "T", "mT"}
)


_INTEGER_FACTORIES = frozenset({"torch.randint", "torch.randint_like", "torch.randperm"})
_INTEGER_DTYPES = frozenset(f"torch.{t}" for t in ("long", "int", "int64", "int32", "int16", "int8", "uint8", "bool"))


def _integer_valued(module: _Module, value: cst.BaseExpression, arguments: dict[str, cst.BaseExpression]) -> bool:
    """``value`` is an integer tensor as far as the source shows: ``x.argmax(-1).T``,
    ``torch.randint(...)``, anything made with an integer ``dtype=``, a local name bound once to
    one, or a parameter ``example_inputs`` passes one to (``arguments``)."""
    while True:
        if isinstance(value, cst.Subscript):
            value = value.value
        elif isinstance(value, cst.Attribute) and value.attr.value in _SAME_DTYPE:
            value = value.value
        elif (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and value.func.attr.value in _SAME_DTYPE
        ):
            value = value.func.value
        else:
            break
    if isinstance(value, cst.Call):
        if any(
            arg.keyword is not None and arg.keyword.value == "dtype" and module.names(arg.value) & _INTEGER_DTYPES
            for arg in value.args
        ):
            return True
        names = module.names(value.func)
        if names & _INTEGER_FACTORIES or (
            "torch.tensor" in names and value.args and _integer_literals(value.args[0].value)
        ):
            return True
        return isinstance(value.func, cst.Attribute) and value.func.attr.value in _INTEGER_RESULTS
    if isinstance(value, cst.Name) and (scope := module.scopes.get(value)) is not None:
        assignments = list(scope[value.value])
        if len(assignments) == 1 and isinstance(getattr(assignments[0], "node", None), cst.Param):
            argument = arguments.get(value.value)
            return argument is not None and _integer_valued(module, argument, {})
        if len(assignments) == 1:
            bound = _bound_value(module, assignments[0])
            return bound is not None and _integer_valued(module, bound, arguments)
    return False


def _integer_literals(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.List, cst.Tuple)):
        return bool(node.elements) and all(_integer_literals(e.value) for e in node.elements)
    return isinstance(node, cst.Integer)


def _bound_value(module: _Module, assignment: object) -> cst.BaseExpression | None:
    """The value of ``name = value``, when ``assignment`` is that one binding."""
    node = getattr(assignment, "node", None)
    parent = module.parents.get(node)
    statement = module.parents.get(parent) if isinstance(parent, cst.AssignTarget) else None
    if isinstance(statement, cst.Assign) and len(statement.targets) == 1 and statement.targets[0].target is node:
        return statement.value
    return None


def _bound_values(module: _Module, test: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The values of the local names ``test`` reads, each bound once (``v = t.item()`` then ``if v > 0:``)."""
    values = []
    for name in _findall(test, cst.Name):
        scope = module.scopes.get(name)
        assignments = list(scope[name.value]) if scope is not None else []
        value = _bound_value(module, assignments[0]) if len(assignments) == 1 else None
        if value is not None:
            values.append(value)
    return values


def _example_arguments(module: _Module, function: _Function) -> dict[str, cst.BaseExpression]:
    """Parameter -> the expression the module's ``example_inputs`` passes it (breakfix's inputs
    convention: a tuple of positional arguments, the instance first for a method)."""
    maker = module.by_qualname.get("example_inputs")
    returned = (
        next((r.value for r in _findall(maker.node.body, cst.Return) if r.value is not None), None) if maker else None
    )
    if isinstance(returned, cst.Name) and (scope := module.scopes.get(returned)) is not None:
        assignments = list(scope[returned.value])
        returned = _bound_value(module, assignments[0]) if len(assignments) == 1 else None
    if not isinstance(returned, cst.Tuple):
        return {}
    values = []
    for element in returned.elements:
        value = element.value
        if isinstance(value, cst.Name) and (scope := module.scopes.get(value)) is not None:
            assignments = list(scope[value.value])
            value = (_bound_value(module, assignments[0]) if len(assignments) == 1 else None) or value
        values.append(value)
    return {param.name.value: value for param, value in zip(_params(function.node), values)}


def _makes_iterator(module: _Module, value: cst.BaseExpression) -> bool:
    """``(... for ...)``, ``iter(...)`` or a call to one of the module's generator functions."""
    if isinstance(value, cst.GeneratorExp):
        return True
    if not isinstance(value, cst.Call):
        return False
    if "builtins.iter" in module.names(value.func):
        return True
    called = [module.by_qualname[q] for q in module.names(value.func) if q in module.by_qualname]
    return any(_findall(f.node.body, cst.Yield) for f in called)


def _constant_string(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.SimpleString) or (
        isinstance(node, cst.ConcatenatedString) and _constant_string(node.left) and _constant_string(node.right)
    )


def _item_call(test: cst.BaseExpression) -> bool:
    return any(isinstance(c.func, cst.Attribute) and c.func.attr.value == "item" for c in _findall(test, cst.Call))


def _reduces(module: _Module, test: cst.BaseExpression) -> bool:
    """A reduction of a tensor in ``test``: ``x.sum()`` on a value (not ``np.any`` or another imported
    module's function), or ``torch.any(...)``."""
    torch_reductions = {f"torch.{r}" for r in _REDUCTIONS}
    for call in _findall(test, cst.Call):
        names = module.names(call.func, external=True)
        if names & torch_reductions:
            return True
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in _REDUCTIONS and not names:
            return True
    return False


def _iterator_annotation(module: _Module, annotation: cst.BaseExpression) -> bool:
    base = annotation.value if isinstance(annotation, cst.Subscript) else annotation
    return bool(module.names(base) & _ITERATOR_ANNOTATIONS)


# --- findings -------------------------------------------------------------------------------------


def _sites(module: _Module, all_functions: bool, entries: list[_Function] | None = None) -> list[_Site]:
    """The sites in the module's compiled code: what its compiled functions reach, and what
    ``entries`` (functions other modules' compiled code calls) reach."""
    roots = module.compiled(all_functions)
    reached = module.reachable(roots) if not all_functions else [(r, ()) for r in roots]
    known = {id(function.node) for function, _ in reached}
    reached += [
        (f, calls)
        for f, calls in module.reachable([e for e in entries or () if id(e.node) not in known])
        if id(f.node) not in known
    ]
    root_ids = {id(r.node) for r in roots}
    seen: set[int] = set()
    sites = []
    for function, calls in reached:
        for site in _sites_in(module, function, calls, root=not calls and id(function.node) in root_ids):
            if id(site.node) not in seen:
                seen.add(id(site.node))
                sites.append(site)
    return sites


def _entries(modules: dict[str, _Module], all_functions: bool) -> dict[str, list[_Function]]:
    """Functions of each module that compiled code of another module calls (``from utils import
    helper``, ``utils.helper(...)``), found module by module until nothing new is reached: dynamo
    inlines them as it does the module's own helpers."""
    entries: dict[str, list[_Function]] = {path: [] for path in modules}
    changed = True
    while changed:
        changed = False
        for path, module in modules.items():
            roots = module.compiled(all_functions) + entries[path]
            for function, _ in module.reachable(roots):
                for call in _findall(function.node.body, cst.Call):
                    for name in module.names(call.func):
                        found = _imported_function(modules, path, name)
                        if (
                            found is not None
                            and found[1] not in entries[found[0]]
                            and not (found[1].decorators & (_DISABLE | _OPAQUE | {COMPILE}))
                        ):
                            entries[found[0]].append(found[1])
                            changed = True
    return entries


def _imported_function(modules: dict[str, _Module], importer: str, name: str) -> tuple[str, _Function] | None:
    """The function a qualified name (``utils.helper``) names in a module beside ``importer``."""
    parts = name.split(".")
    folder = os.path.dirname(importer)
    for cut in range(len(parts) - 1, 0, -1):
        path = os.path.join(folder, *parts[:cut]) + ".py"
        if path != importer and path in modules:
            function = modules[path].by_qualname.get(".".join(parts[cut:]))
            return (path, function) if function is not None else None
    return None


def _frame(module: _Module, function: _Function, node: cst.CSTNode) -> Frame:
    position = module.positions[node]
    line = module.source.splitlines()[position.start.line - 1].strip()
    return Frame(
        module.path,
        position.start.line,
        function.node.name.value,
        position.start.column,
        position.end.column if position.end.line == position.start.line else None,
        line,
    )


def _graph_break(module: _Module, site: _Site) -> GraphBreak:
    pattern = site.pattern
    frames = [_frame(module, function, call) for function, call in site.calls]
    frames.append(_frame(module, site.function, site.node))
    message = pattern.message.format(name=site.name)
    return GraphBreak(
        gb_type=gb_type_of(pattern.gb_id) if pattern.gb_id else pattern.gb_type,
        gb_id=pattern.gb_id,
        reason=message,
        explanation="",
        hints=[],
        user_stack=frames,
        project_stack=list(frames),
    )


def _root(site: _Site) -> _Function:
    return site.calls[0][0] if site.calls else site.function


def _request(module: _Module, site: _Site) -> FixRequest:
    return FixRequest(
        brk=_graph_break(module, site),
        target_file=module.path,
        target_qualname=_root(site).qualname,
        sources={module.path: module.source},
    )


def _rewrite(module: _Module, request: FixRequest, code: str) -> str | None:
    codemod = BY_CODE[code]
    if codemod.file_to_edit(request) != module.path:
        return None
    instance = codemod(CodemodContext(filename=module.path), request)
    try:
        result = instance.transform_module(module.tree)
    except SkipFile:
        return None
    except Exception:  # noqa: BLE001 -- a codemod that fails on this site offers no fix; the check goes on
        return None
    return result.code if result.code != module.source else None


def _suppressed(source: str) -> dict[int, set[str] | None]:
    """line -> codes its ``# breakfix: ignore[...]`` comment names (None: all)."""
    found: dict[int, set[str] | None] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT and (match := _SUPPRESSION.search(token.string)):
                codes = match["codes"]
                found[token.start[0]] = (
                    None if codes is None else {c.strip().upper() for c in codes.split(",") if c.strip()}
                )
    except (tokenize.TokenError, SyntaxError):
        pass
    return found


def _is_suppressed(finding: Finding, suppressions: dict[int, set[str] | None]) -> bool:
    for line in {finding.line, finding.end_line}:
        if line in suppressions and (suppressions[line] is None or finding.code in suppressions[line]):
            return True
    return False


def _finding(module: _Module, site: _Site) -> Finding:
    request = _request(module, site)
    brk = request.brk
    code = site.pattern.fallback
    for candidate in classifier.candidates(brk):
        # The fallback answers the site either way: only the codemods tried before it need a trial.
        if candidate.CODE == site.pattern.fallback or _rewrite(module, request, candidate.CODE) is not None:
            code = candidate.CODE
            break
    position = module.positions[site.node]
    return Finding(
        code=code,
        gb_id=brk.gb_id,
        gb_type=brk.gb_type,
        message=f"likely graph break: {brk.reason}",
        path=module.path,
        line=position.start.line,
        col=position.start.column,
        end_line=position.end.line,
        end_col=position.end.column,
        pattern=site.pattern.slug,
        function=site.function.qualname,
        compiled=_root(site).qualname,
    )


def scan_source(source: str, path: str, *, all_functions: bool = False) -> list[Finding]:
    """The likely graph breaks in ``source`` (read as ``path``), suppressions applied, in source order.
    Raises ``CheckError`` when the source does not parse."""
    return scan_sources({path: source}, all_functions=all_functions)[path]


def scan_sources(sources: dict[str, str], *, all_functions: bool = False) -> dict[str, list[Finding]]:
    """The likely graph breaks of each file in ``sources`` (path -> text), following calls from
    compiled code into functions of the other files (modules beside each other). Raises
    ``CheckError`` when a source does not parse."""
    return _scan_modules({path: _Module(source, path) for path, source in sources.items()}, all_functions)


def _scan_modules(modules: dict[str, _Module], all_functions: bool) -> dict[str, list[Finding]]:
    entries = _entries(modules, all_functions)
    return {path: _findings(module, _sites(module, all_functions, entries[path])) for path, module in modules.items()}


def _findings(module: _Module, sites: list[_Site]) -> list[Finding]:
    suppressions = _suppressed(module.source)
    findings = [_finding(module, site) for site in sites]
    findings = sorted(
        (f for f in findings if not _is_suppressed(f, suppressions)), key=lambda f: (f.line, f.col, f.code)
    )
    # One finding per line: dynamo stops at the first break of a statement (``print(t.tolist())``
    # is one break for the user, not two).
    return list({f.line: f for f in reversed(findings)}.values())[::-1]


def quick_fix(source: str, path: str, finding: Finding) -> str | None:
    """The source rewritten by the codemod ``finding.code`` names, or None when it skips. Not verified."""
    try:
        module = _Module(source, path)
    except CheckError:
        return None
    wanted = (finding.line, finding.col, finding.end_line, finding.end_col, finding.pattern, finding.compiled)
    for site in _sites(module, all_functions=False) + _sites(module, all_functions=True):
        position = module.positions[site.node]
        if (
            position.start.line,
            position.start.column,
            position.end.line,
            position.end.column,
            site.pattern.slug,
            _root(site).qualname,
        ) == wanted:
            return _rewrite(module, _request(module, site), finding.code)
    return None


# --- files ------------------------------------------------------------------------------------------


@dataclass
class CheckReport:
    """What ``breakfix check`` found in its paths; the exit code policy lives here (after Black)."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per file that could not be checked
    files: int = 0

    @property
    def exit_code(self) -> int:
        """2: some file could not be checked (like ruff on a syntax error); 1: findings; 0: clean."""
        return 2 if self.errors else 1 if self.findings else 0


_SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "node_modules"})


def python_files(paths: list[str]) -> Iterator[str]:
    """The files to check: each file as given, and the ``*.py`` files under each directory (hidden
    directories, caches and installed packages left out), in a stable order."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
            yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


def check_paths(paths: list[str], *, all_functions: bool = False) -> CheckReport:
    """Scan every Python file under ``paths``, following calls between them; a file that cannot be
    read or parsed is an error, and the others are still checked."""
    report = CheckReport()
    modules = {}
    for path in python_files(paths):
        report.files += 1
        try:
            modules[path] = _Module(read_source(path), path)
        except BreakfixError as e:
            report.errors.append(str(e))
    for findings in _scan_modules(modules, all_functions).values():
        report.findings += findings
    return report
