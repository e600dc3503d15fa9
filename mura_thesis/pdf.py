"""The thesis as a PDF: Jupyter Book's LaTeX builder on the executed chapters, then XeLaTeX.

``mura-thesis build --pdf`` (``make pdf``) executes the chapters that are stale, exactly as the
HTML build does, stages them (:meth:`Builder.stage`), and turns a copy of the staged book into
a printed thesis:

- a title page from ``_config.yml`` (title, author, degree, department, date, word count);
  the front-matter documents (declaration, acknowledgements), then the abstract, each on its
  own page; contents, list of figures and list of tables; numbered chapters; lettered
  appendices (the build's status page, with the provenance of every chapter, is one of
  them); the references last;
- no code: every code cell keeps its displayed outputs only, and the provenance boxes are
  left out;
- tables glued from pandas become LaTeX tables (in the list of tables) in a smaller font;
  figures use the vector PDF that every chapter stores beside the PNG.

The PDF is written to ``_build/latex/<targetname>.pdf`` (``thesis.pdf``).
"""

from __future__ import annotations

import ast
import hashlib
import html
import itertools
import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import yaml

from mura_lib.files import atomic_write_text

from .build import Builder
from .frontmatter import GENERATED_TAGS
from .project import BuildError, toc_entries

# Debian packages for the PDF (TeX Live with XeLaTeX, its fonts, latexmk; poppler for the tests).
TEX_PACKAGES = (
    "texlive-xetex",
    "texlive-latex-recommended",
    "texlive-latex-extra",
    "texlive-fonts-recommended",
    "fonts-freefont-otf",
    "lmodern",
    "latexmk",
    "poppler-utils",
)
TARGET_NAME = "thesis"
GLUE_FIGURE = re.compile(
    r"```\{glue:figure\}\s+(?P<key>[\w-]+)\n(?P<options>(?::[\w-]+:[^\n]*\n)*)\n?(?P<caption>.*?)\n```", re.S
)


def missing_tex() -> list[str]:
    return [tool for tool in ("xelatex", "latexmk") if shutil.which(tool) is None]


def check_tex() -> None:
    """Raise a one-line BuildError naming the Debian packages when XeLaTeX or latexmk is missing."""
    missing = missing_tex()
    if missing:
        raise BuildError(
            f"The PDF needs {' and '.join(missing)}: install TeX Live with `sudo apt-get install --no-install-recommends "
            f"{' '.join(TEX_PACKAGES)}`."
        )


# --- the toc of the printed thesis -------------------------------------------------------------


def thesis_layout(toc: dict) -> dict:
    """Split ``_toc.yml`` into front matter, body, appendices and back matter (lists of entries).

    Parts before the first numbered part are front matter; the first numbered part is the body;
    later numbered parts are appendices; unnumbered parts after the body are back matter.
    """
    parts = toc.get("parts")
    if not parts:
        raise BuildError("_toc.yml has no parts: the PDF needs a numbered part with the chapters of the thesis.")
    layout = {"root": toc["root"], "front": [], "body": [], "appendices": [], "back": []}
    seen_body = False
    for part in parts:
        if part.get("numbered") and not seen_body:
            key, seen_body = "body", True
        elif part.get("numbered"):
            key = "appendices"
        else:
            key = "back" if seen_body else "front"
        layout[key].extend(part.get("chapters") or [])
    if not layout["body"]:
        raise BuildError("_toc.yml has no numbered part: the PDF numbers the chapters of the first numbered part.")
    return layout


def _files(items: list[dict]) -> list[str]:
    files = []
    for item in items:
        files.append(item["file"])
        files.extend(_files(item.get("sections") or []))
    return files


# --- notebook transformations -------------------------------------------------------------------


