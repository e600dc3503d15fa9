"""The results manifest of a build (``_build/results.json``) and ``mura-thesis compare``: glued
values read from executed notebooks, the manifest made from the chapters' records, the
comparison of two builds, the command's exit codes and messages, the status page's reference
section.  Nothing here trains a model or builds the book."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd
import pytest

from mura_thesis import manifest
from mura_thesis.cli import main
from mura_thesis.tables import format_table

PREFIX = "application/papermill.record/"


# --- hand-made inputs ------------------------------------------------------------------------


def glue_output(name: str, data: dict, *, displayed: bool = False) -> nbformat.NotebookNode:
    """A myst-nb glue output as ``myst_nb.glue`` writes it (``display=False``: prefixed MIME types)."""
    prefix = "" if displayed else PREFIX
    return nbformat.v4.new_output(
        "display_data",
        data={prefix + key: value for key, value in data.items()},
        metadata={"scrapbook": {"name": name, "mime_prefix": prefix}},
    )


def styler(frame: pd.DataFrame) -> dict:
    table = format_table(frame, index=False)
    return {"text/html": table.to_html(), "text/plain": repr(table)}


def comparison(name, verdict="higher", diff=0.05, low=0.02, high=0.08, kappa_verdict="undetermined", **extra):
    """A configuration comparison's record as a chapter's plan notes it."""
    return {
        "kind": "comparison",
        "name": name,
        "group": "regularisation",
        "a": name.split(" vs ")[0],
        "b": "baseline",
        "runs_a": {"0": "a0", "1": "a1"},
        "runs_b": {"0": "b0", "1": "b1"},
        "seeds_a": [0, 1],
        "seeds_b": [0, 1],
        "studies": 900,
        "auroc_diff": diff,
        "auroc_low": low,
        "auroc_high": high,
        "kappa_diff": 0.01,
        "kappa_low": -0.03,
        "kappa_high": 0.05,
        "verdict": verdict,
        "kappa_verdict": kappa_verdict,
    } | extra


def metric(name, value, low=None, high=None):
    return {"kind": "metric", "name": name, "value": value, "low": low, "high": high}


def hand_made(comparisons=(), metrics=(), glued=None, settings=None, **fields) -> dict:
    """A manifest of format 1, without going through a build."""
    return {
        "format": 1,
        "profile": "demo",
        "settings": settings or {"seeds": [0, 1], "epochs": 30},
        "data": {"source": "synthetic", "path": "/data", "manifest": "m1"},
        "commit": "abc1234",
        "environment": {"versions": {"python": "3.11"}, "device": "CPU: test (2 cores)", "backend": "tensorflow"},
        "runs": {"baseline (seed 0)": "b0"},
        "comparisons": {c["name"]: c for c in comparisons},
        "metrics": {m["name"]: m for m in metrics},
        "glued": glued or {},
    } | fields


def write(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


# --- glued values ----------------------------------------------------------------------------


def test_glued_values_of_an_executed_notebook(tmp_path):
    frame = pd.DataFrame({"run": ["baseline", "no dropout"], "auroc": [0.81234, 0.79]})
    long_text = "word " * 300
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="printed, not glued\n"),
        glue_output("baseline-auroc", {"text/plain": "0.8123456"}),
        glue_output("verdict", {"text/plain": "'higher'"}, displayed=True),
        glue_output("fig-roc", {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"}),
        glue_output("tab-runs", styler(frame)),
        glue_output("long", {"text/plain": long_text}),
        glue_output("summary", {"text/markdown": "The **baseline** wins.", "text/plain": "<IPython Markdown object>"}),
        nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
    ]
    again = nbformat.v4.new_code_cell("glue('baseline-auroc', 0.9)")
    again.outputs = [glue_output("baseline-auroc", {"text/plain": "0.9"})]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), cell, again]), path)

    values = manifest.glued_values(path)
    assert list(values) == ["baseline-auroc", "verdict", "tab-runs", "long", "summary"]  # no figure, no plain output
    assert values["baseline-auroc"] == "0.9"  # glued twice: the last value, as myst-nb shows it
    assert values["verdict"] == "'higher'"
    assert values["summary"] == "The **baseline** wins."
    # A table: the start of its text and the hash of its HTML, not the Styler's repr.
    table = values["tab-runs"]
    assert table.startswith("Run AUROC baseline 0.812 no dropout 0.790") and "[HTML table, sha256 " in table
    assert "Styler" not in table and "0x" not in table
    # Long text: its first 200 characters, its length and hash.
    assert values["long"].startswith(long_text[:100]) and "[1,500 characters, sha256 " in values["long"]
    assert len(values["long"]) < 260


def test_a_glued_table_keeps_its_hash_across_renderings_and_changes_with_its_content():
    frame = pd.DataFrame({"run": ["baseline"], "auroc": [0.81234]})
    first, second = styler(frame), styler(frame)
    assert first["text/html"] != second["text/html"]  # each Styler names its table at random
    assert manifest.glued_text(first) == manifest.glued_text(second)
    changed = styler(frame.assign(auroc=[0.81284]))
    assert manifest.glued_text(changed) != manifest.glued_text(first)
    assert manifest.glued_text({"text/plain": "<Thing at 0x7f3a2b>"}) == "<Thing>"
    assert manifest.glued_text({"image/svg+xml": "<svg/>", "text/plain": "fig"}) is None


# --- the manifest from the chapters' records -------------------------------------------------


def test_manifest_from_records_keeps_each_result_once_and_every_kind(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [glue_output("reg-summary", {"text/plain": "'no dropout is worse'"})]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), executed / "05_3_regularisation.ipynb")
    shared = comparison("no dropout vs baseline", verdict="lower", diff=-0.04, low=-0.07, high=-0.01, family=4)
    records = [
        {
            "chapter": "05_3_regularisation",
            "runs": [["baseline (seed 0)", "b0"], ["no dropout (seed 0)", "a0"]],
            "results": [shared, metric("baseline auroc (seed 0)", 0.8, 0.77, 0.83), {"kind": "calibration", "x": 1}],
        },
        {
            "chapter": "06_conclusions",  # no executed notebook: no glued values
            "runs": [["baseline (seed 0)", "b0"]],
            "results": [dict(shared), {"kind": "calibration", "x": 1}, {"no kind": True}],
            "cached": True,
        },
    ]
    built = manifest.build_manifest(
        profile="demo",
        settings={"seeds": (0, 1)},
        data={"source": "synthetic", "path": "/d", "manifest": "m1"},
        commit="abc1234",
        environment={"versions": {"python": "3.11"}, "device": "CPU: x", "backend": "tensorflow"},
        records=records,
        executed_dir=executed,
    )
    assert built["format"] == 1 and built["profile"] == "demo" and built["commit"] == "abc1234"
    assert built["runs"] == {"baseline (seed 0)": "b0", "no dropout (seed 0)": "a0"}
    assert built["comparisons"] == {"no dropout vs baseline": shared}  # once, with its extra key kept
    assert built["comparisons"]["no dropout vs baseline"]["family"] == 4
    assert built["metrics"]["baseline auroc (seed 0)"]["high"] == 0.83
    assert built["other results"] == {"calibration": [{"kind": "calibration", "x": 1}], "None": [{"no kind": True}]}
    assert built["conflicts"] == []
    assert built["chapters"]["06_conclusions"]["reused"] is True
    assert built["chapters"]["05_3_regularisation"]["reused"] is False
    assert built["glued"] == {"05_3_regularisation": {"reg-summary": "'no dropout is worse'"}, "06_conclusions": {}}
    numerics = built["environment"]["numerics"]
    assert set(numerics) == {"TF_ENABLE_ONEDNN_OPTS", "MURA_THREADS", "threads"} and numerics["threads"] >= 1
    assert built["environment"]["device"] == "CPU: x"

    # Written atomically, read back as it was written.
    path = manifest.write_manifest(tmp_path / "_build" / "results.json", built)
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]
    loaded = manifest.load_manifest(tmp_path)  # a folder: its _build/results.json
    assert loaded.pop("path") == str(path) and loaded == built
    assert manifest.compare_manifests(built, loaded)["differences"] == {"settings": [], "data": False}


def test_manifest_lists_a_result_two_chapters_report_differently():
    records = [
        {"chapter": "c1", "runs": [["r", "k1"]], "results": [comparison("x vs baseline", verdict="higher")]},
        {"chapter": "c2", "runs": [["r", "k2"]], "results": [comparison("x vs baseline", verdict="lower")]},
    ]
    built = manifest.build_manifest(
        profile="p", settings={}, data={}, commit="c", environment={}, records=records, executed_dir=None
    )
    assert built["comparisons"]["x vs baseline"]["verdict"] == "higher"
    assert built["runs"] == {"r": "k1"}
    assert built["conflicts"] == [
        {"kind": "run", "name": "r", "chapters": ["c1", "c2"]},
        {"kind": "comparison", "name": "x vs baseline", "chapters": ["c1", "c2"]},
    ]


def test_results_env_var_is_the_one_the_plan_writes():
    from mura_thesis import plan

    assert plan.RESULTS_ENV_VAR == manifest.RESULTS_ENV_VAR == "MURA_RESULTS_USED"


def test_a_chapters_results_are_read_once_each_and_the_file_removed(tmp_path):
    from mura_thesis.build import BuildError, _results_used

    path = tmp_path / ".c.results.jsonl"
    lines = [comparison("x vs baseline"), metric("m", 0.5), comparison("x vs baseline")]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert _results_used(path) == lines[:2] and not path.exists()
    assert _results_used(path) == []
    path.write_text('{"kind": "metric"}\n{"kind": \n')
    with pytest.raises(BuildError, match="Line 2 .* not JSON"):
        _results_used(path)


# --- the build keeps the results with the chapter's state -------------------------------------

CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

```{code-cell} ipython3
:tags: [parameters]
profile = "demo"
```

```{code-cell} ipython3
print(profile)
```
"""


