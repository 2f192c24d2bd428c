#!/usr/bin/env bash
# scripts/lint.sh -- every lint, each run even if an earlier one fails; exit 1 if any failed.
# Run it through `make lint` (= scripts/test.sh run 3.12 -- scripts/lint.sh), which builds the
# extension into the venv first and sets PYO3_PYTHON / CARGO_TARGET_DIR for clippy.
set -uo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." || exit

# The Python trees (those that have .py files).
PY_DIRS=()
for d in python tests examples bench scripts build_backend noxfile.py; do
    [[ -n $(find "$d" -name '*.py' -print -quit 2>/dev/null) ]] && PY_DIRS+=("$d")
done
failed=()
check() {
    local name=$1
    shift
    printf '==> [lint] %s\n' "$name"
    "$@" || failed+=("$name")
}

check "cargo fmt --check" cargo fmt --all --check
check "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
check "ruff check" ruff check "${PY_DIRS[@]}"
check "ruff format --check" ruff format --check "${PY_DIRS[@]}"
check "mypy --strict" python -m mypy --strict "${PY_DIRS[@]}"
# The stub of the native module (and the package's own annotations) against the built module,
# with the [tool.mypy] settings of pyproject.toml (stubtest reads no config file by itself).
check "stubtest" python -m mypy.stubtest subinterp_rs --mypy-config-file pyproject.toml \
    --allowlist scripts/stubtest-allowlist.txt
# The documentation site, warnings as errors (broken links and anchors, pages missing from the
# nav, objects mkdocstrings cannot render): mkdocs.yml sets strict; --strict says it here too.
# MkDocs is in the `docs` dependency group for Python 3.12 only, the lint leg's Python.
docs_build() {
    if ! python -c 'import mkdocs, material, mkdocstrings_handlers.python' 2>/dev/null; then
        echo "mkdocs, mkdocs-material or mkdocstrings[python] missing in $(command -v python):"
        echo "the docs dependency group installs them for Python 3.12 (make lint uses the 3.12 venv)"
        return 1
    fi
    # Not --quiet: it hides the warnings from the strict check too (the build then passes).
    NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict --site-dir target/docs-site
}
check "mkdocs build --strict" docs_build

if ((${#failed[@]})); then
    printf '==> [lint] FAILED: %s\n' "${failed[*]}"
    exit 1
fi
printf '==> [lint] all clean\n'
