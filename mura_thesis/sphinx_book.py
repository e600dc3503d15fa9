"""A Sphinx extension for the thesis' Jupyter Book (listed in ``_config.yml``).

- **Tables are numbered as tables.**  A glued output shown with ``{glue:figure}`` under a name
  that starts with ``tab-`` (``thesis_table_prefix``) is numbered and referenced as "Table N"
  instead of "Fig. N"; its caption is the directive's text, as for a figure.
- **Appendices are lettered.**  The chapters of the table-of-contents part whose caption is
  ``thesis_appendix_caption`` ("Appendices") are numbered A, B, ... instead of continuing the
  chapter numbers: "Appendix A", sections "A.1", figures "Fig. A.1".
- **MathJax is served from the book.**  The MathJax 3 files that ``mathjax_path`` names are
  shipped in ``mura_thesis/static/mathjax`` and copied into the book's ``_static`` folder, so that
  equations render without a network connection.
"""

from __future__ import annotations

import string
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

STATIC = Path(__file__).parent / "static"


class table_figure(nodes.figure):  # noqa: N801 (docutils names node classes in lower case)
    """A glued table with a caption: rendered as a figure, numbered in the ``table`` sequence."""


def _visit_table_figure(self, node):
    self.visit_figure(node)


def _depart_table_figure(self, node):
    self.depart_figure(node)


class NumberTablesAsTables(SphinxTransform):
    """Turn ``{glue:figure}`` nodes named ``tab-*`` into ``table_figure`` nodes (before the
    domains collect labels, so that references to them say "Table")."""

    default_priority = 800

    def apply(self, **kwargs) -> None:
        prefix = self.config.thesis_table_prefix
        for figure in list(self.document.findall(nodes.figure)):
            if type(figure) is not nodes.figure or not any(name.startswith(prefix) for name in figure["names"]):
                continue
            table = table_figure(figure.rawsource, *figure.children, **figure.attributes)
            table.source, table.line = figure.source, figure.line
            figure.replace_self(table)
            for identifier in table["ids"]:
                self.document.ids[identifier] = table
            for name in table["names"]:
                if self.document.nameids.get(name) in table["ids"]:
                    self.document.ids[self.document.nameids[name]] = table


def appendix_documents(app) -> list[str]:
    """The documents of the table-of-contents part captioned ``thesis_appendix_caption``."""
    site_map = getattr(app.env, "external_site_map", None)
    if site_map is None:
        return []
    caption = app.config.thesis_appendix_caption
    found: list[str] = []
    for docname in site_map:
        for tree in site_map[docname].subtrees:
            if tree.caption == caption:
                found += [name for name in tree.files() if name not in found]
    return found


def _letter(index: int) -> str:
    return string.ascii_uppercase[index] if index < 26 else f"A{index - 25}"


def _relabel(numbers, chapter, letter, title: str | None = None):
    if not numbers or numbers[0] != chapter:
        return numbers
    if title is not None and len(numbers) == 1:
        return type(numbers)([title])
    return type(numbers)([letter, *numbers[1:]])


def letter_appendices(app, env) -> list[str]:
    """After Sphinx has numbered sections and figures, give the appendices letters."""
    appendices = [doc for doc in appendix_documents(app) if isinstance(env.toc_secnumbers.get(doc, {}).get(""), tuple)]
    changed = []
    for index, docname in enumerate(appendices):
        chapter = env.toc_secnumbers[docname][""][0]
        if not isinstance(chapter, int):
            continue  # already lettered in this build
        letter = _letter(index)
        title = f"{app.config.thesis_appendix_word} {letter}"
        secnumbers = env.toc_secnumbers[docname]
        for anchor, numbers in secnumbers.items():
            secnumbers[anchor] = _relabel(numbers, chapter, letter, title if anchor == "" else None)
        for figures in env.toc_fignumbers.get(docname, {}).values():
            for identifier, numbers in figures.items():
                figures[identifier] = _relabel(numbers, chapter, letter)
        for reference in env.tocs[docname].findall(nodes.reference):
            if reference.get("secnumber"):
                top = reference.get("anchorname", "") == ""
                reference["secnumber"] = _relabel(reference["secnumber"], chapter, letter, title if top else None)
        if env.titles.get(docname) is not None and env.titles[docname].get("secnumber"):
            env.titles[docname]["secnumber"] = _relabel(env.titles[docname]["secnumber"], chapter, letter, title)
        changed.append(docname)
    return changed


def add_static_path(app, config) -> None:
    if str(STATIC) not in config.html_static_path:
        config.html_static_path.append(str(STATIC))


def setup(app):
    app.add_config_value("thesis_table_prefix", "tab-", "env")
    app.add_config_value("thesis_appendix_caption", "Appendices", "env")
    app.add_config_value("thesis_appendix_word", "Appendix", "env")
    visitors = (_visit_table_figure, _depart_table_figure)
    app.add_enumerable_node(
        table_figure, "table", html=visitors, latex=visitors, text=visitors, man=visitors, texinfo=visitors
    )
    app.add_transform(NumberTablesAsTables)
    app.connect("config-inited", add_static_path)
    app.connect("env-get-updated", letter_appendices, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
