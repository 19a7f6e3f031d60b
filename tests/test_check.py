"""``breakfix check``: the static scan, its quick fixes, its outputs and its pre-commit hook.

Text tier (no torch): every pattern found where it is compiled and not where it is not, every
``torch.compile`` spelling, suppression comments, codes chosen through the classifier, quick
fixes, and the CLI as users run it (``python -m breakfix check`` subprocesses: exit codes, text,
JSON, SARIF validated with sarif-pydantic). Torch tier: every pattern's examples break on the
installed torch with the GB id the table claims; a quick fix compiles; ``run --format sarif``; the
hook through the real pre-commit tool.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import HELPER_BREAK
from pydantic import BaseModel
from sarif_pydantic import Sarif

from breakfix.cli import check as check_command
from breakfix.codemods import BY_CODE, REGISTRY
from breakfix.static import PATTERNS, Finding, check_paths, quick_fix, scan_source

PROJECT = Path(__file__).resolve().parents[1]
FIXTURE = PROJECT / "fixtures" / "io_split" / "BF301_user_compile_decorator"


def scan(source: str, **kwargs) -> list[Finding]:
    return scan_source(textwrap.dedent(source), "m.py", **kwargs)


def slugs(findings: list[Finding]) -> list[str]:
    return [f.pattern for f in findings]


def segment(source: str, finding: Finding) -> str:
    """The source text a finding's range covers."""
    lines = textwrap.dedent(source).splitlines(keepends=True)
    if finding.line == finding.end_line:
        return lines[finding.line - 1][finding.col : finding.end_col]
    return (
        lines[finding.line - 1][finding.col :]
        + "".join(lines[finding.line : finding.end_line - 1])
        + lines[finding.end_line - 1][: finding.end_col]
    )


# --- patterns -------------------------------------------------------------------------------------

EXAMPLES = [pytest.param(p, i, id=f"{p.slug}-{i}") for p in PATTERNS for i in range(len(p.examples))]


@pytest.mark.parametrize(("pattern", "index"), EXAMPLES)
def test_every_example_is_found_when_compiled_and_only_then(pattern, index) -> None:
    example = pattern.examples[index]
    compiled = scan_source(example + "\n\ncompiled = torch.compile(f)\n", "m.py")
    assert [(f.pattern, f.gb_id, f.function) for f in compiled] == [(pattern.slug, pattern.gb_id, "f")]
    finding = compiled[0]
    assert finding.code in {c.CODE for c in REGISTRY}
    assert finding.message.startswith("likely graph break: ")
    assert segment(example, finding).strip(), "the range covers the offending code"
    assert scan_source(example, "m.py") == [], "f is not compiled: nothing to report"
    assert slugs(scan_source(example, "m.py", all_functions=True)) == [pattern.slug]


def test_every_call_the_table_names_has_an_example() -> None:
    for pattern in PATTERNS:
        for name in pattern.calls:
            short = name.removeprefix("builtins.").rsplit(".", 1)[-1]
            if pattern.slug == "logging-function" and short not in ("warning", "info"):
                continue  # one Logger-less call per kind is enough: they share logging's root logger path
            assert any(f"{short}(" in example for example in pattern.examples), (pattern.slug, name)


RANGES = [
    ("print('a', x)", "print('a', x)"),
    ("y = x.tolist()", "x.tolist()"),
    ("torch._dynamo.graph_break()", "torch._dynamo.graph_break()"),
    ("if x.sum() > 0:\n    pass", "x.sum() > 0"),
    ("logging.info(\n    'multi-line'\n)", "logging.info(\n        'multi-line'\n    )"),
]


@pytest.mark.parametrize(("statement", "covered"), RANGES)
def test_a_finding_covers_the_offending_expression(statement: str, covered: str) -> None:
    source = (
        "import logging\nimport torch\n\n\n@torch.compile\ndef f(x):\n"
        + textwrap.indent(statement, "    ")
        + "\n    return x\n"
    )
    (finding,) = scan_source(source, "m.py")
    assert segment(source, finding) == covered