class _TableParser(HTMLParser):
    """The rows of the first HTML table (pandas and its Styler): a list of (is_header, [cells])."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[bool, list[str]]] = []
        self._cell: list[str] | None = None
        self._span = 1
        self._in_head = False
        self._depth = 0
        self._style = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._depth += 1
        elif tag == "style":
            self._style += 1
        elif self._depth != 1:
            return
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr":
            self.rows.append((self._in_head, []))
        elif tag in ("td", "th") and self.rows:
            self._cell, self._span = [], int(attrs.get("colspan") or 1)

    def handle_endtag(self, tag):
        if tag == "table":
            self._depth -= 1
        elif tag == "style":
            self._style -= 1
        elif tag in ("td", "th") and self._cell is not None and self.rows:
            text = " ".join("".join(self._cell).split())
            self.rows[-1][1].extend([text] * self._span)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None and not self._style:
            self._cell.append(data)


def html_table_rows(markup: str) -> tuple[list[list[str]], list[list[str]]]:
    """``(header rows, body rows)`` of an HTML table (pandas and its Styler), as plain text.

    A header cell spanning columns is written once, in its first column.
    """
    parser = _TableParser()
    parser.feed(markup)
    rows = [(head, cells) for head, cells in parser.rows if cells]
    if not rows:
        raise ValueError("no table rows")
    width = max(len(cells) for _, cells in rows)
    rows = [(head, [html.unescape(c) for c in cells] + [""] * (width - len(cells))) for head, cells in rows]
    if not any(head for head, _ in rows):
        rows[0] = (True, rows[0][1])
    header = [cells for head, cells in rows if head]
    for cells in header[:-1]:  # spanned group names: once, not in every column they cover
        for index in range(len(cells) - 1, 0, -1):
            if cells[index] == cells[index - 1]:
                cells[index] = ""
    return header, [cells for head, cells in rows if not head]


def _cell(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")
    if re.match(r"^(\d+[.)]|[-+#>])(\s|$)", text):
        text = "\\" + text  # not a list item or a heading
    return text


def html_table_to_markdown(markup: str, caption: str = "", name: str | None = None) -> str:
    """A MyST ``list-table`` from an HTML table, every header row kept as a header row."""
    header, body = html_table_rows(markup)
    # A tilde fence: the caption may hold roles ({numref}`...`), and a backtick fence's info string
    # may not contain backticks (the whole directive would then print as text).
    lines = [f"~~~{{list-table}} {caption}".rstrip(), f":header-rows: {len(header)}"]
    if name:
        lines.append(f":name: {name}")
    lines += [":align: center", ""]
    for cells in header + body:
        lines.append(f"* - {_cell(cells[0])}".rstrip())
        lines += [f"  - {_cell(cell)}".rstrip() for cell in cells[1:]]  # an empty item: an empty cell
    lines.append("~~~")
    return "\n".join(lines)


def _glued_outputs(notebook) -> dict:
    glued = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            key = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if key:
                glued[key] = output
    return glued


WIDE_TABLE_COLUMNS = 9


def printable_table(markdown: str) -> str:
    """A ``list-table``, set in the smallest table font when it has many columns."""
    lines = markdown.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("* -"))
    columns = 1 + len(list(itertools.takewhile(lambda line: line.startswith("  -"), lines[first + 1 :])))
    if columns < WIDE_TABLE_COLUMNS:
        return markdown
    return f"```{{raw}} latex\n\\thesiswidetables\n```\n\n{markdown}\n\n```{{raw}} latex\n\\thesisnormaltables\n```"


GLUE_TEXT = re.compile(r"\{glue:text\}`(?P<key>[\w-]+)(?::(?P<spec>[^`]*))?`")


def glued_text(output: dict | None, spec: str | None, fallback: str) -> str:
    """A glued value as ``{glue:text}`` prints it (its ``text/plain``, formatted with ``spec``)."""
    if not output:
        return fallback
    prefix = output.get("metadata", {}).get("scrapbook", {}).get("mime_prefix", "")
    text = output.get("data", {}).get(f"{prefix}text/plain")
    if text is None:
        return fallback
    if not spec:
        return text.strip("'\"")
    return format(ast.literal_eval(text), spec)


def _table_directive(match: re.Match, glued: dict) -> str:
    output = glued.get(match["key"]) or {}
    prefix = output.get("metadata", {}).get("scrapbook", {}).get("mime_prefix", "")
    data = {mime.removeprefix(prefix): value for mime, value in output.get("data", {}).items()}
    if (
        not output
        or "text/html" not in data
        or "<table" not in data["text/html"]
        or any(mime.startswith("image/") or mime == "application/pdf" for mime in data)
    ):
        return match.group(0)
    options = dict(re.findall(r":([\w-]+):\s*([^\n]*)", match["options"]))
    # A glued value in a table's title is pasted here: Sphinx loses the table's label otherwise.
    caption = GLUE_TEXT.sub(lambda m: glued_text(glued.get(m["key"]), m["spec"], m.group(0)), match["caption"])
    caption = " ".join(caption.split())
    name = options.get("name", match["key"])
    return printable_table(html_table_to_markdown(data["text/html"], caption, name))


def printable_notebook(notebook) -> None:
    """Drop code, generated boxes and printed streams; turn glued tables into real tables."""
    glued = _glued_outputs(notebook)
    cells = []
    for cell in notebook.cells:
        tags = set(cell.metadata.get("tags", []))
        if tags & GENERATED_TAGS:
            continue
        if cell.cell_type == "code":
            cell.metadata["tags"] = sorted(tags | {"remove-input"})
            cell.outputs = [
                o for o in cell.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")
            ]
            for output in cell.outputs:  # a table shown directly (HTML only) gets a markdown twin
                data = output.get("data", {})
                if "text/html" in data and "<table" in data["text/html"] and "text/markdown" not in data:
                    data["text/markdown"] = printable_table(html_table_to_markdown(data["text/html"]))
        elif cell.cell_type == "markdown":
            cell.source = GLUE_FIGURE.sub(lambda m: _table_directive(m, glued), cell.source)
        cells.append(cell)
    notebook.cells = cells


def abstract_only(notebook, source: str) -> None:
    """Keep the ``## Abstract`` section of the root page as the document ``# Abstract``."""
    markdown = "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    match = re.search(r"^##\s+Abstract\s*\n(?P<text>.*?)(?=^#{1,2}\s|\Z)", markdown, re.S | re.M)
    if not match:
        raise BuildError(f"{source} has no '## Abstract' section: the PDF prints the abstract from there; add one.")
    notebook.cells = [c for c in notebook.cells if c.cell_type == "code"]
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(f"# Abstract\n\n{match['text'].strip()}\n"))


