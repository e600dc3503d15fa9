"""How results are presented: tables for reading, the kappa comparison's column groups, the
provenance box, the status page, and the book's Sphinx extension."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest

from mura_lib import evaluation
from mura_thesis import presentation, tables
from mura_thesis.tables import column_words, format_table, plural


def _headers(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", html, re.S)]


def _cells(html: str) -> list[str]:
    return [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]


def test_format_table_words_integers_decimals_and_intervals():
    frame = pd.DataFrame(
        {
            "image_size": [16.0, 32.0],
            "auroc": [0.61234, np.nan],
            "auroc_low": [0.5, 0.41],
            "auroc_high": [0.7, 0.8],
            "epochs": [1, 8],
            "kappa": [0.25, 0.5],
        }
    )
    html = format_table(frame).to_html()
    assert _headers(html) == ["Image size (px)", "AUROC", "AUROC 95% interval", "Epochs", "Cohen's kappa"]
    assert _cells(html) == ["16", "0.612", "0.500 to 0.700", "1", "0.250", "32", "n/a", "0.410 to 0.800", "8", "0.500"]
    assert "8.000" not in html and "auroc_low" not in html


def test_format_table_shows_the_index_as_a_column_without_an_index_name_row():
    frame = pd.DataFrame(
        {"studies": [3, 4], "kappa": [0.1, 0.2]}, index=pd.Index(["XR_HAND", "overall"], name="study_type")
    )
    html = format_table(frame).to_html()
    assert html.count("<tr>") == 3  # one header row, two body rows
    assert _headers(html) == ["Study type", "Studies", "Cohen's kappa"]
    assert _cells(html)[:3] == ["XR_HAND", "3", "0.100"]
    with pytest.raises(TypeError, match="DataFrame"):
        format_table(frame["kappa"])


def test_column_words_and_plural():
    assert column_words("auroc_low") == "AUROC 95% interval, lower bound"
    assert column_words("training seconds") == "Training time (s)"
    assert column_words("output shape") == "Output shape"
    assert column_words("mode") == "Mode"
    assert [plural(n, "epoch") for n in (0, 1, 2, 1.0)] == ["0 epochs", "1 epoch", "2 epochs", "1 epoch"]
    assert plural(1, "study", "studies") == "1 study" and plural(1200, "study", "studies") == "1,200 studies"


def test_metrics_table_for_reading_has_word_headers():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    studies = pd.DataFrame({"study_type": "XR_HAND", "label": labels, "probability": rng.uniform(0, 1, 60)})
    html = tables.with_intervals(evaluation.metrics_table(studies, n_resamples=50)).to_html()
    assert _headers(html)[:3] == ["Study type", "Studies", "AUROC (95% interval)"]
    assert "auroc" not in " ".join(_headers(html))
    assert ">hand<" in html and "XR_" not in html  # study types named as a reader names them
    # A narrow screen wraps a cell before its interval, never inside it.
    assert "thesis-wrap" in html and re.search(r"\d \(\d\.\d+\u00a0to\u00a0\d\.\d+\)", html)


@pytest.mark.parametrize("data_source", ["mura", "synthetic"])
def test_kappa_beside_paper_keeps_this_build_in_its_own_labelled_group(data_source):
    ours = pd.DataFrame({"kappa": 0.5}, index=evaluation.PAPER_KAPPA.index)
    table = evaluation.kappa_beside_paper(ours, label="baseline", data_source=data_source)
    groups = list(dict.fromkeys(table.columns.get_level_values(0)))
    assert groups == [evaluation.PUBLISHED_GROUP, evaluation.DATA_GROUPS[data_source]]
    assert list(table[evaluation.DATA_GROUPS[data_source]].columns) == ["baseline"]
    assert ("synthetic" in groups[1]) == (data_source == "synthetic")
    html = format_table(table).to_html()
    assert evaluation.PUBLISHED_GROUP in html and ">Baseline<" in html
    assert list(table.index) == ["elbow", "finger", "forearm", "hand", "humerus", "shoulder", "wrist", "overall"]
    with_bounds = ours.assign(kappa_low=-0.1, kappa_high=0.7)
    bounded = evaluation.kappa_beside_paper(with_bounds, label="baseline", data_source=data_source)
    interval = bounded[evaluation.DATA_GROUPS[data_source]]["95% interval"]
    assert (interval == "\u22120.100 to 0.700").all()
    with pytest.raises(ValueError, match="data_source"):
        evaluation.kappa_beside_paper(ours, data_source="imagenet")


def _notebook(*cells) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# A chapter")] + list(cells)
    return notebook


def _code(outputs=(), tags=()):
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"tags": list(tags)})
    cell.outputs = [
        nbformat.v4.new_output(kind, data={"text/plain": "1"})
        if kind != "stream"
        else nbformat.v4.new_output("stream", name="stdout", text="hello")
        for kind in outputs
    ]
    return cell


RECORD = {
    "chapter": "x",
    "profile": "smoke",
    "parameters": {"seed": 0},
    "commit": "abc",
    "started": "s",
    "finished": "f",
    "seconds": 1.0,
    "environment": {"versions": {"python": "3"}, "backend": "tensorflow", "device": "CPU"},
}


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ([_code(tags=["parameters"])], False),  # the references page: parameters only
        ([_code(tags=["parameters"]), _code(outputs=["stream"])], False),  # set-up that only prints
        ([_code(tags=["injected-parameters"], outputs=["execute_result"])], False),
        ([_code(tags=["parameters"]), _code(outputs=["display_data"])], True),  # a glued value
        ([_code(outputs=["execute_result"])], True),  # a displayed table
    ],
)
def test_boxes_only_on_pages_that_compute_something(tmp_path, cells, expected):
    path = tmp_path / "chapter.ipynb"
    nbformat.write(_notebook(*cells), path)
    assert presentation.computes_something(nbformat.read(path, as_version=4)) is expected
    presentation.present_notebook(path, RECORD, data_source="synthetic")
    tags = [tag for cell in nbformat.read(path, as_version=4).cells for tag in cell.metadata.get("tags", [])]
    assert "run-configuration" not in tags and ("provenance" in tags) is expected


def test_status_page_text_agrees_with_its_table():
    records = [dict(RECORD, chapter=f"c{i}", seconds=s, cached=i == 0) for i, s in enumerate((400.2, 500.0, 450.6))]
    profile = SimpleNamespace(name="demo", description="the whole thesis in under 20 minutes")
    page = presentation.status_page(records, profile, "synthetic", Path("data"))
    assert "20 minutes" not in page
    seconds = [float(m) for m in re.findall(r"^\| c\d \| passed \| f \| ([0-9.]+) \|", page, re.M)]
    total = sum(seconds)
    assert presentation.format_duration(total) == "22 min 31 s"
    assert f"Executing the 3 chapters took {presentation.format_duration(total)} in total" in page
    assert f"Total: {total:.1f} s" in page and "1 of them were reused" in page


def test_format_duration():
    assert [presentation.format_duration(s) for s in (5, 60, 61.4, 3600, 3725)] == [
        "5 s",
        "1 min",
        "1 min 1 s",
        "1 h",
        "1 h 2 min",
    ]


SPHINX_PROJECT = {
    "conf.py": """
        extensions = ["sphinx_external_toc", "sphinx_multitoc_numbering", "mura_thesis.sphinx_book"]
        external_toc_path = "_toc.yml"
        numfig = True
        numfig_secnum_depth = 1
        mathjax_path = "mathjax/tex-chtml-full.js"
        html_css_files = ["thesis.css"]
    """,
    "_toc.yml": """
        format: jb-book
        root: index
        parts:
          - caption: Thesis
            numbered: true
            chapters:
              - file: one
          - caption: Appendices
            numbered: true
            chapters:
              - file: appendix
    """,
    "index.rst": """
        Thesis
        ======
    """,
    "one.rst": """
        Results
        =======

        .. figure:: pixel.png
           :name: tab-results

           A table shown as a glued output.

        .. figure:: pixel.png
           :name: fig-curve

           A figure.

        :numref:`tab-results` and :numref:`fig-curve`; the energy is :math:`E = mc^2`.
    """,
    "appendix.rst": """
        Architectures
        =============

        Details
        -------

        .. figure:: pixel.png
           :name: fig-arch

           An architecture.

        See :numref:`fig-arch`.
    """,
}


def test_sphinx_extension_numbers_tables_letters_appendices_and_serves_mathjax(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name, text in SPHINX_PROJECT.items():
        (source / name).write_text(textwrap.dedent(text).lstrip())
    # a 1x1 PNG
    (source / "pixel.png").write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
        )
    )
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-q", str(source), str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    one = (out / "one.html").read_text()
    assert re.search(r'caption-number">Table 1\.1', one) and re.search(r'caption-number">Fig\. 1\.1', one)
    assert ">Table 1.1<" in one and ">Fig. 1.1<" in one  # the references say which is which
    appendix = (out / "appendix.html").read_text()
    assert "Appendix A. </span>Architectures" in appendix
    assert "A.1. </span>Details" in appendix and 'caption-number">Fig. A.1' in appendix
    assert ">Fig. A.1<" in appendix and "2." not in re.findall(r'section-number">([^<]*)', appendix)
    assert 'src="_static/mathjax/tex-chtml-full.js' in one and "cdn" not in one.lower()
    assert (out / "_static" / "mathjax" / "tex-chtml-full.js").stat().st_size > 500_000
    assert (
        out / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2" / "MathJax_Main-Regular.woff"
    ).exists()
    assert 'href="_static/thesis.css' in one


def test_provenance_lists_the_runs_a_chapter_read(tmp_path, monkeypatch):
    """The plan notes each run it reads in the file the build names; the build reads the file
    back (first use first, each run once) and the provenance box lists the runs with their keys."""
    from mura_thesis import build, plan

    notes = tmp_path / "chapter.runs.jsonl"
    monkeypatch.setenv(plan.RUNS_USED_ENV_VAR, str(notes))
    for name, key in (("baseline", "a" * 16), ("16 px", "b" * 16), ("baseline", "a" * 16)):
        plan._note_run_used(name, key)
    runs = build._runs_used(notes)
    assert runs == [["baseline", "a" * 16], ["16 px", "b" * 16]] and not notes.exists()
    box = presentation.provenance_cell(dict(RECORD, runs=runs), "synthetic").source
    assert f"baseline `{'a' * 16}`, 16 px `{'b' * 16}`" in box
    assert "Runs read" not in presentation.provenance_cell(RECORD, "synthetic").source
    assert build._runs_used(tmp_path / "none.jsonl") == []


def test_provenance_names_only_the_settings_changed_from_the_profile_and_the_command_to_rerun():
    defaults = {"profile": "demo", "data_root": "/a", "settings": {"seed": 0, "seeds": [0, 1, 2], "epochs": 30}}
    executed = {
        "profile": "demo",
        "data_root": "/b",  # where the data lie is not a setting
        "image_size": 64,  # a parameter of the chapter's own
        "settings": {"seed": 0, "seeds": [0, 1], "epochs": 30},
    }
    assert presentation.changed_settings(executed, defaults) == {"image_size": 64, "seeds": [0, 1]}
    assert presentation.changed_settings(defaults, defaults) == {}
    record = dict(RECORD, chapter="05_1_baseline", profile="demo", parameters=executed)
    box = presentation.provenance_cell(record, "synthetic", defaults).source
    assert "settings changed from it: `image_size=64`, `seeds=[0, 1]`" in box
    assert "`mura-thesis run 05_1_baseline --profile demo -p image_size 64 -p seeds '[0, 1]'`" in box
    assert "seed=0" not in box and "epochs" not in box and "/b" not in box
    unchanged = presentation.provenance_cell(dict(record, parameters=defaults), "mura", defaults).source
    assert "settings changed from it: none" in unchanged
    assert "`mura-thesis run 05_1_baseline --profile demo --data /path/to/MURA-v1.1`" in unchanged
    assert len(unchanged.splitlines()) <= 8  # a short box, not a dump of every setting


def _chapter(prose: str, code: str = "y = 2") -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A chapter"),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell(prose),
        nbformat.v4.new_code_cell(code),
    ]
    return notebook


def test_prose_edit_is_merged_with_the_outputs_of_the_last_execution():
    executed = _chapter("The old sentence.")
    injected = nbformat.v4.new_code_cell("x = 3", metadata={"tags": ["injected-parameters"]})
    executed.cells.insert(2, injected)
    executed.cells[4].outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "0.812"})]
    executed.cells[4].execution_count = 4
    executed.metadata["papermill"] = {"parameters": {"x": 3}}
    edited = _chapter("The new sentence.\n\nAnd a second paragraph.")
    assert presentation.code_cells(edited) == presentation.code_cells(executed)

    merged = presentation.merge_outputs(edited, executed)
    assert [c.source for c in merged.cells] == [
        "# A chapter",
        "x = 1",
        "x = 3",
        "The new sentence.\n\nAnd a second paragraph.",
        "y = 2",
    ]
    assert merged.cells[4].outputs[0]["data"]["text/plain"] == "0.812" and merged.cells[4].execution_count == 4
    assert merged.metadata["papermill"] == {"parameters": {"x": 3}}
    assert edited.cells[3].outputs == []  # the text itself is left as it was


@pytest.mark.parametrize(
    "edit",
    [
        lambda nb: setattr(nb.cells[3], "source", "y = 3"),  # changed code
        lambda nb: nb.cells.append(nbformat.v4.new_code_cell("z = 1")),  # a new cell
        lambda nb: nb.cells[3].metadata.update(tags=["remove-input"]),  # a changed tag
    ],
)
def test_changed_code_is_never_merged_with_old_outputs(edit):
    executed, edited = _chapter("Text."), _chapter("Text.")
    edit(edited)
    assert presentation.code_cells(edited) != presentation.code_cells(executed)
    with pytest.raises(presentation.StaleOutputs):
        presentation.merge_outputs(edited, executed)


def _glued(name: str, value: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output(
        "display_data",
        data={"application/papermill.record/text/plain": repr(value)},
        metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}},
    )


def _with_passages(text: str, **glued) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("glue(...)")
    code.outputs = [_glued(name.replace("_", "-"), value) for name, value in glued.items()]
    notebook.cells = [code, nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())]
    return notebook


PASSAGES = """
    Dropout was tested.

    :::{passage} reg-dropout
    :when: lower
    Dropout helped.
    :::

    :::{passage} reg-dropout
    :when: higher, undetermined
    Dropout did not help, its interval reaching {glue:text}`reg-high`.
    :::

    The end.
