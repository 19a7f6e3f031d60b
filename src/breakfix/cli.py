"""Command line: parse, call the engine, hand the result to the renderer. Nothing else."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from breakfix import __version__, piece_options
from breakfix.errors import BreakfixError
from breakfix.piece_options import PieceOptions
from breakfix.types import OutputFormat, TargetSpec

if TYPE_CHECKING:
    from breakfix.locator import RunOptions
    from breakfix.render import Renderer

BACKENDS = ("aot_eager", "eager", "inductor")


class BreakfixGroup(click.Group):
    """The one exception boundary: known errors become one line and exit code 2."""

    def main(self, *args, **kwargs):  # type: ignore[override]
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.Abort:
            sys.exit(130)
        except click.ClickException as e:
            ctx = getattr(e, "ctx", None)  # usage errors carry the context the output format was recorded in
            _fail(e.format_message().replace("\n", " "), 2, ctx.meta.get("format", "text") if ctx else "text")

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except BreakfixError as e:
            _fail(str(e), e.exit_code, ctx.meta.get("format", "text"))
        except KeyboardInterrupt:
            sys.exit(130)


def _fail(message: str, exit_code: int, output_format: str) -> None:
    from breakfix.output import writer_for

    writer = writer_for(OutputFormat(output_format))
    writer.renderer.error(message)
    writer.failure(message, exit_code)
    sys.exit(exit_code)


def _record_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    # Eager, so it is recorded before the other parameters are validated: a usage error in a
    # --json run still prints its JSON error document.
    if value:
        ctx.meta["format"] = "json"
    return value


def _record_format(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        if ctx.meta.get("format", value) != value:  # --json given too
            raise click.BadParameter(f"--json conflicts with --format {value}", ctx, param)
        ctx.meta["format"] = value
    return value


FORMATS = tuple(output_format.value for output_format in OutputFormat)


def _check_spec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            TargetSpec.parse(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return value


def _print_versions(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """breakfix's version with the torch and Python it runs on (torch's read from its metadata, not imported)."""
    if not value or ctx.resilient_parsing:
        return
    from breakfix.torch_apis import torch_version

    click.echo(f"breakfix {__version__} (torch {torch_version()}, Python {platform.python_version()})")
    ctx.exit()


def _check_piece_options(ctx: click.Context, param: click.Parameter, value: str | None) -> PieceOptions | None:
    if value is None:
        return None
    try:
        return piece_options.parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


@click.group(cls=BreakfixGroup)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="Show breakfix's, torch's and Python's versions and exit.",
)
def main() -> None:
    """Find, fix and verify torch.compile graph breaks."""


def _check_specs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            TargetSpec.parse(value)
        except ValueError as e:
            raise click.BadParameter(str(e), ctx, param_hint="'TARGET'") from None
    return values


@main.command()
@click.argument("targets", metavar="[TARGET]...", nargs=-1, callback=_check_specs)
@click.option(
    "--inputs",
    "inputs",
    callback=_check_spec,
    help="MODULE:FN or FILE.py:FN returning a tuple of positional arguments.",
)
@click.option("--apply", is_flag=True, help="Write the verified rewrite (default: dry run).")
@click.option("--json", "as_json", is_flag=True, is_eager=True, callback=_record_json, help="Same as --format json.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    is_eager=True,
    callback=_record_format,
    help="text (default), json (schema: docs/json-schema.md) or sarif (SARIF 2.1.0).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="aot_eager",
    show_default=True,
    help="Backend the rewrite is verified on.",
)
@click.option("--unsafe-fixes", is_flag=True, help="Also apply fixes that change observable behaviour.")
@click.option("--max-rounds", type=click.IntRange(1), default=5, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="Seconds each worker process may run before it is killed.",
)
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False),
    default=".",
    help="Project root: only files under it are ever edited.",
)
@click.option("--rtol", type=float, default=None, help="Relative tolerance for comparing outputs (torch's default).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance for comparing outputs (torch's default).")
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="A split (the target runs eagerly and calls compiled pieces) is a fix only if its pieces "
    "compile at least this share of the original's operations.",
)
@click.option(
    "--calls",
    type=click.IntRange(2),
    default=10,
    show_default=True,
    help="Calls each verification makes on the same inputs (state carried between them); one on fresh inputs follows.",
)
@click.option(
    "--no-derived-inputs",
    "no_derived_inputs",
    is_flag=True,
    help="Verify on the example inputs only, not also on inputs of other sizes derived from them.",
)
@click.option(
    "-j",
    "--jobs",
    "parallel",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Targets worked on at once (several targets only).",
)
@click.option(
    "--piece-options",
    "piece_options_text",
    metavar="KEY=VALUE,...",
    callback=_check_piece_options,
    help="torch.compile options of new compiled pieces when the target's own are unknown, e.g. "
    "'mode=\"max-autotune\", dynamic=False' (default: [tool.breakfix] piece-options).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Print why each refused fix was refused in full (text output), the torch that verified the fixes "
    "and the private torch hooks it lacks (stderr).",
)
@click.option(
    "--emit-test",
    "emit_test",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a pytest regression test asserting zero graph breaks, once none remain on disk.",
)
@click.pass_context
def run(
    ctx: click.Context,
    targets: tuple[str, ...],
    inputs: str | None,
    apply: bool,
    as_json: bool,
    output_format: str | None,
    backend: str,
    unsafe_fixes: bool,
    max_rounds: int,
    timeout: float,
    root: str,
    rtol: float | None,
    atol: float | None,
    min_coverage: float,
    calls: int,
    no_derived_inputs: bool,
    parallel: int,
    piece_options_text: PieceOptions | None,
    verbose: bool,
    emit_test: Path | None,
) -> None:
    """Locate, fix and verify the graph breaks of each TARGET (MODULE:QUALNAME or FILE.py:QUALNAME).

    Without TARGET, the targets are those of [tool.breakfix] targets in the root's pyproject.toml.
    """
    from breakfix.batch import project_piece_options
    from breakfix.targets import check_job
    from breakfix.worker import pool

    if (rtol is None) != (atol is None):
        raise click.UsageError("--rtol and --atol must be given together", ctx)
    if emit_test is not None and emit_test.exists():
        raise click.BadParameter(f"{emit_test} exists; not overwriting it", ctx, param_hint="--emit-test")
    output_format = ctx.meta.get("format", "text")
    root_path = Path(os.path.realpath(root))
    jobs = _jobs(ctx, targets, inputs, root_path)
    piece_defaults = piece_options_text if piece_options_text is not None else project_piece_options(root_path)
    single = len(jobs) == 1 and bool(targets)
    if emit_test is not None and not single:
        raise click.UsageError("--emit-test needs exactly one TARGET", ctx)
    if single:
        check_job(jobs[0], root_path)  # at once: a misspelled qualname is reported before torch is imported
    pool.start()  # torch imports in the zygotes while the rest loads here
    from breakfix.engine import Engine
    from breakfix.locator import RunOptions
    from breakfix.output import writer_for

    writer = writer_for(OutputFormat(output_format), verbose=verbose)
    renderer = writer.renderer

    def options_for(job) -> RunOptions:
        return RunOptions(
            target=str(TargetSpec.parse(job.target).absolute(job.base)),
            inputs=job.inputs and str(TargetSpec.parse(job.inputs).absolute(job.base)),
            root=root_path,
            backend=backend,
            timeout=timeout,
            rtol=rtol,
            atol=atol,
            min_coverage=min_coverage,
            piece_options=piece_defaults,
            calls=calls,
            derived_inputs=not no_derived_inputs,
        )

    def run_one(job, progress):
        if not single:
            check_job(job, root_path)  # one target's error is its outcome; the others go on
        report = Engine(options_for(job), unsafe_fixes=unsafe_fixes, max_rounds=max_rounds, progress=progress).run(
            apply
        )
        report.target = job.target  # as the user typed it
        return report

    if single:
        report = run_one(jobs[0], renderer.progress)
        writer.run(report, str(root_path))
        if verbose:
            renderer.torch_notes(report)
        if emit_test is not None:
            _emit_test(emit_test, report.exit_code == 0, options_for(jobs[0]), renderer)
        sys.exit(report.exit_code)
    from breakfix.batch import run_all

    with renderer.batch_progress(len(jobs)) as events:
        outcomes = run_all(jobs, run_one, parallel, events)
    writer.batch(outcomes, str(root_path))
    if verbose:
        for outcome in outcomes:
            if outcome.report:
                renderer.torch_notes(outcome.report)
    sys.exit(max(outcome.exit_code for outcome in outcomes))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--all-functions", is_flag=True, help="Scan every function, not only the compiled ones.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    is_eager=True,
    callback=_record_format,
    help="text (default), json or sarif (SARIF 2.1.0).",
)
def check(paths: tuple[str, ...], all_functions: bool, output_format: str) -> None:
    """Statically find likely graph breaks in the compiled functions of PATHS (files or directories).

    Runs no code and imports no torch. Exit codes: 0 nothing found, 1 findings, 2 a file could not
    be checked. `# breakfix: ignore[CODE]` on a line suppresses its findings."""
    from breakfix.output import writer_for
    from breakfix.static import check_paths

    report = check_paths(list(paths), all_functions=all_functions)
    writer_for(OutputFormat(output_format)).check(report, os.getcwd())
    sys.exit(report.exit_code)


def _jobs(ctx: click.Context, targets: tuple[str, ...], inputs: str | None, root: Path) -> list:
    """The targets typed (all with ``--inputs``), else the project's list (each with its own inputs)."""
    from breakfix.batch import TargetJob, project_targets

    if targets:
        return [TargetJob(target, inputs, os.getcwd()) for target in targets]
    if inputs:
        raise click.UsageError("--inputs needs a TARGET", ctx)
    jobs = project_targets(root)
    if not jobs:
        raise click.UsageError(
            "Missing argument 'TARGET' (and no [tool.breakfix] targets in the root's pyproject.toml)", ctx
        )
    return jobs