def _prepend_latex(path: Path, latex: str) -> None:
    block = f"```{{raw}} latex\n{latex}\n```\n\n"
    if path.suffix == ".md":
        text = path.read_text()
        front = re.match(r"\A---\n.*?\n---\n", text, re.S)
        cut = front.end() if front else 0
        path.write_text(text[:cut] + block + text[cut:])
        return
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(block))
    nbformat.write(notebook, path)


def _append_markdown(path: Path, text: str) -> None:
    if path.suffix == ".md":
        path.write_text(path.read_text().rstrip() + "\n\n" + text)
        return
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_markdown_cell(text))
    nbformat.write(notebook, path)


# --- LaTeX configuration -------------------------------------------------------------------------


def latex_escape(text: str) -> str:
    replacements = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    return "".join(replacements.get(char, char) for char in str(text))


def title_page(config: dict) -> str:
    values = config.get("parse", {}).get("myst_substitutions", {})
    missing = [key for key in ("author_name", "degree", "department", "date") if not values.get(key)]
    if missing or not config.get("title"):
        raise BuildError(f"_config.yml: the title page needs title and parse.myst_substitutions {missing}; add them.")
    v = {key: latex_escape(value) for key, value in values.items()}
    department = r"\\".join(latex_escape(part.strip()) for part in values["department"].split(","))
    # A build on synthetic data says so on its title page (the sentence is _config.yml's).
    note = ""
    if values.get("data_source") == "synthetic" and values.get("synthetic_note"):
        note = f"\\vspace{{1cm}}\n{{\\small\\itshape {v['synthetic_note']}\\par}}\n"
    return rf"""
\begin{{titlepage}}
\centering
\vspace*{{2.5cm}}
{{\LARGE\bfseries {latex_escape(config["title"])}\par}}
\vspace{{2.5cm}}
{{\Large {v["author_name"]}\par}}
\vfill
{{\large A thesis submitted for the degree of\par\medskip {v["degree"]}\par}}
\vspace{{1.5cm}}
{{\large {department}\par}}
\vspace{{1.5cm}}
{{\large {v["date"]}\par}}
\vspace{{1cm}}
{{\small {v.get("word_count", "")} words\par}}
{note}\end{{titlepage}}
\pagenumbering{{roman}}
\setcounter{{secnumdepth}}{{-1}}
"""


