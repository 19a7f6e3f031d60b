#!/usr/bin/env bash
# Opt-in: measure breakfix on other torch releases and Pythons (CI stays on torch 2.13.0 CPU).
#
#   scripts/torch-matrix.sh VERSION...          e.g. scripts/torch-matrix.sh 2.12.1 2.14.1
#
# For each torch VERSION: a venv .matrix/torch-VERSION (Python 3.11; created once: torch's default
# wheels are CUDA builds that run on CPU, about 2.2 GB and 4 minutes each), breakfix installed into it
# without touching its torch, then the fixture torch tier, the seed examples and a corpus subset.
# For each Python in PYTHONS (default "3.10 3.12 3.13", from pyenv): a venv .matrix/py-X.Y with torch
# 2.13.0, the text tier and `breakfix check`. Results: benchmarks/results/torch-matrix.{json,md}.
#
# Environment: PYTHONS ("" for none), FIXTURES (a pytest -k expression to run part of the fixture
# tier, or "sample": one positive fixture per codemod), CORPUS (corpus case patterns, default
# below), TEXT_TESTS (the text tier's test files under each Python; default all), PYTHON311 (the
# interpreter of the torch venvs).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHONS=${PYTHONS-"3.10 3.12 3.13"}
FIXTURES=${FIXTURES:-}
# One case per kind of fix, each fixed on 2.13: BF501, BF401, BF201, BF202, BF101, BF301, BF601.
CORPUS=${CORPUS:-"01_train_step_print_loss 07_mean_teacher_deepcopy_targets 10_attention_graph_break_helper 25_pil_resize_normalize 29_collate_generator_input 31_checkpoint_every_n_steps 53_adaptive_huber_branch"}
PYTHON311=${PYTHON311:-python3.11}
TEXT_TESTS=${TEXT_TESTS:-tests}
if [ "$FIXTURES" = sample ]; then  # one positive fixture per codemod
    FIXTURES="BF101_seed_next or BF201_seed_graph_break or BF202_pil_crop or BF203_lcm_helper or \
BF301_seed_torch_save or BF302_progress_bar_loop or BF303_library_constructor or BF401_no_grad_targets or \
BF402_buffer_to_dtype or BF501_print_in_layer_loop or BF502_deprecation_in_block or BF601_loss_branch or \
BF602_expert_hit_rows or BF603_global_tokens or BF604_negative_input or BF701_relative_positions or \
BF702_global_attn_sizes"
fi
PIP_QUIET=(--quiet --disable-pip-version-check)

# A venv holding the given torch, with breakfix and its test extras installed beside it: pip must
# keep that torch (pyproject declares a range), which is checked, not assumed.
prepare() {  # VENV PYTHON TORCH_VERSION
    local venv=$1 python=$2 torch=$3
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
    fi
    if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
        "$venv/bin/python" -m pip install "${PIP_QUIET[@]}" "torch==$torch"
    fi
    local before after
    before=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('torch'))")
    # What a user's `pip install .` would do to that environment: install breakfix, never another torch.
    "$venv/bin/python" -m pip install "${PIP_QUIET[@]}" --dry-run --report "$venv/install-report.json" .
    "$venv/bin/python" -c "import json, sys
names = [item['metadata']['name'] for item in json.load(open(sys.argv[1]))['install']]
sys.exit('torch-matrix: pip install . would replace torch' if 'torch' in names else 0)" "$venv/install-report.json"
    "$venv/bin/python" -m pip install "${PIP_QUIET[@]}" -e '.[test]'
    after=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('torch'))")
    if [ "$before" != "$after" ]; then
        echo "torch-matrix: installing breakfix replaced torch $before with $after in $venv" >&2
        exit 1
    fi
}

for version in "$@"; do
    venv=.matrix/torch-$version
    out=$venv/results
    echo "== torch $version ($venv)" >&2
    prepare "$venv" "$PYTHON311" "$version"
    rm -rf "$out" && mkdir -p "$out"
    "$venv/bin/python" -m breakfix --version > "$out/version.txt"
    "$venv/bin/python" -c "
import json, sys
from breakfix.codemods import REGISTRY, REQUIRED_APIS
from breakfix.torch_apis import missing_apis, torch_version, unavailable
missing = set(missing_apis(REQUIRED_APIS))
print(json.dumps({'torch': torch_version(), 'python': sys.version.split()[0], 'codemods': {
    c.CODE: unavailable(c.CODE, [a for a in c.REQUIRES if a in missing], torch_version())
    if any(a in missing for a in c.REQUIRES) else 'yes' for c in REGISTRY}}, indent=1))" > "$out/codemods.json"
    # A failing test is a measurement here, not the end of the run.
    "$venv/bin/python" -m pytest tests/test_seed_examples.py -q -p no:cacheprovider \
        --junitxml "$out/seeds.xml" > "$out/seeds.log" 2>&1 || true
    "$venv/bin/python" -m pytest tests/test_fixtures.py -m torch -q -p no:cacheprovider ${FIXTURES:+-k "$FIXTURES"} \
        --junitxml "$out/fixtures.xml" > "$out/fixtures.log" 2>&1 || true
    only=()
    for case in $CORPUS; do only+=(--only "$case"); done
    "$venv/bin/python" benchmarks/corpus/run.py "${only[@]}" --jobs 1 \
        --out "$out/corpus" > "$out/corpus.log" 2>&1 || true
done

for py in $PYTHONS; do
    interpreter=$(ls -d ~/.pyenv/versions/"$py".*/bin/python 2>/dev/null | sort -V | tail -1)
    if [ -z "$interpreter" ]; then
        echo "torch-matrix: no Python $py under pyenv; skipped" >&2
        continue
    fi
    venv=.matrix/py-$py
    out=$venv/results
    echo "== Python $py ($venv)" >&2
    prepare "$venv" "$interpreter" 2.13.0
    rm -rf "$out" && mkdir -p "$out"
    "$venv/bin/python" -m breakfix --version > "$out/version.txt"
    "$venv/bin/python" -m pytest $TEXT_TESTS -m "not torch" -q -p no:cacheprovider \
        --junitxml "$out/text.xml" > "$out/text.log" 2>&1 || true
    # Exit 1 is the expected answer (examples/ has likely breaks); 2 or a traceback is a failure.
    set +e
    "$venv/bin/python" -m breakfix check examples --format json > "$out/check.json" 2> "$out/check.err"
    echo $? > "$out/check.exit"
    set -e
done

"$PYTHON311" benchmarks/torch_matrix/report.py "$@" ${PYTHONS:+--pythons $PYTHONS}