def test_build_records_a_chapters_results_and_reuses_them_from_its_state(tmp_path, monkeypatch):
    """Builder.execute points $MURA_RESULTS_USED at a file for the chapter (papermill is replaced
    by a stand-in that writes what a chapter's plan would), keeps what was written in the
    chapter's record and state, and a later build that reuses the chapter still has them."""
    import os

    import papermill

    from mura_thesis.build import Builder
    from mura_thesis.profiles import Profile

    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "c1.md").write_text(CHAPTER)
    result = comparison("no L2 vs baseline", verdict="undetermined", diff=0.0, low=-0.02, high=0.02)
    seen = []

    def execute_notebook(source, output, **_):
        target = os.environ[manifest.RESULTS_ENV_VAR]
        seen.append(target)
        with open(target, "a") as stream:
            stream.write(json.dumps(result) + "\n" + json.dumps(metric("baseline auroc", 0.8, 0.7, 0.9)) + "\n")
        notebook = nbformat.read(source, as_version=4)
        notebook.cells[-1].outputs = [glue_output("c1-value", {"text/plain": "3"})]
        nbformat.write(notebook, output)

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    monkeypatch.delenv(manifest.RESULTS_ENV_VAR, raising=False)
    builder = Builder(tmp_path, Profile("demo", "", {"source": "synthetic"}), progress=False, out=open(os.devnull, "w"))
    builder._data = ("synthetic", tmp_path / "data", "m1")
    trained = []
    monkeypatch.setattr(builder, "train_ahead", lambda: trained.append(True))  # no runs: the chapter is a stand-in

    (record,) = builder.run_chapters(["chapters/c1"])
    assert trained == [True]  # a stale chapter has the plan's missing runs trained first
    assert seen and seen[0].endswith(".results.jsonl") and not Path(seen[0]).exists()
    assert manifest.RESULTS_ENV_VAR not in os.environ  # restored after the chapter
    assert record["cached"] is False and record["results"][0] == result
    stored = json.loads((builder.state_dir / "c1.json").read_text())
    assert stored["results"] == record["results"]

    (reused,) = builder.run_chapters(["chapters/c1"])
    assert reused["cached"] is True and len(seen) == 1
    built = builder.results_manifest([reused])
    assert built["comparisons"] == {"no L2 vs baseline": result}
    assert built["metrics"]["baseline auroc"]["value"] == 0.8
    assert built["glued"] == {"c1": {"c1-value": "3"}}
    assert built["settings"] == builder.settings() and built["data"]["manifest"] == "m1"


