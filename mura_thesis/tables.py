"""Tables for reading: result DataFrames to styled tables with word headers and sensible numbers.

``format_table`` is what every chapter displays or glues a table through: headers become words
(``auroc_low`` and ``auroc_high`` become one column "AUROC 95% interval"), integers print as
integers, other numbers at three decimals, missing values as "n/a", and the index becomes an
ordinary first column (no stray index-name row).  The book's stylesheet lets a wide table scroll
inside the text column.  A glued table whose name starts with ``tab-`` is numbered as a table
(see ``mura_thesis.sphinx_book``).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

MINUS = "\u2212"


def signed(value: float | None, digits: int = 3) -> str:
    """``+0.012`` or ``−0.012`` (a true minus sign); ``n/a`` for a missing value."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value + 0.0:+.{digits}f}".replace("-", MINUS)


def plain(value: float | None, digits: int = 3) -> str:
    """``0.812`` or ``−0.012``; ``n/a`` for a missing value."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value + 0.0:.{digits}f}".replace("-", MINUS)


def join_words(words) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


# The library's and the chapters' column names, as words.  Names are looked up with
# underscores read as spaces; names not listed are shown with a capital first letter.
COLUMN_WORDS = {
    "auroc": "AUROC",
    "kappa": "Cohen's kappa",
    "accuracy": "Accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "f1": "F1 score",
    "studies": "Studies",
    "images": "Images",
    "patients": "Patients",
    "views": "Views",
    "study type": "Study type",
    "image size": "Image size (px)",
    "epochs": "Epochs",
    "seed": "Seed",
    "training seconds": "Training time (s)",
    "seconds": "Time (s)",
    "train loss": "Training loss",
    "val loss": "Validation loss",
    "validation loss": "Validation loss",
    "parameters": "Parameters",
    "trained parameters": "Trained parameters",
    "trainable parameters": "Trainable parameters",
    "output features": "Output features",
    "output shape": "Output shape",
    "threshold": "Threshold",
    "probability": "Probability",
    "label": "Label",
}
# Columns that count things: shown as integers even when stored as floats (e.g. after a join).
COUNT_WORDS = {
    "studies",
    "images",
    "patients",
    "views",
    "image size",
    "epochs",
    "seed",
    "parameters",
    "trained parameters",
    "trainable parameters",
    "output features",
    "layers",
}
INTERVAL_SUFFIXES = ("_low", "_high")


def plural(count, word: str, plural_form: str | None = None) -> str:
    """``"1 epoch"``, ``"2 epochs"``, ``"0 epochs"``: a count with its noun in the right number."""
    if isinstance(count, Real) and not isinstance(count, Integral) and float(count).is_integer():
        count = int(count)
    noun = word if count == 1 else (plural_form or f"{word}s")
    return f"{count:,} {noun}" if isinstance(count, Integral) else f"{count} {noun}"


def column_words(name) -> str:
    """A column name of the library (``image_size``) as a header in words ("Image size (px)")."""
    if isinstance(name, tuple):
        return tuple(column_words(part) for part in name)
    if not isinstance(name, str):
        return str(name)
    key = name.replace("_", " ").strip()
    if key.lower() in COLUMN_WORDS:
        return COLUMN_WORDS[key.lower()]
    for suffix, words in (("low", "95% interval, lower bound"), ("high", "95% interval, upper bound")):
        if key.lower().endswith(f" {suffix}") and key[: -len(suffix) - 1].lower() in COLUMN_WORDS:
            return f"{COLUMN_WORDS[key[: -len(suffix) - 1].lower()]} {words}"
    return key[:1].upper() + key[1:]


def seconds_text(value) -> str:
    """A duration in seconds for reading: whole seconds from 10 s up (``61``, ``1,234``), one
    decimal below (``4.2``); a timer's milliseconds are noise between runs, not a result."""
    if value is None or pd.isna(value):
        return "n/a"
    value = round(float(value), 1)
    return f"{value:.1f}" if abs(value) < 10 else f"{value:,.0f}"


def _is_seconds(header) -> bool:
    """A column of durations in seconds, by its header in words (``Training time (s)``)."""
    text = header[-1] if isinstance(header, tuple) else str(header)
    return text.endswith("(s)")


