"""The PDF thesis: the word count, the table conversion, the set-up message, and (slow, where
XeLaTeX is installed) the smoke thesis typeset and read back with pdftotext and pdfinfo."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile

import nbformat
import pandas as pd
import pytest
import yaml
from markdown_it import MarkdownIt

from mura_thesis import pdf
from mura_thesis.frontmatter import body_entries, count_words, notebook_prose
from mura_thesis.project import BuildError

from .conftest import REPO

CHAPTER = """# Baseline performance

The baseline is the **ab-initio** network of {numref}`fig-x`, trained on {glue:text}`size:d` pixels
{cite}`rajpurkar2017mura`.

```{code-cell} ipython3
:tags: [remove-cell]
x = 1 + 2  # code is not prose
```

```{glue:figure} fig-x
:name: fig-x

Learning curves of the baseline.
```

$$ a = b + c $$ and $x^2$ words, `inline code` [a link](https://example.org).
<!-- a comment -->
"""


def test_word_count_counts_prose_only():
    # Title 2, first paragraph 12 (a reference and a glued value count one word each, the citation
    # none), last line "and words a link" 4; the figure's caption is not counted.
    assert count_words(CHAPTER) == 18
    assert count_words("```python\nprint('hello world')\n```\n") == 0
    assert count_words(":::{admonition} Note\n:class: tip\nTwo words.\n:::\n") == 3


HAND_MADE_CHAPTER = """(sec-intro)=
# Two words

One two three {cite}`rajpurkar2017mura` four.[^note]

- five six
- seven

| not | counted |
|-----|---------|
| a   | table   |

```{list-table} A table's caption is not counted
:header-rows: 1
:name: tab-x

* - cells
  - neither
```

```{glue:figure} fig-y
:name: fig-y

Nor is a figure's caption.
```

$$
x = y
$$ (eq-x)

[^note]: Footnote text counts.
"""


def test_word_count_counts_what_the_declaration_says():
    """The declaration counts headings, paragraphs, lists and footnotes, and leaves out tables,
    captions, citations, mathematics with its label, targets and footnote marks."""
    # heading 2 + paragraph 4 + list 3 + footnote 3
    assert count_words(HAND_MADE_CHAPTER) == 12
    declaration = (REPO / "chapters" / "declaration.md").read_text()
    for said in ("chapters 1 to 8", "headings, paragraphs, lists, footnotes", "tables", "captions"):
        assert said in " ".join(declaration.split()), said


def test_word_count_skips_generated_boxes(tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title here"),
            nbformat.v4.new_code_cell("print('not counted')"),
            nbformat.v4.new_markdown_cell("Provenance words", metadata={"tags": ["provenance"]}),
        ]
    )
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, path)
    assert count_words(notebook_prose(path)) == 2


def test_word_count_covers_the_numbered_body():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    entries = body_entries(toc)
    assert entries[0] == "chapters/01_introduction" and "chapters/05_1_baseline" in entries
    assert not {
        "chapters/index",
        "chapters/declaration",
        "chapters/appendix_a_architectures",
        "chapters/references",
    } & set(entries)


def test_glued_table_becomes_a_list_table():
    frame = pd.DataFrame(
        {("scores", "auroc"): [0.81234, 0.7], ("scores", "a|b"): ["x_y", "z"]},
        index=pd.Index(["XR_WRIST", "overall"], name="type"),
    )
    markdown = pdf.html_table_to_markdown(frame.style.format(precision=3).to_html(), "Scores.", "tab-s")
    lines = markdown.splitlines()
    # Three header rows: the column group (once, not repeated), the columns, the index name.
    assert lines[:5] == ["~~~{list-table} Scores.", ":header-rows: 3", ":name: tab-s", ":align: center", ""]
    assert lines[5:] == [
        "* -",
        "  - scores",
        "  -",  # an empty item is an empty cell
        "* -",
        "  - auroc",
        "  - a|b",
        "* - type",
        "  -",
        "  -",
        "* - XR\\_WRIST",
        "  - 0.812",
        "  - x\\_y",
        "* - overall",
        "  - 0.700",
        "  - z",
        "~~~",
    ]


def test_wide_tables_get_the_smaller_font():
    narrow = pdf.html_table_to_markdown(pd.DataFrame([range(3)]).to_html())
    wide = pdf.html_table_to_markdown(pd.DataFrame([range(pdf.WIDE_TABLE_COLUMNS)]).to_html())
    assert pdf.printable_table(narrow) == narrow
    assert pdf.printable_table(wide).startswith(
        "```{raw} latex\n\\thesiswidetables\n```"
    ) and wide in pdf.printable_table(wide)


def test_lists_of_figures_and_tables_get_short_captions():
    reference = r"\hyperref[\detokenize{tab-a}]{\sphinxcrossref{Table 5.1}}"
    tex = "\n".join(
        [
            r"\caption{Learning curves of \sphinxstyleemphasis{the baseline}. The dotted line is smoothed.}\label{f}",
            r"\sphinxcaption{Details of " + reference + r": the studies, seeds and p-values of every comparison, "
            r"and the kappa difference with its 95\% paired bootstrap interval in each chapter.}\label{t}",
            r"\caption{One sentence only.\strut}\label{l}",
            r"\caption[{Given}]{Given. Kept as it is.}",
        ]
    )
    lines = pdf.shorten_captions(tex).splitlines()
    assert lines[0].startswith(r"\caption[{Learning curves of \sphinxstyleemphasis{the baseline}.}]{Learning")
    assert lines[0].endswith(r"The dotted line is smoothed.}\label{f}")  # the page keeps the whole caption
    # A long first sentence stops at its colon; a colon inside a command's argument does not count.
    assert lines[1].startswith(r"\sphinxcaption[{Details of " + reference + "}]{Details of ")
    assert lines[2] == r"\caption{One sentence only.\strut}\label{l}"
    assert lines[3] == r"\caption[{Given}]{Given. Kept as it is.}"
    assert (
        pdf.short_caption("The share of 0.5 e.g. at 0.5, in 5.1. Then more.") == "The share of 0.5 e.g. at 0.5, in 5.1."
    )
    assert pdf.short_caption("Activation functions. (a) The rectified linear unit.") == "Activation functions."
    # Too long: cut at a colon, then at a comma, then before an aside (never inside one).
    words = " and".join([" words"] * 12)
    assert pdf.short_caption(f"Metrics of the baseline on the test subset, for images{words}; kappa at 0.5.") == (
        "Metrics of the baseline on the test subset"
    )
    assert pdf.short_caption(
        r"Maps of the network for correct and wrong test studies (top: \(p\), a; bottom" + words + ")."
    ) == ("Maps of the network for correct and wrong test studies")


def test_glued_table_directive_in_printable_notebook():
    frame = pd.DataFrame({"n": [1, 2]}, index=["a", "b"])
    prefix = "application/papermill.record/"  # as myst-nb's glue stores it
    glue_output = nbformat.v4.new_output(
        "display_data",
        data={f"{prefix}text/html": frame.to_html(), f"{prefix}text/plain": "x"},
        metadata={"scrapbook": {"name": "tab-n", "mime_prefix": prefix}},
    )
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("glue('tab-n', frame)", outputs=[glue_output]),
            nbformat.v4.new_code_cell(
                "print(1)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")]
            ),
            nbformat.v4.new_markdown_cell(
                "```{glue:figure} tab-n\n:name: tab-n\n\nCounts behind {numref}`fig-n`, of\nthings.\n```"
            ),
            nbformat.v4.new_markdown_cell("box", metadata={"tags": ["provenance"]}),
        ]
    )
    pdf.printable_notebook(notebook)
    assert len(notebook.cells) == 3
    assert all("remove-input" in cell.metadata["tags"] for cell in notebook.cells[:2])
    assert notebook.cells[1].outputs == []
    source = notebook.cells[2].source
    assert source.startswith(
        "~~~{list-table} Counts behind {numref}`fig-n`, of things.\n:header-rows: 1\n:name: tab-n\n"
    )
    assert "* - a\n  - 1\n" in source
    # The caption's role does not break the fence: the whole cell is one directive, not text.
    tokens = MarkdownIt("commonmark").parse(source)
    assert [t.type for t in tokens] == ["fence"] and tokens[0].info.startswith("{list-table}")


def test_missing_latex_names_the_packages(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(BuildError) as error:
        pdf.check_tex()
    message = str(error.value)
    assert "\n" not in message and "xelatex" in message and "texlive-xetex" in message


def test_setup_names_the_same_packages():
    makefile = (REPO / "Makefile").read_text()
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    for package in pdf.TEX_PACKAGES:
        assert package in makefile and package in readme and package in ci, package


# --- the typeset smoke thesis ----------------------------------------------------------------


def _pdftext(path, *options) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", *options, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slow
@pytest.mark.skipif(
    bool(pdf.missing_tex()) or shutil.which("pdftotext") is None,
    reason="needs XeLaTeX, latexmk and poppler-utils (apt-get install " + " ".join(pdf.TEX_PACKAGES) + ")",
)
def test_smoke_thesis_pdf(smoke_book, tmp_path):
    from .test_build import mura_thesis

    project, _ = smoke_book
    status = mura_thesis(project, "status", "--profile", "smoke").stdout
    stale = re.findall(r"^\s+(\S+)\s+would re-run", status, re.MULTILINE)
    result = mura_thesis(project, "build", "--profile", "smoke", "--pdf")
    path = project / "_build" / "latex" / "thesis.pdf"
    assert str(path) in result.stdout
    # Only stale chapters execute (after the HTML build, none): the PDF reuses its executed chapters.
    assert re.findall(r"\] (\S+): executing", result.stdout) == stale
    assert result.stdout.count("up to date") >= 5
    check_thesis_pdf(path, project)

    # The LaTeX source bundle beside the PDF compiles on its own, to the same pages.
    bundle = path.with_name("thesis-latex.zip")
    assert str(bundle) in result.stdout
    with zipfile.ZipFile(bundle) as sources:
        names = sources.namelist()
        sources.extractall(tmp_path)
    assert "thesis.tex" in names and "README.txt" in names and any(n.endswith(".pdf") for n in names)
    assert not any(n.endswith((".aux", ".log", ".xdv")) or n == "thesis.pdf" for n in names)
    subprocess.run(
        ["latexmk", "-pdfxe", "-interaction=nonstopmode", "-halt-on-error", "thesis.tex"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert _pages(tmp_path / "thesis.pdf") == _pages(path)


def _pages(path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1))


def check_thesis_pdf(path, project) -> None:
    config = yaml.safe_load((project / "_config.yml").read_text())
    text = _pdftext(path)
    flat = " ".join(text.split())
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert 40 <= pages <= 400, pages

    title_page = " ".join(_pdftext(path, "-f", "1", "-l", "1").split())
    substitutions = config["parse"]["myst_substitutions"]
    assert " ".join(config["title"].split()) in title_page
    for key in ("author_name", "degree", "date"):
        assert substitutions[key] in title_page, key
    assert re.search(r"\d[\d,]* words", title_page)
    # The smoke build runs on synthetic data, and its title page says so.
    assert " ".join(substitutions["synthetic_note"].split()[:8]) in title_page

    for heading in (
        "Declaration of authorship",
        "Acknowledgements",
        "Abstract",
        "Contents",
        "List of Figures",
        "List of Tables",
        "References",
    ):
        assert heading in flat, heading
    abstract = flat[flat.index("Abstract") :]
    assert "study-level area under the ROC curve" in abstract

    # Every chapter title of _toc.yml, numbered; the appendix lettered.
    toc = yaml.safe_load((project / "_toc.yml").read_text())
    numbered = [item["file"] for part in toc["parts"] if part.get("caption") == "Thesis" for item in part["chapters"]]
    for number, entry in enumerate(numbered, start=1):
        title = (project / f"{entry}.md").read_text().split("\n# ", 1)[1].splitlines()[0].strip()
        assert re.search(rf"Chapter {number}\s+{re.escape(title)}", flat) or f"{number} {title}" in flat, title
    assert re.search(r"Appendix A\s+Pretrained model architectures", flat)

    # Every figure of the chapters has a chapter-numbered caption, numbered 1, 2, ... in its chapter.
    sources = "".join(path.read_text() for path in (project / "chapters").glob("*.md"))
    figures = len(re.findall(r"```\{(?:glue:figure|figure)\} fig", sources))
    captions = sorted({tuple(map(int, m)) for m in re.findall(r"Figure (\d+)\.(\d+): ", flat)})
    assert len(captions) == figures, (figures, captions)
    for chapter in {c for c, _ in captions}:
        numbers = [n for c, n in captions if c == chapter]
        assert numbers == list(range(1, len(numbers) + 1)), (chapter, numbers)
    assert re.search(r"Table 3\.1: ", flat) and re.search(r"Table A\.1: ", flat)
    # References resolved; no code, no boxes.
    assert "??" not in flat
    bibliography = flat[re.search(r"References \[1\] ", flat).start() :]
    entry = re.search(
        r"@article\{rajpurkar2017mura,.*?title\s*=\s*\{(.*?)\},\n", (project / "references.bib").read_text(), re.S
    )
    title_start = " ".join(entry.group(1).replace("{", "").replace("}", "").split()[:4])
    assert "Rajpurkar" in bibliography and title_start.lower() in bibliography.lower(), (
        title_start
    )  # the style lowercases titles
    for noise in ("Run configuration", "from mura_lib", "import mura_thesis", "book.setup_notebook", "glue("):
        assert noise not in flat, noise
    # No MyST leaks into the text (a directive that failed to parse prints as it was written).
    for leak in ("{glue", "```{", "~~~{", ":name:", ":header-rows:", "{numref}", "{cite}"):
        assert leak not in flat, leak
    # The PDF numbers its chapters' figures and tables as the HTML does (a table lost in the PDF
    # would shift every later number). The build-status appendix is numbered only in the PDF.
    assert _caption_numbers(flat) == _html_caption_numbers(project)
    # The lists of figures and tables hold short captions, not whole ones.
    entries = _list_entries(_pdftext(path))
    assert _caption_numbers(flat) <= set(entries), _caption_numbers(flat) - set(entries)
    long = {number: entry for number, entry in entries.items() if len(entry) > LIST_ENTRY_CHARACTERS}
    assert not long, long


# The longest entry in the lists of figures and tables: two lines at most.
LIST_ENTRY_CHARACTERS = 160


def _list_entries(text: str) -> dict:
    """The entries of the lists of figures and tables (``pdftotext -layout``), by ``("Figure",
    "2.1")`` or ``("Table", "2.1")``: each entry's text, its lines joined, without the dot leader
    and the page number."""
    lists = text[text.index("List of Figures") : re.search(r"Chapter 1\s", text).start()]
    entries, number, kind = {}, None, "Figure"
    for line in lists.splitlines():
        if line.strip() == "List of Tables":
            kind = "Table"
        start = re.match(r"\s*((?:\d+|[A-Z])\.\d+)\s+(\S.*)", line)
        if start:
            number, line = (kind, start.group(1)), start.group(2)
            entries[number] = ""
        elif number is None:
            continue
        entries[number] = " ".join(f"{entries[number]} {line.strip()}".split())
        if re.search(r"\s\d+$", line):  # the page number ends the entry
            entries[number] = re.sub(r"(\s*\.)*\s+\d+$", "", entries[number])
            number = None
    return entries


def _caption_numbers(flat: str) -> set:
    return {(kind, number) for kind, number in re.findall(r"(Figure|Table) ((?:\d+|A)\.\d+): ", flat)}


def _html_caption_numbers(project) -> set:
    numbers = set()
    for page in (project / "_build" / "html").rglob("*.html"):
        for kind, number in re.findall(
            r'<span class="caption-number">(Fig\.|Figure|Table) ((?:\d+|A)\.\d+)', page.read_text()
        ):
            numbers.add(("Figure" if kind.startswith("Fig") else "Table", number))
    return numbers


def test_title_page_says_when_the_build_ran_on_synthetic_data():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    substitutions = config["parse"]["myst_substitutions"]
    substitutions["data_source"] = "synthetic"
    assert "synthetic radiographs generated by" in pdf.title_page(config)
    substitutions["data_source"] = "mura"
    assert "synthetic radiographs" not in pdf.title_page(config)