# --- comparing two builds --------------------------------------------------------------------


def test_beyond_intervals_rule():
    # Half-widths 0.375 and 0.5: the differences may lie 0.625 apart, not more.
    assert manifest.beyond_intervals(0.0, -0.375, 0.375, 0.625, 0.125, 1.125) is False
    assert manifest.beyond_intervals(0.0, -0.375, 0.375, 0.626, 0.126, 1.126) is True
    assert manifest.beyond_intervals(0.0, -0.375, 0.375, -0.626, -1.126, -0.126) is True
    assert manifest.beyond_intervals(0.0, None, 0.375, 0.9, 0.4, 1.4) is None
    assert manifest.beyond_intervals(0.0, -0.1, 0.1, math.nan, 0.4, 1.4) is None


def test_verdict_status():
    status = manifest.verdict_status
    assert status("higher", "higher") == status("undetermined", "undetermined") == "agree"
    assert status("higher", "lower") == status("lower", "higher") == "flip"
    assert status("higher", "undetermined") == status("undetermined", "lower") == "one undetermined"
    assert status("higher", None) == "missing"
    assert status("higher", "better") == "differ"


def two_builds():
    a = hand_made(
        comparisons=[
            comparison("same vs baseline", "higher", 0.05, 0.02, 0.08),
            comparison("flipped vs baseline", "higher", 0.05, 0.02, 0.08),
            comparison("unsure vs baseline", "lower", -0.05, -0.08, -0.02),
            comparison("only A vs baseline"),
        ],
        metrics=[metric("baseline auroc", 0.80, 0.77, 0.83), metric("baseline kappa", 0.5), metric("gone", 1.0)],
        glued={"c1": {"x": "1", "y": "2", "z": "3"}},
    )
    b = hand_made(
        comparisons=[
            comparison("same vs baseline", "higher", 0.06, 0.03, 0.09),
            comparison("flipped vs baseline", "lower", -0.05, -0.08, -0.02),
            comparison("unsure vs baseline", "undetermined", -0.01, -0.04, 0.02),
            comparison("only B vs baseline"),
        ],
        metrics=[metric("baseline auroc", 0.70, 0.68, 0.72), metric("baseline kappa", 0.5)],
        glued={"c1": {"x": "1", "y": "20"}, "c2": {"w": "4"}},
        settings={"seeds": [0, 1, 2], "epochs": 30},
        commit="def5678",
    )
    return a, b