def _is_count(name, values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_integer_dtype(values):
        return True
    if not pd.api.types.is_float_dtype(values):
        return False
    key = (name[-1] if isinstance(name, tuple) else str(name)).replace("_", " ").lower()
    present = values.dropna().to_numpy(dtype=float)
    return key in COUNT_WORDS and bool(np.all(np.mod(present, 1) == 0))


def _merge_intervals(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    """``X_low`` and ``X_high`` side by side become one column ``X 95% interval``: "low to high"."""
    if isinstance(frame.columns, pd.MultiIndex):
        return frame
    merged = frame.copy()
    for column in list(frame.columns):
        if not isinstance(column, str) or not column.endswith("_low"):
            continue
        base = column[: -len("_low")]
        high = f"{base}_high"
        if high not in frame:
            continue
        text = [
            "n/a" if pd.isna(lo) or pd.isna(hi) else f"{plain(lo, digits)} to {plain(hi, digits)}"
            for lo, hi in zip(frame[column], frame[high])
        ]
        position = merged.columns.get_loc(column)
        merged = merged.drop(columns=[column, high])
        merged.insert(position, f"{column_words(base)} 95% interval", text)
    return merged


def format_table(
    frame: pd.DataFrame,
    *,
    digits: int = 3,
    caption: str | None = None,
    index: bool = True,
    words: dict | None = None,
    wrap: bool = False,
) -> Styler:
    """A result DataFrame as a table for reading (a pandas Styler, shown as HTML).

    ``index=False`` drops the index instead of showing it as the first column; ``words``
    adds or overrides header words for this table; ``caption`` is for tables shown without a
    ``{glue:figure}`` caption.  ``wrap=True`` lets the cells wrap at their spaces (on a page,
    where the cells' text allows it: a table of comparisons keeps each interval on one line with
    non-breaking spaces), so that a narrow screen shows more columns.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"format_table expects a pandas DataFrame, got {type(frame).__name__}")
    table = frame.copy()
    if index and not (isinstance(table.index, pd.RangeIndex) and table.index.name is None):
        names = [name or "" for name in table.index.names]
        table = table.reset_index(names=names if any(names) else None)
    table = _merge_intervals(table, digits)
    formats = {}
    for column in table.columns:
        values = table[column]
        if _is_count(column, values):
            formats[column] = lambda v: "n/a" if pd.isna(v) else f"{int(v):,}"
        elif pd.api.types.is_float_dtype(values):
            formats[column] = lambda v, d=digits: "n/a" if pd.isna(v) else plain(v, d)
    lookup = {**{k.lower(): v for k, v in (words or {}).items()}}

    def header(name):
        if isinstance(name, tuple):
            return tuple(header(part) for part in name)
        key = str(name).replace("_", " ").strip().lower()
        return lookup.get(key) or column_words(name)

    if isinstance(table.columns, pd.MultiIndex):
        renamed = pd.MultiIndex.from_tuples([header(c) for c in table.columns])
    else:
        renamed = pd.Index([header(c) for c in table.columns])
    formats = {renamed[list(table.columns).index(c)]: f for c, f in formats.items()}
    for column, values in zip(renamed, (table[c] for c in table.columns)):
        if _is_seconds(column) and pd.api.types.is_numeric_dtype(values):
            formats[column] = seconds_text
    table.columns = renamed
    styler = table.style.format(formats, na_rep="n/a").hide(axis="index")
    classes = "dataframe thesis-table" + (" thesis-wrap" if wrap else "")
    styler = styler.set_table_attributes(f'class="{classes}"')
    if caption:
        styler = styler.set_caption(caption)
    return styler


def _kept(run) -> str:
    kept = getattr(run, "kept", None)
    return kept if isinstance(kept, str) else str(run.training["best_epoch"])


def _ended(run) -> str:
    """How a run's training ended: "budget" (a fixed budget), "plateau" or "cap"."""
    if run.training.get("schedule") == "cosine":
        return "budget"
    return "cap" if run.hit_cap else "plateau"


def runs_table(runs: dict, *, index: str = "Run", by=None, time: bool = False) -> pd.DataFrame:
    """One row per run of ``runs`` (``{label: Run}``): test AUROC, Cohen's kappa, the epochs
    trained, the epoch whose weights were kept, and how training ended (its fixed budget, a
    plateau or the cap); with
    ``time``, the training time of its last session.  ``by`` (a function of a run) gives the
    index values instead of the labels, and the rows are then sorted by them."""
    rows = []
    for label, run in runs.items():
        row = {
            index: by(run) if by else label,
            "AUROC": run.metrics["auroc"],
            "Cohen's kappa": run.metrics["kappa"],
            "Epochs": len(run.history),
            "Epoch kept": _kept(run),
            "Ended": _ended(run),
        }
        if time:
            row["Training time (s)"] = run.environment["train_seconds_last_session"]
        rows.append(row)
    table = pd.DataFrame(rows).set_index(index)
    return table.sort_index() if by else table


def with_intervals(table: pd.DataFrame, metrics=("auroc", "kappa", "sensitivity", "specificity"), digits: int = 3):
    """A metrics table for reading (a styled table): each metric as ``estimate (low to high)``,
    its 95% bootstrap interval in brackets and held together by non-breaking spaces (a narrow
    screen wraps a cell between the estimate and its interval, never inside the interval), with
    word headers (:func:`format_table`)."""
    shown = pd.DataFrame(index=table.index)
    if "studies" in table:
        shown["studies"] = table["studies"]
    for metric in metrics:
        if metric not in table:
            continue
        shown[f"{column_words(metric)} (95% interval)"] = [
            "n/a"
            if np.isnan(value)
            else plain(value, digits)
            + ("" if np.isnan(low) else f" ({plain(low, digits)}\u00a0to\u00a0{plain(high, digits)})")
            for value, low, high in zip(table[metric], table[f"{metric}_low"], table[f"{metric}_high"])
        ]
    from mura_lib.evaluation import study_type_name

    shown.index = pd.Index([study_type_name(name) for name in shown.index], name="study type")
    return format_table(shown, digits=digits, wrap=True)
