"""The tables of what a model detects and relies on, for the Baseline and Extensions chapters:
the measurements of :mod:`mura_lib.analysis` and :mod:`mura_lib.explain` for reading, and a note
where real MURA's labels leave nothing to measure."""

from __future__ import annotations

import pandas as pd

from mura_lib.analysis import AUROC, FINDING, HIGH, INTERVAL, LOW, SENSITIVITY, ShortcutEvidence

from .tables import format_table, plain, signed

OMITTED = "*Omitted: real MURA records no hardware, casts or markers, and its markers cannot be removed.*"


def readable(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A detection table for reading: the interval as one column ``0.612 to 0.801``, rates rounded."""
    shown = table.drop(columns=[LOW, HIGH]).copy()
    shown[AUROC] = [plain(v, digits) for v in table[AUROC]]
    shown.insert(
        shown.columns.get_loc(AUROC) + 1,
        INTERVAL,
        [f"{plain(low, digits)} to {plain(high, digits)}" for low, high in zip(table[LOW], table[HIGH])],
    )
    shown[SENSITIVITY] = [plain(v, 2) for v in table[SENSITIVITY]]
    return shown


def detection_table(table: pd.DataFrame | None, drop: str | None = None):
    """A detection table (of :func:`mura_lib.analysis.detection_by_finding` or
    :func:`mura_lib.analysis.detection_by_conspicuity`) as
    a table for reading, without ``drop``'s column.  Where there is nothing to show (real MURA
    records no findings, or no test study has a subtle finding) it is one row saying so, so that
    the captioned table in the chapter always has content."""
    if table is None:
        shown = pd.DataFrame({FINDING: ["not recorded: real MURA labels a study only normal or abnormal"]})
    elif table.empty:
        shown = pd.DataFrame({FINDING: ["no abnormal test study has a finding of this kind"]})
    else:
        shown = readable(table)
        if drop is not None:
            shown = shown.drop(columns=drop)
    return format_table(shown, index=False)


def shortcut_frame(result: dict) -> pd.DataFrame:
    """:func:`mura_lib.analysis.shortcut_reliance` for reading: one row per group of abnormal studies and the gap."""
    percent = f"{result['confidence'] * 100:.4g}% interval"
    return pd.DataFrame(
        [
            {
                "Abnormal studies": "with hardware or a cast",
                "Studies": result["with"],
                AUROC: plain(result["auroc_with"]),
                percent: f"{plain(result['low_with'])} to {plain(result['high_with'])}",
            },
            {
                "Abnormal studies": "without hardware or a cast",
                "Studies": result["without"],
                AUROC: plain(result["auroc_without"]),
                percent: f"{plain(result['low_without'])} to {plain(result['high_without'])}",
            },
            {
                "Abnormal studies": "difference (with minus without)",
                "Studies": result["with"] + result["without"],
                AUROC: signed(result["gap"]),
                percent: f"{signed(result['gap_low'])} to {signed(result['gap_high'])}",
            },
        ]
    )


def localisation_table(summary: pd.DataFrame | None) -> pd.DataFrame:
    """:func:`mura_lib.explain.localisation_summary` for reading; one row saying why where there is nothing to show."""
    if summary is None:
        return pd.DataFrame({"Finding": ["not recorded: real MURA records no finding's location"]})
    if summary.empty:
        return pd.DataFrame({"Finding": ["no test view shows a finding with a recorded box"]})
    return pd.DataFrame(
        {
            "Finding": summary["finding"],
            "Views": summary["views"],
            "Maps with mass": summary["images"],
            "Map's share inside the box": [plain(v) for v in summary["share"]],
            "Box's share of the image": [plain(v) for v in summary["area"]],
            "Difference": [signed(v) for v in summary["excess"]],
            "95% interval": [f"{signed(lo)} to {signed(hi)}" for lo, hi in zip(summary["low"], summary["high"])],
        }
    )


def _omitted():
    from IPython.display import Markdown

    return Markdown(OMITTED)


def shortcut_table(evidence: ShortcutEvidence):
    """The shortcut measurement (:func:`shortcut_frame`) formatted for the page, or a note saying
    why it is omitted."""
    return _omitted() if evidence.shortcut is None else format_table(shortcut_frame(evidence.shortcut), index=False)


def marker_table(evidence: ShortcutEvidence, details: bool = False):
    """The paired comparison with the markers removed, formatted (verdicts first; ``details``:
    studies, DeLong's p and the kappa difference), or a note saying why it is omitted."""
    from mura_lib.evaluation import comparison_details, comparison_table

    table = comparison_details if details else comparison_table
    return (
        _omitted()
        if evidence.comparison is None
        else format_table(table([evidence.comparison]), index=False, wrap=True)
    )


def marker_figure(evidence: ShortcutEvidence):
    """:func:`mura_thesis.figures.probability_changes` of the markers removed, or a note saying why
    it is omitted."""
    from .figures import probability_changes

    return _omitted() if evidence.changes is None else probability_changes(evidence.changes)
