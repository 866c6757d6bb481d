"""MkDocs hook: the maths of every page as MathML, rendered when the site is built.

`pymdownx.arithmatex` (generic mode) wraps each `$...$` in `<span class="arithmatex">\\(...\\)</span>`
and each `$$...$$` in `<div class="arithmatex">\\[...\\]</div>`, docstrings rendered by
mkdocstrings included. This hook replaces their TeX by the MathML that `latex2mathml` makes of it,
so the site shows equations with no JavaScript and no network: browsers render MathML natively.
A formula that `latex2mathml` cannot read is a warning, which `mkdocs build --strict` turns
into a failed build naming the page and the formula.
"""

from __future__ import annotations

import html
import logging
import re

from latex2mathml.converter import convert

log = logging.getLogger("mkdocs.hooks.mathml")
# The element arithmatex made, its class, and the TeX inside its \( \) or \[ \] delimiters.
_MATH = re.compile(r'<(span|div) class="arithmatex">\\[(\[](.*?)\\[)\]]</\1>', re.DOTALL)


def on_page_content(content: str, page, config, files) -> str:
    """Replace the TeX of every arithmatex element of `page` by MathML."""

    def render(found: re.Match) -> str:
        tag, tex = found.group(1), html.unescape(found.group(2)).strip()
        display = "block" if tag == "div" else "inline"
        try:
            math = convert(tex, display=display)
        except Exception as error:  # latex2mathml raises several types; each is a formula it cannot read
            log.warning("%s: cannot render the formula %r as MathML: %s", page.file.src_uri, tex, error)
            return found.group(0)
        return f'<{tag} class="arithmatex">{math}</{tag}>'

    return _MATH.sub(render, content)
