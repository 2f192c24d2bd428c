"""A griffe extension for the documentation site (mkdocs.yml loads it by path).

The package's docstrings are written for ``help()`` and Sphinx-style readers: ``:meth:`close```,
``:class:`~subinterp_rs.Subinterpreter```, and ``::`` before an indented example. mkdocstrings
renders Markdown, where those would show as raw text. This turns each role into a code span
(``~`` keeps the last dotted part, as in Sphinx), a paragraph's closing ``::`` into ``:`` and
drops a ``::`` line, before the docstrings are rendered. The docstrings themselves stay as they are.

mkdocstrings also drops the ``/`` of a signature whose parameters are all positional-only
(``exec(code, /)`` shows as ``exec(code)``): such a function's docstring gets a sentence
that says so.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["SphinxRoles", "convert"]

POSITIONAL_ONLY = "Its parameters are positional-only."

_ROLE = re.compile(r":(?:py:)?(?:meth|func|class|mod|attr|exc|data|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(\S)::$", re.M)
_LITERAL_ALONE = re.compile(r"^[ \t]*::[ \t]*$", re.M)


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def convert(text: str) -> str:
    """``text`` with Sphinx roles as code spans, ``text::`` as ``text:``, and a line that is
    only ``::`` (the literal block marker) left empty."""
    return _LITERAL_ALONE.sub("", _LITERAL.sub(r"\1:", _ROLE.sub(_role, text)))


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of the loaded objects with :func:`convert`."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
        if isinstance(obj, griffe.Function) and _all_positional_only(obj):
            if obj.docstring is None:
                obj.docstring = griffe.Docstring(POSITIONAL_ONLY, parent=obj)
            else:
                obj.docstring.value += "\n\n" + POSITIONAL_ONLY

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        # The top-level package is not one of the objects `on_object` sees.
        self.on_object(obj=pkg, loader=loader)


def _all_positional_only(func: griffe.Function) -> bool:
    """Whether ``func`` has parameters (``self``/``cls`` of a method aside) and all of them
    are positional-only."""
    params = list(func.parameters)
    if (
        params
        and func.parent is not None
        and func.parent.is_class
        and params[0].name
        in (
            "self",
            "cls",
        )
    ):
        params = params[1:]
    return bool(params) and all(p.kind is griffe.ParameterKind.positional_only for p in params)