PREAMBLE = r"""
\usepackage{etoolbox}
% Tables in a smaller font with narrower gaps, so that wide ones fit the text width; tables
% with many columns are set smaller still (\thesiswidetables ... \thesisnormaltables).
\newcommand{\thesistablefont}{\footnotesize\setlength{\tabcolsep}{4pt}}
\newcommand{\thesiswidetables}{\renewcommand{\thesistablefont}{\scriptsize\setlength{\tabcolsep}{2.5pt}}}
\newcommand{\thesisnormaltables}{\renewcommand{\thesistablefont}{\footnotesize\setlength{\tabcolsep}{4pt}}}
\AtBeginEnvironment{tabulary}{\thesistablefont}
\AtBeginEnvironment{longtable}{\thesistablefont}
\AtBeginEnvironment{tabular}{\thesistablefont}
\addto\captionsenglish{\renewcommand{\bibname}{References}}
\setcounter{tocdepth}{1}
"""

BBM_STANDIN = r"""\NeedsTeXFormat{LaTeX2e}
\ProvidesPackage{bbm}[2024/01/01 stand-in: blackboard bold from unicode-math]
\AtBeginDocument{\providecommand{\mathbbm}[1]{\mathbb{#1}}}
"""

# Lettered appendices, with lettered figure, table and equation numbers (Sphinx numbers them
# with the chapter counter in arabic).
APPENDIX = r"""\appendix
\renewcommand{\thefigure}{\thechapter.\arabic{figure}}
\renewcommand{\thetable}{\thechapter.\arabic{table}}
\renewcommand{\theequation}{\thechapter.\arabic{equation}}
"""

MAIN_MATTER = r"""
\tableofcontents
\listoffigures
\listoftables
\cleardoublepage
\pagenumbering{arabic}
\setcounter{secnumdepth}{2}
"""


def pdf_config(config: dict) -> dict:
    config = dict(config)
    config["latex"] = {
        "latex_engine": "xelatex",
        "use_jupyterbook_latex": True,
        "latex_documents": {"targetname": f"{TARGET_NAME}.tex"},
    }
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx.update(
        {
            "jblatex_captions_to_parts": False,
            "latex_use_xindy": False,
            # Numbered citations match the numbered list of references.
            "bibtex_reference_style": "label",
            "numfig_format": {
                "figure": "Figure %s",
                "table": "Table %s",
                "code-block": "Listing %s",
                "section": "Section %s",
            },
            "nb_render_markdown_format": "myst",  # the markdown twins of tables are pipe tables
            "latex_show_urls": "footnote",
            "latex_elements": {
                "papersize": "a4paper",
                "pointsize": "11pt",
                "extraclassoptions": "openany,oneside",
                "fncychap": "",
                "printindex": "",
                "maketitle": title_page(config),
                "tableofcontents": "",
                "preamble": PREAMBLE,
                "figure_align": "htbp",
            },
        }
    )
    return config


