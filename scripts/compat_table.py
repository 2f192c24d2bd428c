"""The tables of docs/compat.md: ``subinterp_rs.check`` over the stdlib's extension modules and
twenty widely used PyPI packages, per Python.

    python scripts/compat_table.py run      # this Python: docs/assets/compat/compat-X.Y.json
    python scripts/compat_table.py render   # every JSON there -> docs/assets/compat/table.md

``run`` checks the modules of :data:`PACKAGES` that this environment has (install them first,
wheels only: ``pip install --only-binary :all: PACKAGE``; they are not test dependencies) and
every stdlib module that is a shared-library extension here, under the isolated config (a
refusal is retried under the legacy config by the check itself).
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "assets" / "compat"

PACKAGES: dict[str, tuple[str, str]] = {
    # distribution: (module checked, what it is)
    "numpy": ("numpy", "arrays"),
    "pandas": ("pandas", "data frames"),
    "pydantic": ("pydantic", "validation (pydantic-core, PyO3)"),
    "orjson": ("orjson", "JSON (PyO3)"),
    "msgpack": ("msgpack", "MessagePack"),
    "regex": ("regex", "regular expressions"),
    "lxml": ("lxml.etree", "XML"),
    "PyYAML": ("yaml", "YAML (libyaml)"),
    "MarkupSafe": ("markupsafe", "HTML escaping"),
    "cryptography": ("cryptography.fernet", "cryptography (PyO3)"),
    "psutil": ("psutil", "system information"),
    "simplejson": ("simplejson", "JSON"),
    "ujson": ("ujson", "JSON"),
    "charset-normalizer": ("charset_normalizer", "encoding detection"),
    "pillow": ("PIL.Image", "images"),
    "SQLAlchemy": ("sqlalchemy", "SQL toolkit"),
    "zstandard": ("zstandard", "compression"),
    "aiohttp": ("aiohttp", "HTTP client/server"),
    "Jinja2": ("jinja2", "templates"),
    "requests": ("requests", "HTTP client"),
}


def stdlib_extensions() -> list[str]:
    """The stdlib modules that are shared-library extension modules on this Python."""
    names = []
    for name in sorted(sys.stdlib_module_names):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            names.append(name)
    return names


def run() -> Path:
    from subinterp_rs.check import check

    packages = {}
    for dist, (module, _) in PACKAGES.items():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        packages[module] = (dist, version)
    modules = list(packages) + stdlib_extensions()
    results = check(modules, jobs=2)
    rows = []
    for r in results:
        dist, version = packages.get(r.module, ("(stdlib)", ""))
        rows.append(
            {
                "module": r.module,
                "distribution": dist,
                "version": version,
                "status": r.status,
                "reason": r.reason,
                "missing_extensions": list(r.missing_extensions),
                "signal": r.signal,
                "legacy_loads": r.legacy_loads,
            }
        )
    version = sys.version.split()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"compat-{sys.version_info[0]}.{sys.version_info[1]}.json"
    path.write_text(json.dumps({"python": version, "results": rows}, indent=1) + "\n")
    return path


def _cell(row: dict[str, object]) -> str:
    status = row["status"]
    if status == "loads":
        return "loads"
    if status == "loads-without-accelerators":
        missing = ", ".join(f"`{m}`" for m in row["missing_extensions"])  # type: ignore[attr-defined]
        return f"loads, without {missing}"
    if status == "crashes":
        return f"**crashes** ({row['reason']})"
    legacy = row["legacy_loads"]
    tail = {True: "; legacy: loads", False: "; legacy: refuses", None: ""}[legacy]  # type: ignore[index]
    return f"refuses{tail}"


def render() -> Path:
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("compat-*.json"))]
    pythons = [r["python"] for r in runs]
    by_module: dict[str, dict[str, dict[str, object]]] = {}
    meta: dict[str, str] = {}
    for r in runs:
        for row in r["results"]:
            by_module.setdefault(row["module"], {})[r["python"]] = row
            if row["distribution"] != "(stdlib)":
                meta[row["module"]] = f"{row['distribution']} {row['version']}"
    lines = []
    for title, packages in (("PyPI packages", True), ("Stdlib extension modules", False)):
        lines += [f"#### {title}", "", "| module | " + " | ".join(pythons) + " |"]
        lines.append("|---|" + "---|" * len(pythons))
        for module in sorted(m for m in by_module if (m in meta) == packages):
            label = f"`{module}`" + (f" ({meta[module]})" if module in meta else "")
            absent = "not installed" if module in meta else "-"
            cells = [
                _cell(by_module[module][p]) if p in by_module[module] else absent for p in pythons
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    path = OUT / "table.md"
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "run"
    if what not in ("run", "render"):
        raise SystemExit(f"usage: {sys.argv[0]} run|render")
    print(run() if what == "run" else render())