NEGATIVES = {
    "shadowed print": """
        import torch

        def print(*args):
            return None

        @torch.compile
        def f(x):
            print(x)
            return x
    """,
    "an object's info() is not a Logger method": """
        import torch

        class Meter:
            def info(self, x):
                return x

        meter = Meter()

        @torch.compile
        def f(x):
            meter.info(x)
            return x
    """,
    "branches on shapes, flags and numpy are static": """
        import numpy as np
        import torch

        @torch.compile
        def f(x, flag: bool):
            if x.shape[0] > 0 and flag:
                x = x + 1
            if np.any(np.zeros(2)):
                x = x - 1
            while x.dim() > 3:
                x = x[0]
            return x
    """,
    "an assert on a tensor's value with a constant message compiles": """
        import torch

        @torch.compile
        def f(x):
            assert x.sum() > -100, "the sum " "is too small"
            assert x.shape[0] > 0, f"empty: {x.shape}"
            return x
    """,
    ".tolist() of an integer tensor compiles": """
        import torch

        @torch.compile
        def f(logits):
            preds = logits.argmax(dim=-1)
            return preds.tolist(), logits.argmax(-1).T.tolist(), logits[0].long().squeeze(0).tolist()
    """,
    "next() on a local iterator is traced": """
        import torch

        @torch.compile
        def f(xs):
            it = iter(xs)
            return next(it)
    """,
    "a rebound parameter is no longer the caller's iterator": """
        import torch

        @torch.compile
        def f(xs):
            xs = iter(list(xs))
            return next(xs)
    """,
    "for over an unannotated parameter (a list compiles)": """
        import torch

        @torch.compile
        def f(xs):
            total = 0
            for x in xs:
                total = total + x
            return total
    """,
    "a generator defined inside the compiled function is traced": """
        import torch

        @torch.compile
        def f(x):
            def gen():
                yield x + 1
            return sum(gen())
    """,
    "torch.nn.functional is not module construction": """
        import torch

        @torch.compile
        def f(x):
            return torch.nn.functional.relu(x)
    """,
    "an undecorated helper is traced": """
        import torch

        def g(x):
            return x + 1

        @torch.compile
        def f(x):
            return g(x) * 2
    """,
    "a local tqdm and a local time are not the libraries": """
        import torch

        def tqdm(xs):
            return xs

        class time:
            @staticmethod
            def time():
                return 1.0

        @torch.compile
        def f(x):
            for _ in tqdm(range(2)):
                x = x + time.time()
            return x
    """,
    "re.compile is not torch.compile": """
        import re

        def f(x):
            print(x)

        pattern = re.compile(f)
    """,
    "not an nn.Module: its forward is not compiled": """
        import torch

        class NotAModule:
            def forward(self, x):
                print(x)
                return x

        compiled = torch.compile(NotAModule())
    """,
    "helpers marked disable or nonstrict_trace are not traced into": """
        import torch

        @torch._dynamo.nonstrict_trace
        def opaque(x):
            print(x)
            return x

        @torch.compile
        def f(x):
            return opaque(x)
    """,
}


@pytest.mark.parametrize("source", NEGATIVES.values(), ids=NEGATIVES.keys())
def test_negative(source: str) -> None:
    assert scan(source) == []


# Look-alikes of the patterns that compile with fullgraph=True: not reported (text tier), and
# compiled without a break on the installed torch (torch tier).
COMPILES = {
    "tolist-of-argmax": "y = x.argmax(-1).tolist()\nreturn x + y",
    "assert-constant-message": "assert x.sum() > -100, 'too small'\nreturn x + 1",
    "branch-on-shape": "if x.shape[0] > 1:\n    return x + 1\nreturn x",
    "next-on-local-iterator": "it = iter([x, x + 1])\nreturn next(it) + next(it)",
    "local-generator": "def gen():\n    yield x + 1\nreturn sum(gen())",
    "functional": "return torch.nn.functional.relu(x)",
}


@pytest.mark.parametrize("body", COMPILES.values(), ids=COMPILES.keys())
def test_look_alikes_are_not_reported(body: str) -> None:
    source = "import torch\n\n\n@torch.compile\ndef f(x):\n" + textwrap.indent(body, "    ") + "\n"
    assert scan_source(source, "m.py") == []


# --- what is compiled -----------------------------------------------------------------------------