# --- short captions for the lists of figures and tables ------------------------------------------

# The caption commands Sphinx writes: figures, longtables, and tabular(y) tables.
CAPTION = re.compile(r"\\(?:caption|sphinxcaption|sphinxfigcaption)(?=\{)")
# A first sentence longer than this (characters of text) is cut (see short_caption).
SHORT_CAPTION_CHARACTERS = 110
# No cut at a comma or parenthesis leaves fewer characters than this.
SHORT_CAPTION_MINIMUM = 40


def _argument(tex: str, start: int) -> int:
    """The index just past the brace group that opens at ``tex[start]``."""
    depth = 0
    for index in range(start, len(tex)):
        char = tex[index]
        if char == "{" and tex[index - 1] != "\\":
            depth += 1
        elif char == "}" and tex[index - 1] != "\\":
            depth -= 1
            if depth == 0:
                return index + 1
    raise ValueError(f"unbalanced braces in a caption at character {start}")


def _top_level(tex: str):
    """The indices of ``tex``'s characters outside any brace group, a command's bracket or a
    parenthesis (``\\(`` and ``\\)`` of inline mathematics included); an opening parenthesis
    outside them counts as outside."""
    depth = 0
    for index, char in enumerate(tex):
        escaped = index > 0 and tex[index - 1] == "\\"
        if char in "{[(" and not (escaped and char != "("):
            if depth == 0 and char == "(" and not escaped:
                yield index
            depth += 1
        elif char in "}])" and not (escaped and char != ")"):
            depth = max(depth - 1, 0)  # a stray ")" (a list's "1)") does not hide the rest
        elif depth == 0:
            yield index


def _text_length(tex: str) -> int:
    """Roughly how many characters ``tex`` prints: commands and braces not counted."""
    return len(re.sub(r"\\[a-zA-Z@]+\*?(\[[^\]]*\])?|[{}]", "", tex))


def short_caption(caption: str, limit: int = SHORT_CAPTION_CHARACTERS) -> str:
    """The entry for the list of figures or tables: the caption's first sentence.  A sentence
    longer than ``limit`` characters is cut before its first colon or semicolon, then, while
    still too long, before its first comma, then before its first parenthesis, each leaving at
    least :data:`SHORT_CAPTION_MINIMUM` characters.  Only a stop outside braces, brackets and
    parentheses counts, so that a cut never breaks a command's argument or an aside."""
    caption = re.sub(r"\\strut\s*$", "", caption.strip()).strip()
    cut = len(caption)
    for index in _top_level(caption):
        if caption[index] == "." and re.match(r"\s+[A-Z\\(]", caption[index + 1 :]):
            cut = index + 1
            break
    sentence = caption[:cut].strip()
    for stops, minimum in ((":;", 10), (",", SHORT_CAPTION_MINIMUM), ("(", SHORT_CAPTION_MINIMUM)):
        if _text_length(sentence) <= limit:
            break
        for index in _top_level(sentence):
            if sentence[index] in stops and _text_length(sentence[:index]) >= minimum:
                sentence = sentence[:index].strip()
                break
    return sentence


def shorten_captions(tex: str) -> str:
    r"""Give every caption in ``tex`` without an optional short caption one (:func:`short_caption`):
    ``\caption{Long. More.}`` becomes ``\caption[{Long.}]{Long. More.}``, so that the lists of
    figures and tables hold one short line per entry and the page keeps the whole caption."""
    parts, position = [], 0
    for match in CAPTION.finditer(tex):
        if match.start() < position:
            continue  # a caption inside another one's argument
        end = _argument(tex, match.end())
        caption = tex[match.end() + 1 : end - 1]
        short = short_caption(caption)
        parts.append(tex[position : match.end()])
        if short != re.sub(r"\\strut\s*$", "", caption.strip()).strip():
            parts.append(f"[{{{short}}}]")
        parts.append(tex[match.end() : end])
        position = end
    parts.append(tex[position:])
    return "".join(parts)


