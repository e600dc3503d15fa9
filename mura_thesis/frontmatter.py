"""The thesis' front matter that the build computes: the word count of the prose.

The count covers the body of the thesis (the chapters of the first numbered part of
``_toc.yml``, chapters 1-8 with their sections), read from the markdown cells of the executed
chapters after the passages are chosen.  It counts the running text: headings, paragraphs, list
items, footnotes and the text of notes (admonitions).  It leaves out code, mathematics (with the
labels of equations), tables (list tables, pipe tables and glued tables), the captions of figures
and tables, citations, directive options, target labels, HTML comments and the provenance
box; a cross-reference or a glued value counts as one word.  The declaration
(``chapters/declaration.md``) says the same.  The staged book gets the count as the MyST
substitution ``word_count``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import yaml

# Cells the build adds to every executed chapter (see presentation.py): not part of the text.
GENERATED_TAGS = {"provenance"}
# Fenced blocks whose body is running text; every other fence (code, maths, figures and tables
# with their captions) is left out.
PROSE_DIRECTIVES = {
    "admonition",
    "note",
    "tip",
    "important",
    "warning",
    "caution",
    "attention",
    "epigraph",
    "sidebar",
}

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,}|:{3,})\s*(?P<info>[^\n]*)$")
_ROLE = re.compile(r"\{(?P<role>[\w:.-]+)\}`[^`]*`")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_DISPLAY_MATH = re.compile(r"\$\$.*?\$\$(?:[ \t]*\([\w:.-]+\))?", re.S)  # with its label
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_FOOTNOTE_MARK = re.compile(r"\[\^[^\]\s]+\]:?")
_TARGET = re.compile(r"^\s*\([\w:.-]+\)=\s*$", re.M)
_PIPE_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$", re.M)
_WORD = re.compile(r"[^\W_]+(?:[-'’.,][^\W_]+)*")


def _strip_fences(markdown: str) -> str:
    """Drop code and maths fences; of prose directives keep the argument and body, not the options."""
    kept, stack = [], []  # stack of (fence, is_prose)
    for line in markdown.splitlines():
        match = _FENCE.match(line.strip())
        if (
            match
            and stack
            and match["fence"][0] == stack[-1][0][0]
            and len(match["fence"]) >= len(stack[-1][0])
            and not match["info"]
        ):
            stack.pop()
            continue
        if match and (not stack or stack[-1][1]):
            info = match["info"].strip()
            directive = re.match(r"\{([\w:.-]+)\}\s*(.*)", info)
            prose = bool(directive) and directive.group(1) in PROSE_DIRECTIVES
            stack.append((match["fence"], prose))
            if prose:
                kept.append(directive.group(2))  # an admonition's title
            continue
        if stack and not stack[-1][1]:
            continue
        if stack and re.match(r"\s*:[\w-]+:", line):
            continue  # a directive option
        kept.append(line)
    return "\n".join(kept)


def count_words(markdown: str) -> int:
    """The number of words of prose in MyST markdown (see the module docstring for what counts)."""
    text = _COMMENT.sub(" ", markdown)
    text = _strip_fences(text)
    text = _TARGET.sub(" ", text)
    text = _PIPE_TABLE_ROW.sub(" ", text)
    text = _FOOTNOTE_MARK.sub(" ", text)
    text = _DISPLAY_MATH.sub(" ", text)
    text = _INLINE_MATH.sub(" ", text)
    text = _ROLE.sub(lambda m: " " if m["role"].startswith("cite") else " X ", text)
    text = _INLINE_CODE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    return len(_WORD.findall(text))


def notebook_prose(path: Path) -> str:
    """The markdown of a chapter as rendered: its markdown cells, without the generated boxes."""
    if path.suffix == ".md":
        text = path.read_text()
        return re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    notebook = nbformat.read(path, as_version=4)
    return "\n\n".join(
        cell.source
        for cell in notebook.cells
        if cell.cell_type == "markdown" and not set(cell.metadata.get("tags", [])) & GENERATED_TAGS
    )


def body_entries(toc: dict) -> list[str]:
    """The documents of the thesis body: the first numbered part of ``_toc.yml``, with its sections."""
    parts = toc.get("parts") or [{"numbered": True, "chapters": toc.get("chapters") or []}]
    body = next((part for part in parts if part.get("numbered")), None)
    if body is None:
        raise ValueError(
            "_toc.yml has no numbered part: the word count covers the chapters of the first numbered part."
        )
    entries = []

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    walk(body.get("chapters"))
    return entries


def staged_document(staging: Path, entry: str) -> Path:
    notebook = staging / f"{entry}.ipynb"
    return notebook if notebook.exists() else staging / f"{entry}.md"


def word_count(staging: Path) -> int:
    """Words of prose in the body chapters of a staged book."""
    toc = yaml.safe_load((staging / "_toc.yml").read_text())
    return sum(count_words(notebook_prose(staged_document(staging, entry))) for entry in body_entries(toc))


# Substitutions the build adds to the staged configuration (not in the project's _config.yml).
BUILD_SUBSTITUTIONS = ("word_count", "data_source")


def stage_front_matter(staging: Path, data_source: str | None = None) -> int:
    """Give the staged book the substitutions ``word_count`` (formatted ``12,345``) and
    ``data_source`` (``synthetic`` or ``mura``, which the PDF's title page reads); return the count."""
    count = word_count(staging)
    config_path = staging / "_config.yml"
    config = yaml.safe_load(config_path.read_text())
    substitutions = config.setdefault("parse", {}).setdefault("myst_substitutions", {})
    substitutions["word_count"] = f"{count:,}"
    if data_source:
        substitutions["data_source"] = data_source
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    if config_path.read_text() != text:  # unchanged files keep their time: Sphinx rebuilds less
        config_path.write_text(text)
    return count