def test_compare_manifests_statuses_intervals_and_counts():
    a, b = two_builds()
    result = manifest.compare_manifests(a, b)
    rows = {row["name"]: row for row in result["comparisons"]}
    assert [row["in"] for row in result["comparisons"]] == ["both", "both", "both", "A only", "B only"]
    auroc = {name: row["measures"]["AUROC"] for name, row in rows.items() if row["in"] == "both"}
    assert {name: m["status"] for name, m in auroc.items()} == {
        "same vs baseline": "agree",
        "flipped vs baseline": "flip",
        "unsure vs baseline": "one undetermined",
    }
    assert (
        auroc["flipped vs baseline"]["verdict_a"] == "higher" and auroc["flipped vs baseline"]["verdict_b"] == "lower"
    )
    # 0.05 vs -0.05 with half-widths 0.03: 0.10 > 0.042; 0.05 vs 0.06: within.
    assert auroc["flipped vs baseline"]["beyond"] is True and auroc["same vs baseline"]["beyond"] is False
    assert auroc["unsure vs baseline"]["beyond"] is False  # 0.04 apart, allowed 0.042
    assert all(row["measures"]["kappa"]["status"] == "agree" for row in rows.values() if row["in"] == "both")
    metrics = {row["name"]: row for row in result["metrics"]}
    assert metrics["baseline auroc"]["beyond"] is True  # 0.10 apart, allowed sqrt(0.03² + 0.02²) = 0.036
    assert metrics["baseline kappa"]["beyond"] is None and metrics["gone"]["in"] == "A only"
    counts = result["counts"]
    assert counts["verdicts"] == 6 and counts["agree"] == 4  # three comparisons, AUROC and kappa each
    assert (counts["flips"], counts["one_undetermined"], counts["other"]) == (1, 1, 0)
    assert counts["numbers"] == 7 and counts["beyond"] == 2  # 3 AUROC + 3 kappa differences, 1 metric
    assert (counts["only_in_a"], counts["only_in_b"]) == (1, 1)
    assert counts["by_measure"]["AUROC"] == {"verdicts": 3, "agree": 1, "flips": 1, "one_undetermined": 1, "other": 0}
    assert result["glued"] == {"equal": 1, "differ": 1, "only_in_a": 1, "only_in_b": 1, "differing": ["c1/y"]}
    assert result["differences"] == {"settings": ["seeds"], "data": False}
    assert manifest.summary_line(result) == (
        "verdicts agreeing: 4 of 6 (1 one undetermined, 1 flip); numbers beyond their intervals: 2 of 7; "
        "comparisons in A only: 1, in B only: 1"
    )
    # A build set against itself agrees everywhere.
    same = manifest.compare_manifests(a, a)["counts"]
    assert (same["agree"], same["verdicts"], same["flips"], same["beyond"]) == (8, 8, 0, 0)


def test_compare_report_sets_verdicts_and_differences_side_by_side():
    a, b = two_builds()
    report = manifest.format_comparison(manifest.compare_manifests(a, b))
    line = next(line for line in report.splitlines() if line.startswith("flipped vs baseline") and "AUROC" in line)
    assert line.split()[3:8] == ["AUROC", "higher", "lower", "flip", "+0.050"]
    assert "+0.050 [+0.020, +0.080]" in line and "-0.050 [-0.080, -0.020]" in line and line.rstrip().endswith("yes")
    assert "only A vs baseline" in report and "in A only" in report
    assert "baseline auroc 0.800 [0.770, 0.830] 0.700 [0.680, 0.720] yes" in report
    assert "experiment settings differ: seeds" in report
    assert "Glued values (information only): 1 equal, 1 differ, 1 in A only, 1 in B only; differing: c1/y." in report
    assert report.splitlines()[-1].startswith("verdicts agreeing: 4 of 6")