# --- staging and rendering -----------------------------------------------------------------------


def stage_pdf(staging: Path, target: Path) -> Path:
    """A copy of the staged book arranged as a printed thesis, in ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for child in target.iterdir():
        if child.name != "_build":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for child in staging.iterdir():
        if child.name != "_build":
            (shutil.copytree if child.is_dir() else shutil.copy2)(child, target / child.name)
    toc = yaml.safe_load((target / "_toc.yml").read_text())
    layout = thesis_layout(toc)

    def document(entry: str) -> Path:
        notebook = target / f"{entry}.ipynb"
        return notebook if notebook.exists() else target / f"{entry}.md"

    # The references page becomes the bibliography at the very end.
    back = [item for item in layout["back"] if "```{bibliography}" not in document(item["file"]).read_text()]
    for path in target.rglob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        printable_notebook(notebook)
        if path.with_suffix("").relative_to(target).as_posix() == layout["root"]:
            abstract_only(notebook, f"{layout['root']}.md")
        nbformat.write(notebook, path)
    front = layout["front"] + [{"file": layout["root"]}]
    # LaTeX takes the first title of the master document for \title and drops it: the master is
    # an empty page, so that every front-matter document keeps its heading.
    master = Path(layout["root"]).parent / "pdf_master"
    (target / f"{master}.md").write_text("# Thesis\n")
    _prepend_latex(document(layout["body"][0]["file"]), MAIN_MATTER)
    closing = (layout["appendices"] + back) or layout["body"]
    if layout["appendices"] + back:
        _prepend_latex(document(closing[0]["file"]), APPENDIX)
    _append_markdown(document(_files(closing)[-1]), "```{bibliography}\n```\n")
    pdf_toc = {"format": "jb-book", "root": master.as_posix(), "chapters": front + layout["body"] + closing}
    (target / "_toc.yml").write_text(yaml.safe_dump(pdf_toc, sort_keys=False))
    config = yaml.safe_load((target / "_config.yml").read_text())
    (target / "_config.yml").write_text(yaml.safe_dump(pdf_config(config), sort_keys=False, allow_unicode=True))
    return target


def render_pdf(target: Path, published: Path, *, say=print) -> Path:
    """LaTeX sources with jupyter-book, the PDF with latexmk; copy it to ``published``."""
    from .build import jupyter_book_command

    command = [
        jupyter_book_command(),
        "build",
        str(target),
        "--builder",
        "latex",
        "--path-output",
        str(target),
        "-W",
        "-n",
        "--keep-going",
        "--quiet",
    ]
    say("Writing the LaTeX sources with jupyter-book ...")
    result = subprocess.run(command, capture_output=True, text=True, cwd=target)
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    if result.returncode != 0 or warnings:
        raise BuildError("jupyter-book (LaTeX) reported problems:\n" + ("\n".join(warnings[:40]) or output[-4000:]))
    latex_dir = target / "_build" / "latex"
    # jupyterBook.cls loads bbm (Debian's texlive-fonts-extra, over a gigabyte) for \mathbbm
    # only; this stand-in maps it to unicode-math's \mathbb.
    (latex_dir / "bbm.sty").write_text(BBM_STANDIN)
    source = latex_dir / f"{TARGET_NAME}.tex"
    source.write_text(shorten_captions(source.read_text()))
    say("Typesetting with XeLaTeX (latexmk) ...")
    result = subprocess.run(
        ["latexmk", "-pdfxe", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", f"{TARGET_NAME}.tex"],
        capture_output=True,
        text=True,
        cwd=latex_dir,
    )
    log = latex_dir / f"{TARGET_NAME}.log"
    log_text = log.read_text(errors="replace") if log.exists() else ""
    if result.returncode != 0:
        errors = [line for line in log_text.splitlines() if line.startswith("!") or ":error" in line.lower()]
        raise BuildError(
            f"XeLaTeX failed on {latex_dir / (TARGET_NAME + '.tex')} (log: {log}):\n"
            + "\n".join(errors[:20] or (result.stdout + result.stderr)[-3000:].splitlines())
        )
    problems = [
        line for line in log_text.splitlines() if re.search(r"undefined|Overfull \\hbox \((\d{2,}|[3-9])\.", line)
    ]
    if problems:
        say(f"LaTeX warnings (see {log}):\n  " + "\n  ".join(problems[:20]))
    published.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(latex_dir / f"{TARGET_NAME}.pdf", published)
    bundle = latex_bundle(latex_dir, published.with_name(f"{TARGET_NAME}-latex.zip"))
    say(f"LaTeX sources: {bundle}")
    return published


# What latexmk writes beside the sources: not part of the source bundle.
LATEX_PRODUCTS = {
    ".aux",
    ".log",
    ".fls",
    ".fdb_latexmk",
    ".xdv",
    ".toc",
    ".lof",
    ".lot",
    ".out",
    ".idx",
    ".ilg",
    ".ind",
}
BUNDLE_README = """The LaTeX sources of the thesis "{title}", as `make pdf` typeset them.

