"""Build the temporary project a model is benchmarked in: the copied modeling file and target.py.

The copy is the only project file breakfix may edit; everything else (configs, activations,
modeling_utils) is imported from the installed transformers, which breakfix never touches.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import libcst as cst
from specs import ModelSpec


class _AbsoluteImports(cst.CSTTransformer):
    """``from ..x import y`` -> ``from transformers.models.x import y``, resolved against ``package``."""

    def __init__(self, package: str) -> None:
        self.package = package.split(".")

    def leave_ImportFrom(self, original: cst.ImportFrom, updated: cst.ImportFrom) -> cst.ImportFrom:
        level = len(updated.relative)
        if level == 0:
            return updated
        if level > len(self.package):
            raise ValueError(f"relative import beyond {'.'.join(self.package)}")
        base = self.package[: len(self.package) - level + 1]
        tail = cst.Module([]).code_for_node(updated.module).split(".") if updated.module else []
        return updated.with_changes(relative=(), module=cst.parse_expression(".".join(base + tail)))


def absolute_imports(source: str, package: str) -> str:
    return cst.parse_module(source).visit(_AbsoluteImports(package)).code


TARGET = '''\
"""Benchmark target for {name}: a tiny random {model_class}, called once."""

import torch

import transformers

import {module}


def example_inputs():
    torch.manual_seed(0)
    config = transformers.{config_class}(**{config!r})
    model = {module}.{model_class}(config).eval()
    generator = torch.Generator().manual_seed(1)
{inputs}
    return (model, *inputs)


def forward(model, {params}):
    with torch.no_grad():
        return model({call}).{output}
'''

_INPUTS = {
    "lm": ("input_ids", "    inputs = (torch.randint(3, {vocab}, ({batch}, {seq}), generator=generator),)"),
    "seq2seq": (
        "input_ids, decoder_input_ids",
        "    inputs = (torch.randint(3, {vocab}, ({batch}, {seq}), generator=generator),\n"
        "              torch.randint(3, {vocab}, ({batch}, {dec}), generator=generator))",
    ),
    "whisper": (
        "input_features, decoder_input_ids",
        "    frames = 2 * config.max_source_positions\n"
        "    inputs = (torch.randn({batch}, config.num_mel_bins, frames, generator=generator),\n"
        "              torch.randint(3, {vocab}, ({batch}, {dec}), generator=generator))",
    ),
}


def build(spec: ModelSpec, modeling_file: Path, package: str, root: Path) -> str:
    """Write the project under ``root``; return the module name of the copy."""
    module = modeling_file.stem
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / modeling_file.name).write_text(absolute_imports(modeling_file.read_text(), package))
    names, inputs = _INPUTS[spec.inputs]
    names = names.split(", ")
    if spec.attention_mask:
        names.insert(1, "attention_mask")
        inputs += "\n    inputs = (inputs[0], torch.ones_like(inputs[0]), *inputs[1:])"
    params = ", ".join(names)
    call = ", ".join(f"{n}={n}" for n in names)
    (root / "target.py").write_text(
        TARGET.format(
            name=spec.name,
            model_class=spec.model_class,
            config_class=spec.config_class,
            module=module,
            config=spec.config,
            params=params,
            call=call,
            output=spec.output,
            inputs=inputs.format(
                vocab=spec.config.get("vocab_size", 99),
                batch=spec.batch,
                seq=spec.seq_len,
                dec=max(4, spec.seq_len // 2),
            ),
        )
    )
    return module