# --- the catalogue: `breakfix codemods`, `breakfix explain` ------------------------------------------


@main.command()
def codemods() -> None:
    """List every codemod: code, fix, family, applicability, the GB ids it answers and whether the
    installed torch has the APIs it relies on."""
    from breakfix.codemods import REGISTRY, REQUIRED_APIS
    from breakfix.render import Renderer
    from breakfix.torch_apis import missing_apis, needs, torch_version

    missing = set(missing_apis(REQUIRED_APIS))
    availability = {}
    for codemod in REGISTRY:
        lacking = [api for api in codemod.REQUIRES if api in missing]
        availability[codemod.CODE] = f"no: needs {needs(lacking)}" if lacking else "yes"
    Renderer().catalogue(REGISTRY, availability, torch_version())


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Print the page of a codemod (BFnnn) or torch's registry entry of a GB id (GBnnnn) and its codemods."""
    from breakfix.docs import explain as explain_text
    from breakfix.render import Renderer

    Renderer().page(explain_text(code))


def _emit_test(path: Path, clean: bool, options: RunOptions, renderer: Renderer) -> None:
    """Written only when no break remains on disk, so the new test passes right away (after
    --apply, or when there was nothing to fix); never over an existing file."""
    from breakfix.errors import WriteRefused
    from breakfix.testing import regression_test_source

    if not clean:
        renderer.progress(f"not writing {path}: graph breaks remain; rerun with --apply once the fix is verified")
        return
    command = " ".join(["breakfix", *sys.argv[1:]])
    source = regression_test_source(options.target, options.inputs, options.root, path, command)
    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(source)
    except OSError as e:
        raise WriteRefused(f"cannot write {path}: {e.strerror}") from e
    renderer.progress(f"wrote {path}: a regression test asserting zero graph breaks")


@main.command()
def lsp() -> None:
    """Run the language server over stdio (needs the lsp extra: pip install 'breakfix[lsp]')."""
    try:
        from breakfix.lsp import serve
    except ImportError as e:
        if e.name and e.name.split(".")[0] in ("pygls", "lsprotocol"):
            raise BreakfixError(f"breakfix lsp needs {e.name.split('.')[0]}: pip install 'breakfix[lsp]'") from None
        raise
    serve()