Compile with XeLaTeX (twice, or with latexmk, which repeats until references settle):

    latexmk -pdfxe -interaction=nonstopmode {target}.tex

On Debian or Ubuntu the TeX Live packages needed are:

    apt-get install --no-install-recommends {packages}

The figures are the PDF files named by their content hash; the bibliography is typeset into
{target}.tex (no BibTeX run is needed); bbm.sty is a stand-in that maps \\mathbbm to \\mathbb, so
that texlive-fonts-extra is not needed.
"""


def latex_bundle(latex_dir: Path, output: Path) -> Path:
    """A zip file of the LaTeX sources in ``latex_dir`` (the .tex file, classes and styles, the
    figures, a README), without latexmk's products: what a submission system asks for."""
    import zipfile

    title = re.search(r"\\title\{(.*?)\}", (latex_dir / f"{TARGET_NAME}.tex").read_text())
    readme = BUNDLE_README.format(
        title=title.group(1) if title else TARGET_NAME,
        target=TARGET_NAME,
        packages=" ".join(p for p in TEX_PACKAGES if p != "poppler-utils"),
    )
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("README.txt", readme)
        for path in sorted(latex_dir.iterdir()):
            if path.is_file() and path.suffix not in LATEX_PRODUCTS and path.name != f"{TARGET_NAME}.pdf":
                bundle.write(path, path.name)
    partial.replace(output)
    return output


def pdf_identity(results: dict) -> dict:
    """What identifies the build a PDF shows: its profile, commit and a digest of its glued values."""
    glued = json.dumps(results.get("glued", {}), sort_keys=True).encode()
    return {
        "profile": results.get("profile"),
        "commit": results.get("commit"),
        "glued": hashlib.sha256(glued).hexdigest(),
    }


def build_pdf(builder: Builder, *, force: bool = False) -> Path:
    """Execute stale chapters, stage them, and typeset ``_build/latex/thesis.pdf``."""
    check_tex()
    started = time.perf_counter()
    entries = toc_entries(builder.root)
    source, path, manifest = builder.data
    builder.say(f"Profile {builder.profile.name!r} on {source} data at {path} (manifest {manifest})")
    records = builder.run_chapters(entries, force=force)
    results = builder.results_manifest(records)
    staging = builder.stage(entries, records, results)
    target = stage_pdf(staging, builder.work / "pdf" / builder.profile.name)
    published = render_pdf(target, builder.root / "_build" / "latex" / f"{TARGET_NAME}.pdf", say=builder.say)
    # Which build the PDF shows, so that an archive takes it only with the results it prints.
    atomic_write_text(published.with_suffix(".json"), json.dumps(pdf_identity(results), indent=1) + "\n")
    builder.say(f"PDF built in {time.perf_counter() - started:.0f}s: {published}")
    return published