"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lower", "Dropout was tested.\n\nDropout helped.\n\nThe end."),
        (
            "undetermined",
            "Dropout was tested.\n\nDropout did not help, its interval reaching {glue:text}`reg-high`.\n\nThe end.",
        ),
    ],
)
def test_passages_keep_the_variant_the_glued_value_names(value, expected):
    notebook = presentation.resolve_passages(_with_passages(PASSAGES, reg_dropout=value))
    assert notebook.cells[1].source == expected


def test_a_passage_inside_a_paragraph_joins_it():
    text = """
        The network scored 0.8.
        :::{passage} reg-data
        :when: synthetic
        On synthetic data this says little.
        :::
        :::{passage} reg-data
        :when: mura
        :::
        Next sentence.
    """
    notebook = presentation.resolve_passages(_with_passages(text, reg_data="synthetic"))
    assert notebook.cells[1].source == "The network scored 0.8.\nOn synthetic data this says little.\nNext sentence."
    notebook = presentation.resolve_passages(_with_passages(text, reg_data="mura"))
    assert notebook.cells[1].source == "The network scored 0.8.\nNext sentence."


@pytest.mark.parametrize(
    ("text", "glued", "message"),
    [
        (PASSAGES, {"reg_dropout": "absent"}, "offer only"),  # a value no passage names
        (PASSAGES, {"reg_other": "lower"}, "does not glue"),  # the key is never glued
        (":::{passage} reg-dropout\nDropout helped.\n:::", {"reg_dropout": "lower"}, ":when:"),
        (":::{passage} reg-dropout\n:when: lower\nDropout helped.", {"reg_dropout": "lower"}, "no closing"),
    ],
)
def test_passage_mistakes_fail_the_build_with_the_reason(text, glued, message):
    with pytest.raises(presentation.PassageError, match=message):
        presentation.resolve_passages(_with_passages(text, **glued))


