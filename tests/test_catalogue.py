"""`breakfix codemods` and `breakfix explain`, run as users run them: a real `python -m breakfix`."""

from __future__ import annotations

import os
import subprocess
import sys

from breakfix import docs
from breakfix.codemods import REGISTRY


def breakfix(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "breakfix", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
        timeout=120,
    )


def test_codemods_lists_the_registry_in_order() -> None:
    result = breakfix("codemods")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ BF")]
    assert [row.split("│")[1].strip() for row in rows] == [c.CODE for c in REGISTRY]
    for row, codemod in zip(rows, REGISTRY):
        assert codemod.APPLICABILITY.value in row and codemod.FIX_TITLE in row, row


def test_explain_a_codemod_prints_its_page() -> None:
    for codemod in (REGISTRY[0], REGISTRY[-1]):
        result = breakfix("explain", codemod.CODE.lower())
        assert result.returncode == 0, result.stderr
        assert result.stdout == docs.explain(codemod.CODE)  # piped: the Markdown, as in docs/codemods/
        assert result.stdout.startswith(f"# {codemod.CODE}: {codemod.FIX_TITLE}\n")


def test_explain_a_gb_id_prints_the_registry_entry_and_its_codemods() -> None:
    result = breakfix("explain", "GB0059")
    assert result.returncode == 0, result.stderr
    entry = docs.torch_gb_registry()["GB0059"][0]
    assert result.stdout.startswith(f"# GB0059: {entry['Gb_type']}\n")
    assert entry["Explanation"] in result.stdout
    answering = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| BF")]
    assert answering == [c.CODE for c in REGISTRY if "GB0059" in c.GB_IDS]
    # An id no codemod names says so, and still points at the last resort.
    unanswered = breakfix("explain", "GB0000")
    assert unanswered.returncode == 0 and "No codemod answers this GB id specifically." in unanswered.stdout


def test_explain_renders_registry_data_not_its_unevaluated_source() -> None:
    # torch's registry holds the source of what its generator could not evaluate: GB0170 has an entry
    # with Gb_type `_gb_type` and an Explanation that is two adjacent string literals; GB0043's is
    # `msg +   + err_epilogue`; GB0007's is the variable `explanation`.
    raw = docs.torch_gb_registry()
    assert any(e["Gb_type"] == "_gb_type" for e in raw["GB0170"])
    assert any(e["Explanation"] == "explanation" for e in raw["GB0007"])
    pages = {gb_id: breakfix("explain", gb_id) for gb_id in ("GB0170", "GB0043", "GB0007", "GB0023")}
    for gb_id, result in pages.items():
        assert result.returncode == 0, result.stderr
        assert "_gb_type" not in result.stdout and "_explanation" not in result.stdout, result.stdout
        assert '" +' not in result.stdout and "+ err_epilogue" not in result.stdout, result.stdout
        assert '- Explanation: "' not in result.stdout, result.stdout
        assert "- Explanation: explanation" not in result.stdout
    assert pages["GB0170"].stdout.startswith("# GB0170: Data-dependent branching\n")
    # adjacent literals are evaluated into the text they spell, once
    assert (
        pages["GB0170"].stdout.count(
            "- Explanation: Detected data-dependent branching (e.g. `if my_tensor.sum() "
            "> 0:`). Dynamo does not support tracing dynamic control flow."
        )
        == 1
    )
    assert pages["GB0170"].stdout.count("- Gb_type:") == 1


def test_explain_an_unknown_code_is_one_line_and_exit_2() -> None:
    for code in ("BF999", "GB99999", "print"):
        result = breakfix("explain", code)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.splitlines() == [result.stderr.strip()]
        assert result.stderr.startswith(f"breakfix: error: unknown code {code!r}")