SPELLINGS = {
    "import torch as t; @t.compile": """
        import torch as t

        @t.compile
        def target(x):
            print(x)
            return x
    """,
    "from torch import compile": """
        from torch import compile

        @compile
        def target(x):
            print(x)
            return x
    """,
    "from torch import compile as c; @c(fullgraph=True)": """
        from torch import compile as c

        @c(fullgraph=True)
        def target(x):
            print(x)
            return x
    """,
    "@torch.compile(fullgraph=True) under another decorator": """
        import functools
        import torch

        @functools.lru_cache
        @torch.compile(fullgraph=True, backend="eager")
        def target(x):
            print(x)
            return x
    """,
    "torch.compile(fn)": """
        import torch

        def target(x):
            print(x)
            return x

        fast = torch.compile(target, backend="eager")
    """,
    "torch.compile(model) of an instance by name": """
        import torch
        from torch import nn

        class Net(nn.Module):
            def forward(self, x):
                print(x)
                return x

        def main():
            model = Net()
            return torch.compile(model)
    """,
    "torch.compile(Net()) of a subclass of a local module": """
        import torch

        class Base(torch.nn.Module):
            pass

        class Net(Base):
            def forward(self, x):
                print(x)
                return x

        compiled = torch.compile(Net())
    """,
    "model.compile()": """
        import torch.nn

        class Net(torch.nn.Module):
            def forward(self, x):
                print(x)
                return x

        model = Net()
        model.compile()
    """,
}