def test_passages_inside_a_list_item_keep_its_indentation():
    text = "- *Size*.\n  :::{passage} reg-data\n  :when: synthetic\n  At 64 pixels it was higher.\n  :::\n- *Next*."
    notebook = presentation.resolve_passages(_with_passages(text, reg_data="synthetic"))
    assert notebook.cells[1].source == "- *Size*.\n  At 64 pixels it was higher.\n- *Next*."


def test_a_passage_may_hold_passages_of_its_own():
    text = "::::{passage} reg-data\n:when: synthetic\nMade.\n:::{passage} reg-split\n:when: larger\nLarger.\n:::\n::::"
    notebook = presentation.resolve_passages(_with_passages(text, reg_data="synthetic", reg_split="larger"))
    assert notebook.cells[1].source == "Made.\nLarger."
    # Dropped with its parent, an inner passage's key is never read (here it is not glued at all).
    notebook = presentation.resolve_passages(
        _with_passages(text + "\n:::{passage} reg-data\n:when: mura\n:::", reg_data="mura")
    )
    assert notebook.cells[1].source == ""


def test_times_in_seconds_are_rounded_for_reading():
    frame = pd.DataFrame(
        {"Image size (px)": [32, 64], "Training time (s)": [60.860123, 4.2345], "AUROC": [0.81234, 0.7]}
    )
    html = format_table(frame).to_html()
    assert ">61<" in html and ">4.2<" in html and "60.860" not in html
    assert ">0.812<" in html  # other numbers keep their three decimals
    from mura_thesis.tables import seconds_text

    assert [seconds_text(v) for v in (0.04, 9.96, 10.4, 1234.5, float("nan"))] == ["0.0", "10", "10", "1,234", "n/a"]


def test_tables_print_negative_numbers_with_a_true_minus():
    from mura_thesis.tables import format_table

    frame = pd.DataFrame({"auroc": [0.5, -0.25], "auroc_low": [-0.1, -0.5], "auroc_high": [0.2, 0.0]})
    html = format_table(frame, index=False).to_html()
    assert "\u22120.250" in html and "\u22120.100 to 0.200" in html and "-0.25" not in html
