"""Every code block of README.md, CONTRIBUTING.md and docs/**/*.md: marked with its language,
and each ```python block runs as written.

A ```python block is saved as a script and run with this Python in a child process, from an
empty directory, as a reader who copies it would run it (so a block that crosses a function of
its own ``__main__`` must guard its top-level code, as the docs tell users to). It must exit 0
with no traceback on stderr. A block that is not meant to run says so with its language
(```console, ```text, ```toml, ```rust, ...) or, for Python that cannot run here, with the
line ``<!-- docs-test: skip REASON -->`` right before it (invisible on GitHub and in the site).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from _helpers import run_python

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120

RUN = {"python"}
"""Languages whose blocks run."""
SHOWN = {"console", "text", "toml", "rust", "yaml", "ini", "diff"}
"""Languages whose blocks are shown, not run (shell sessions, output, other languages)."""

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)"
    r"^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)
_MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<what>[^>]*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    body: str
    marker: str
    """The ``docs-test:`` comment right before the block (``""`` if none)."""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        indent = len(m.group("indent"))
        # A block nested in a list item: its lines carry the item's indentation.
        body = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
        out.append(
            Block(
                path,
                text.count("\n", 0, m.start()) + 1,
                m.group("info").strip().split(" ")[0].lower(),
                body,
                marker.group("what") if marker else "",
            )
        )
    return out


BLOCKS = [b for path in _doc_files() for b in _blocks(path)]
PYTHON = [b for b in BLOCKS if b.lang in RUN]


def test_docs_have_python_blocks() -> None:
    """The extraction finds the blocks (a broken pattern would make every test vacuous)."""
    readme = [b for b in PYTHON if b.path.name == "README.md"]
    assert len(readme) >= 4, readme
    assert len(PYTHON) - len(readme) >= 8, [b.where for b in PYTHON]


def test_every_block_has_a_language() -> None:
    """A block either runs (python) or says what it is; nothing is left to guess."""
    unmarked = [f"{b.where}: '{b.lang}'" for b in BLOCKS if b.lang not in RUN | SHOWN]
    assert not unmarked, f"code blocks without a known language: {unmarked}"


def test_skip_markers_give_a_reason() -> None:
    bad = [b.where for b in BLOCKS if b.marker and not re.fullmatch(r"skip\s+\S.*", b.marker)]
    assert not bad, f"'<!-- docs-test: skip REASON -->' is the only marker: {bad}"


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.marker:
        pytest.skip(block.marker)
    script = tmp_path / "example.py"
    script.write_text(block.body, encoding="utf-8")
    proc = run_python(
        str(script),
        cwd=tmp_path,
        env={"PYTHONUNBUFFERED": "1", "PYTHONPATH": None},
        timeout=TIMEOUT,
    )
    report = (
        f"{block.where}: exit {proc.returncode}\n--- stdout:\n{proc.stdout}\n"
        f"--- stderr:\n{proc.stderr}"
    )
    assert proc.returncode == 0, report
    # A failure in a thread (call_in_thread discards them) is only printed to stderr.
    assert "Traceback" not in proc.stderr, report