# --- mura-thesis compare ---------------------------------------------------------------------


def test_compare_command_exit_codes(tmp_path, capsys):
    a, b = two_builds()
    path_a = write(tmp_path / "a" / "_build" / "results.json", a)
    path_b = write(tmp_path / "b.json", b)
    assert main(["compare", str(path_a), str(path_b)]) == 1  # a verdict flips
    out = capsys.readouterr().out
    assert "verdicts agreeing: 4 of 6 (1 one undetermined, 1 flip)" in out
    # Folders: DIR/_build/results.json, or DIR/results.json.
    write(tmp_path / "c" / "results.json", a)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 0
    assert "verdicts agreeing: 8 of 8 (0 one undetermined, 0 flips)" in capsys.readouterr().out
    # No flip, one undetermined: 0.
    b["comparisons"]["flipped vs baseline"]["verdict"] = "higher"
    write(path_b, b)
    assert main(["compare", str(path_a), str(path_b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["counts"]["flips"] == 0 and result["counts"]["one_undetermined"] == 1
    assert result["a"]["path"] == str(path_a)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a results manifest (a JSON list"),
        ('{"format": 2, "comparisons": {}, "metrics": {}}', "not a results manifest of format 1"),
        ('{"format": 1, "comparisons": [], "metrics": {}}', "'comparisons' section is missing"),
        ("folder", "a folder without a results manifest"),
    ],
)
def test_compare_command_explains_unreadable_input(tmp_path, capsys, content, message):
    good = write(tmp_path / "good.json", hand_made())
    bad = tmp_path / "bad.json"
    if content == "folder":
        bad = tmp_path / "empty"
        bad.mkdir()
    elif content is not None:
        write(bad, content)
    assert main(["compare", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert str(bad) in captured.err and message in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


# --- the status page -------------------------------------------------------------------------


def test_reference_manifest_of_a_profile(tmp_path):
    assert manifest.reference_manifest("demo", tmp_path) is None
    kept = write(tmp_path / "benchmarks" / "results" / "reference_demo_results.json", hand_made())
    assert manifest.reference_manifest("demo", tmp_path) == kept
    assert manifest.reference_manifest("smoke", tmp_path) is None


def test_status_page_checks_the_verdicts_against_the_reference(tmp_path):
    from mura_thesis import presentation

    this, reference = two_builds()
    kept = write(tmp_path / "benchmarks" / "results" / "reference_demo_results.json", reference)
    section = manifest.reference_section(this, "demo", manifest.reference_manifest("demo", tmp_path), root=tmp_path)
    lines = section.splitlines()
    assert lines[0] == "## Reference build"
    assert "Verdicts agreeing with the reference build: 4 of 6." in lines
    assert "- flipped vs baseline (AUROC): this build higher, the reference lower." in lines
    assert "- unsure vs baseline (AUROC): this build lower, the reference undetermined." in lines
    assert not any("same vs baseline" in line for line in lines)
    assert "`benchmarks/results/reference_demo_results.json`" in section and str(tmp_path) not in section
    assert "It was built with other experiment settings (seeds)." in lines
    assert "Comparisons of this build only: 1; of the reference only: 1." in lines

    record = {"chapter": "c1", "seconds": 1.0, "finished": "f", "environment": this["environment"]}
    profile = SimpleNamespace(name="demo")
    page = presentation.status_page([record], profile, "synthetic", Path("data"), reference=section)
    assert page.rstrip().endswith(section.rstrip()) and "# Build status" in page

    # No reference kept, or one that cannot be read.
    assert "No reference build is kept for the smoke profile." in manifest.reference_section(this, "smoke", None)
    kept.write_text("{")
    broken = manifest.reference_section(this, "demo", kept, root=tmp_path)
    assert "could not be read" in broken and "not valid JSON" in broken


def test_the_old_verdict_word_of_two_runs_reads_as_undetermined():
    from mura_thesis.manifest import verdict_status

    assert verdict_status("no detectable difference", "undetermined") == "agree"
    assert verdict_status("no detectable difference", "higher") == "one undetermined"
    assert verdict_status("higher", "lower") == "flip"