@pytest.mark.parametrize("source", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_compiled_in_every_spelling(source: str) -> None:
    (finding,) = scan(source)
    assert finding.pattern == "print" and finding.function.rpartition(".")[2] in ("target", "forward")


def test_methods_and_helpers_the_compiled_code_calls_are_scanned_with_their_call_path() -> None:
    source = """
        import torch

        def log_it(x):
            print(x)

        def unrelated(x):
            print(x)

        class Net(torch.nn.Module):
            def forward(self, x):
                return self.step(x)

            def step(self, x):
                log_it(x)
                return x.tolist()

        net = torch.compile(Net())
    """
    findings = scan(source)
    assert [(f.pattern, f.function, f.compiled) for f in findings] == [
        ("print", "log_it", "Net.forward"),
        ("float-tolist", "Net.step", "Net.forward"),
    ]


# --- codes, suppression, quick fixes ----------------------------------------------------------------

PURE_HELPER = """
    import torch

    def helper(x):
        y = x.sin()
        torch._dynamo.graph_break()
        return y.cos()

    @torch.compile
    def f(x):
        return helper(x + 1) * 2
"""


def test_codes_come_from_the_classifier_and_the_codemod_that_rewrites_the_site() -> None:
    (in_helper,) = scan(PURE_HELPER)
    assert (in_helper.code, in_helper.gb_id, in_helper.compiled) == ("BF201", "GB0025", "f")
    fixed = quick_fix(textwrap.dedent(PURE_HELPER), "m.py", in_helper)
    assert "torch._dynamo.nonstrict_trace(helper)(x + 1) * 2" in fixed
    # The same break in the compiled function itself: no helper to trace, so the split answers it.
    in_frame = scan(PURE_HELPER, all_functions=True)
    assert [(f.function, f.code) for f in in_frame] == [("helper", "BF301")]
    (iterator,) = scan("import torch\n\n@torch.compile\ndef f(xs):\n    return next(xs) + 1\n")
    assert iterator.code == "BF101"


SUPPRESSED = """
    import torch

    @torch.compile
    def f(x):
        print(x)  # breakfix: ignore[BF501]
        print(x)  # breakfix: ignore[BF101]
        print(x)  # breakfix: ignore
        print(x)  # noqa
        print(
            x,
        )  # breakfix: ignore[bf101, BF501]
        s = "# breakfix: ignore"; print(s)
        return x
"""


def test_suppression_comments() -> None:
    findings = scan(SUPPRESSED)
    assert [f.line for f in findings] == [7, 9, 13]
    assert all(f.code == "BF501" for f in findings)


def test_quick_fix_of_a_user_compiled_function_is_the_fixture() -> None:
    """BF301 on a function compiled with ``@t.compile(backend=..., dynamic=...)``: the decorator
    becomes torch.compiler.disable (an orchestrator under torch.compile is GB0098) and its options
    go to the pieces; the fixture's after.py is exactly what the codemod writes."""
    before = (FIXTURE / "before.py").read_text()
    (finding,) = scan_source(before, "before.py")
    assert (finding.code, finding.pattern) == ("BF301", "print")
    assert quick_fix(before, "before.py", finding) == (FIXTURE / "after.py").read_text()


def test_quick_fix_is_none_when_the_codemod_skips() -> None:
    # BF501 takes no print to a file; BF301 finds nothing left to compile around it.
    source = "import sys\n\nimport torch\n\n@torch.compile\ndef f(x):\n    print(x, file=sys.stderr)\n"
    (finding,) = scan_source(source, "m.py")
    assert finding.code == "BF301"
    assert quick_fix(source, "m.py", finding) is None
    stale = Finding(**{**finding.__dict__, "line": 99, "end_line": 99})
    assert quick_fix(source, "m.py", stale) is None


@pytest.mark.parametrize("decorator", ["@t.compile", "@torch.compile(backend='eager')"])
def test_quick_fix_for_next_on_an_iterator_parameter(decorator: str) -> None:
    source = f"import torch\nimport torch as t\n\n\n{decorator}\ndef g(xs):\n    a = next(xs)\n    return a + 1\n"
    (finding,) = scan_source(source, "m.py")
    assert finding.code == "BF101"
    fixed = quick_fix(source, "m.py", finding)
    assert decorator not in fixed and "@torch.compiler.disable\ndef g(xs):" in fixed
    assert "list(itertools.islice(xs, 1))" in fixed
    options = "backend='eager', " if "backend" in decorator else ""
    assert f"@torch.compile({options}fullgraph=True)\ndef _g_piece(xs):" in fixed


def test_scan_imports_no_torch_and_runs_no_code(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "import torch\nraise SystemExit('user code ran')\n\n@torch.compile\ndef f(x):\n    print(x)\n"
    )
    probe = (
        "import sys\nfrom breakfix.cli import main\n"
        "try:\n    main(['check', 'm.py'])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('torch' in sys.modules, code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "False 1", result.stderr


# --- the CLI ----------------------------------------------------------------------------------------

BROKEN = """\
import torch


@torch.compile
def f(x):
    y = x + 1
    print(y)
    return y * 2
"""
CLEAN = "import torch\n\n\n@torch.compile\ndef f(x):\n    return x + 1\n"


def check(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "breakfix", "check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "broken.py").write_text(BROKEN)
    (tmp_path / "pkg" / "sub" / "clean.py").write_text(CLEAN)
    (tmp_path / "pkg" / ".hidden").mkdir()
    (tmp_path / "pkg" / ".hidden" / "skipped.py").write_text(BROKEN)
    (tmp_path / "pkg" / "notes.txt").write_text(BROKEN)
    return tmp_path


def test_cli_text_and_exit_codes(project: Path) -> None:
    found = check(project, "pkg")
    assert found.returncode == 1, found.stderr
    line = f"{os.path.join('pkg', 'broken.py')}:7:5: BF501 likely graph break: print() in compiled code"
    assert found.stdout.splitlines()[0].startswith(line)
    assert "[GB0059 Failed to trace builtin operator]" in found.stdout
    assert "Found 1 likely graph break(s) in 2 files" in found.stdout  # .hidden/ and notes.txt are not walked
    clean = check(project, "pkg/sub/clean.py")
    assert (clean.returncode, clean.stdout.strip()) == (0, "No likely graph breaks in 1 file.")


def test_cli_a_file_that_does_not_parse_is_an_error_and_the_others_are_still_checked(project: Path) -> None:
    (project / "pkg" / "bad.py").write_text("def f(:\n")
    result = check(project, "pkg")
    assert result.returncode == 2
    assert (
        result.stderr.startswith(f"breakfix: error: {os.path.join('pkg', 'bad.py')}:")
        and "cannot parse" in result.stderr
    )
    assert "broken.py:7:5: BF501" in result.stdout
    missing = check(project, "nope.py")
    assert missing.returncode == 2 and missing.stderr.startswith("breakfix: error: ") and "nope.py" in missing.stderr


def test_cli_json(project: Path) -> None:
    result = check(project, "pkg", "--format", "json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["exit_code"] == 1 and document["files"] == 2 and document["errors"] == []
    (finding,) = document["findings"]
    assert finding | {"title": None} == {
        "file": os.path.join("pkg", "broken.py"),
        "line": 7,
        "column": 4,
        "end_line": 7,
        "end_column": 12,
        "code": "BF501",
        "title": None,
        "gb_id": "GB0059",
        "gb_type": "Failed to trace builtin operator",
        "message": "likely graph break: print() in compiled code: dynamo cannot trace console output",
        "pattern": "print",
        "function": "f",
        "compiled": "f",
        "verified": False,
    }
    assert finding["title"] == BY_CODE["BF501"].FIX_TITLE


# SARIF 2.1.0 properties sarif-pydantic does not model (so they land in its "extra" fields).
_SPEC_PROPERTIES_NOT_MODELLED = {"columnKind", "toolExecutionNotifications"}


def validate_sarif(document: dict) -> Sarif:
    """Validate with sarif-pydantic, and refuse any property it does not know (a misspelled key
    would otherwise pass as an extra), except the spec properties it does not model."""
    log = Sarif.model_validate(document)

    def walk(value, where: str) -> None:
        if isinstance(value, BaseModel):
            unknown = set(value.model_extra or {}) - _SPEC_PROPERTIES_NOT_MODELLED
            assert not unknown, f"{where}: {unknown}"
            for name in type(value).model_fields:
                if name != "properties":
                    walk(getattr(value, name), f"{where}.{name}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")

    walk(log, "$")
    assert document["version"] == "2.1.0" and document["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log.runs
    assert run.tool.driver.name == "breakfix"
    assert [r.id for r in run.tool.driver.rules] == [c.CODE for c in REGISTRY]
    for rule in run.tool.driver.rules:
        assert rule.help.text.startswith(rule.full_description.text)
        assert rule.short_description.text == BY_CODE[rule.id].FIX_TITLE
    for result in run.results:
        assert run.tool.driver.rules[result.rule_index].id == result.rule_id
    return log


def test_cli_sarif(project: Path) -> None:
    (project / "pkg" / "bad.py").write_text("def f(:\n")
    result = check(project, "pkg", "--format", "sarif")
    assert result.returncode == 2
    document = json.loads(result.stdout)
    log = validate_sarif(document)
    (run,) = log.runs
    (result_,) = run.results
    assert (result_.rule_id, result_.level.value) == ("BF501", "warning")
    assert result_.message.text.startswith("likely graph break: print() in compiled code")
    location = result_.locations[0].physical_location
    assert (location.artifact_location.uri, location.artifact_location.uri_base_id) == ("pkg/broken.py", "%SRCROOT%")
    region = location.region
    assert (region.start_line, region.start_column, region.end_line, region.end_column) == (7, 5, 7, 13)
    assert document["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.resolve().as_uri() + "/"
    assert document["runs"][0]["columnKind"] == "unicodeCodePoints"
    assert result_.properties["gbId"] == "GB0059" and result_.properties["verified"] is False
    (invocation,) = run.invocations
    assert invocation.execution_successful is False
    (notification,) = document["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert "bad.py" in notification["message"]["text"]


def test_cli_run_format_options_conflict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "breakfix", "run", "m.py:f", "--json", "--format", "sarif"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--json conflicts with --format sarif" in result.stderr


def test_check_paths_report() -> None:
    report = check_paths([str(FIXTURE)])
    assert report.files == 3 and report.errors == [] and report.exit_code == 1
    assert [f.path for f in report.findings] == [str(FIXTURE / "before.py")]  # after.py and inputs.py: none


def test_the_docs_list_every_pattern_with_its_gb_id_and_every_option() -> None:
    page = (PROJECT / "docs" / "check.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (GB\d{4}|none)\b", page, re.M))
    assert rows == {p.slug: p.gb_id or "none" for p in PATTERNS}
    options = [opt for param in check_command.params for opt in param.opts if opt.startswith("--")]
    assert options and all(opt in page for opt in options)


# --- torch tier -------------------------------------------------------------------------------------

# Compiles each example with fullgraph=True on the eager backend, in one process, and prints the
# GB id of the break it hits (or what it raised instead).
_PROBE = r"""
import importlib.util, json, re, sys, torch
results = {}
for key, path, args in json.loads(sys.argv[1]):
    torch._dynamo.reset()
    spec = importlib.util.spec_from_file_location(f"example_{len(results)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        out = torch.compile(module.f, fullgraph=True, backend="eager")(*eval(args))
        if hasattr(out, "__next__"):
            list(out)
        results[key] = "no break"
    except Exception as e:
        found = re.search(r"gb(\d{4})", str(e))
        results[key] = f"GB{found.group(1)}" if found else f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
print(json.dumps(results))
"""


@pytest.mark.torch
def test_every_example_breaks_with_the_gb_id_the_table_claims(tmp_path: Path) -> None:
    jobs, expected = [], {}
    for pattern in PATTERNS:
        if pattern.needs and importlib.util.find_spec(pattern.needs) is None:
            continue  # tqdm is not installed here: its examples cannot run
        for index, example in enumerate(pattern.examples):
            path = tmp_path / f"{pattern.slug.replace('-', '_')}_{index}.py"
            path.write_text(example)
            key = f"{pattern.slug}-{index}"
            jobs.append((key, str(path), f"({pattern.example_args},)"))
            expected[key] = pattern.gb_id or "UserError"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(jobs)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    found = {k: ("UserError" if v.startswith("UserError") and "data-dependent" in v else v) for k, v in found.items()}
    assert found == expected


@pytest.mark.torch
def test_look_alikes_compile_with_fullgraph(tmp_path: Path) -> None:
    jobs = []
    for name, body in COMPILES.items():
        path = tmp_path / f"{name.replace('-', '_')}.py"
        path.write_text("import torch\n\n\ndef f(x):\n" + textwrap.indent(body, "    ") + "\n")
        jobs.append((name, str(path), "(torch.randn(3),)"))
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(jobs)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {name: "no break" for name in COMPILES}


USER_COMPILED_ITERATOR = """\
import torch


@torch.compile(backend="eager")
def f(xs):
    a = next(xs)
    return a + next(xs)
"""


@pytest.mark.torch
@pytest.mark.parametrize(
    ("before", "args"),
    [
        pytest.param((FIXTURE / "before.py").read_text(), "torch.randn(4)", id="BF301"),
        pytest.param(USER_COMPILED_ITERATOR, "iter([torch.randn(3), torch.randn(3), torch.randn(3)])", id="BF101"),
    ],
)
def test_quick_fixes_of_user_compiled_functions_compile_and_match(tmp_path: Path, before: str, args: str) -> None:
    """Not verified by check itself: here the rewrite runs next to the original. Its pieces say
    fullgraph=True, so a break left in them raises; the orchestrator is not under torch.compile."""
    findings = scan_source(before, "before.py")
    fixed = quick_fix(before, "before.py", findings[0])
    assert fixed is not None
    (tmp_path / "before.py").write_text(before)
    (tmp_path / "after.py").write_text(fixed)
    probe = textwrap.dedent(f"""
        import contextlib, io, torch, before, after
        outputs, printed = [], []
        for module in (before, after):
            torch.manual_seed(0)
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                outputs.append(module.f(*({args},)))
            printed.append(stdout.getvalue())
        torch.testing.assert_close(outputs[1], outputs[0])
        assert printed[0] == printed[1]
        assert after.f._torchdynamo_disable
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("ok"), result.stderr[-3000:]


@pytest.mark.torch
def test_run_format_sarif(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(HELPER_BREAK)
    result = subprocess.run(
        [sys.executable, "-m", "breakfix", "run", "m.py:f", "--format", "sarif"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-2000:]  # a dry run that proposes a fix exits 1
    log = validate_sarif(json.loads(result.stdout))
    (result_,) = log.runs[0].results
    assert (result_.rule_id, result_.level.value) == ("BF201", "warning")
    assert result_.properties["status"] == "proposed" and result_.properties["gbId"] == "GB0025"
    location = result_.locations[0].physical_location
    assert (location.artifact_location.uri, location.region.start_line) == ("m.py", 6)
    assert result.stderr == "", "progress lines are silenced like with --json"


# --- pre-commit ----------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=120,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        },
    )


def _pre_commit() -> str:
    found = Path(sys.executable).with_name("pre-commit")
    return str(found) if found.exists() else shutil.which("pre-commit") or pytest.skip("pre-commit is not installed")


@pytest.mark.torch  # the hook's environment pip-installs breakfix, and so torch (about 45 s from a local wheel)
def test_pre_commit_hook(tmp_path: Path) -> None:
    """The hook as other repositories use it: pre-commit clones this project at a commit, builds its
    own environment (``language: python``) and runs ``breakfix check`` on the staged Python files."""
    hooks = tmp_path / "breakfix"
    (hooks / "src").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(PROJECT / name, hooks / name)
    shutil.copytree(
        PROJECT / "src" / "breakfix", hooks / "src" / "breakfix", ignore=shutil.ignore_patterns("__pycache__")
    )
    _git(hooks, "init", "-q")
    _git(hooks, "add", ".")
    _git(hooks, "commit", "-qm", "hooks")
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=hooks, capture_output=True, text=True, check=True).stdout
    user = tmp_path / "user"
    user.mkdir()
    _git(user, "init", "-q")
    (user / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {hooks}\n  rev: {rev.strip()}\n  hooks:\n  - id: breakfix-check\n"
    )
    (user / "broken.py").write_text(BROKEN)
    (user / "clean.py").write_text(CLEAN)
    (user / "notes.txt").write_text("print(x)\n")
    _git(user, "add", ".")
    # breakfix declares torch>=2.13.0: the hook's environment takes the torch on this machine's disk
    # (2.13.0 CPU) rather than the newest release's multi-GB CUDA build.
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "PIP_CONSTRAINT": str(constraints)}
    env.pop("PYTHONPATH", None)  # the hook runs the breakfix pre-commit installed, not this checkout

    def run(*files: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_pre_commit(), "run", "--files", *files], cwd=user, capture_output=True, text=True, env=env, timeout=900
        )

    failing = run("broken.py", "clean.py", "notes.txt")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "broken.py:7:5: BF501 likely graph break: print()" in failing.stdout
    assert "in 2 files" in failing.stdout  # types: [python] leaves notes.txt out
    passing = run("clean.py")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "breakfix check" in passing.stdout and "Passed" in passing.stdout


# --- the first hour of a new user (issue 15) ---------------------------------------------------------


def _scan(tmp_path: Path, files: dict[str, str], all_functions: bool = False) -> list[tuple[str, int, str]]:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    report = check_paths([str(tmp_path)], all_functions=all_functions)
    assert not report.errors, report.errors
    return [(os.path.basename(f.path), f.line, f.pattern) for f in report.findings]


def test_calls_into_a_sibling_module_are_followed(tmp_path: Path) -> None:
    files = {
        "utils.py": """\
            import torch


            def report(t):
                print(t.sum())
                return t


            def unused(t):
                print(t)
            """,
        "main.py": """\
            import torch

            import utils
            from utils import report


            @torch.compile
            def f(x):
                return report(x) + utils.report(x)
            """,
    }
    assert _scan(tmp_path, files) == [("utils.py", 5, "print")]


def test_all_functions_leaves_out_module_construction_in_init_and_the_inputs_maker(tmp_path: Path) -> None:
    files = {
        "m.py": """\
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 3)

            def forward(self, x):
                print(x)
                return self.fc(x)


        def example_inputs():
            torch.manual_seed(0)
            return Net(), torch.randn(2, 3)
        """
    }
    assert _scan(tmp_path, files, all_functions=True) == [("m.py", 11, "print")]


def test_tolist_of_an_integer_tensor_is_not_called_floating(tmp_path: Path) -> None:
    files = {
        "m.py": """\
        import torch


        def f(logits, labels, scores):
            a = labels.tolist()
            b = torch.randint(0, 3, (4,)).tolist()
            c = torch.zeros(3, dtype=torch.long).tolist()
            d = torch.tensor([1, 2]).tolist()
            e = scores.tolist()
            return logits


        def example_inputs():
            return torch.randn(4, 3), torch.randint(0, 3, (4,)), torch.randn(4)


        compiled = torch.compile(f)
        """
    }
    assert _scan(tmp_path, files) == [("m.py", 9, "float-tolist")]


def test_item_stored_in_a_variable_then_tested_and_an_iterator_from_example_inputs(tmp_path: Path) -> None:
    files = {
        "m.py": """\
        import numpy as np
        import torch


        def f(samples, x):
            v = x.sum().item()
            if v > 0:
                x = x + 1
            for s in samples:
                x = x + s
            return x + torch.from_numpy(np.interp([0.5], [0.0, 1.0], [0.0, 2.0]))


        def example_inputs():
            return (torch.randn(2) for _ in range(3)), torch.randn(2)


        compiled = torch.compile(f)
        """
    }
    assert _scan(tmp_path, files) == [
        ("m.py", 7, "data-dependent-guard"),
        ("m.py", 9, "iterator-for"),
        ("m.py", 11, "numpy-unsupported"),
    ]


def test_one_finding_per_line(tmp_path: Path) -> None:
    files = {
        "m.py": """\
        import torch


        @torch.compile
        def f(x):
            print(x.tolist())
            return x
        """
    }
    assert _scan(tmp_path, files) == [("m.py", 6, "print")]
