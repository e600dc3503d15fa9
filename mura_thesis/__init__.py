"""Helpers that every chapter uses: quiet set-up, a consistent figure style, safe gluing."""

from __future__ import annotations

import logging
import os
import warnings
from numbers import Number
from typing import Any

from .tables import format_table, plural  # noqa: F401  (chapters call them as book.format_table, book.plural)


def quiet_logs() -> None:
    """Silence TensorFlow/absl chatter before TensorFlow is imported anywhere."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*Your input ran out of data.*")


def setup_notebook() -> None:
    """Call once at the top of every chapter: quiet logs, figure style, table display."""
    quiet_logs()
    import matplotlib.pyplot as plt
    import pandas as pd

    from .figures import set_style

    set_style()
    plt.ioff()
    # Every figure is kept as PNG (the HTML) and as vector PDF (the LaTeX build prefers it).
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("png", "pdf")
    pd.set_option("display.precision", 3)
    pd.set_option("display.max_rows", 60)


def to_builtin(value: Any) -> Any:
    """numpy scalars and 0-d arrays to plain Python numbers (``{glue:text}`` needs them)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    if isinstance(value, Number):
        return value
    return value


def glue(name: str, value: Any, display: bool = False) -> None:
    """``myst_nb.glue`` that stores numbers as Python numbers, so that format specs work.

    Figures and tables are glued as they are; ``display=False`` keeps the cell output clean.
    """
    from myst_nb import glue as _glue

    _glue(name, to_builtin(value), display=display)


def start(profile, settings, data_root, runs_dir="runs", cache_dir="data/cache"):
    """A results chapter's first call: the notebook set-up and the chapter's experiment plan
    (:func:`mura_thesis.profiles.chapter_plan`)."""
    from .profiles import chapter_plan

    setup_notebook()
    return chapter_plan(profile, settings, data_root, runs_dir, cache_dir)


def glue_figure(name: str, fig) -> None:
    """Glue a matplotlib figure and close it (so that it shows only where ``{glue:figure}`` puts it)."""
    import matplotlib.pyplot as plt

    glue(name, fig)
    plt.close(fig)


def glue_all(prefix: str, values: dict) -> None:
    """Glue every ``{name: value}`` as ``prefix-name`` (as ``name`` when ``prefix`` is empty)."""
    for name, value in values.items():
        glue(f"{prefix}-{name}" if prefix else name, value)


def glue_comparisons(name: str, comparisons) -> None:
    """Glue a list of comparisons as two tables: ``name``, the verdicts first (the comparison, the
    AUROC verdict, the AUROC difference with its interval, the kappa verdict), and
    ``name-details``, the rest (studies and DeLong's p for two runs; seeds, studies and the share of
    pairs of seeds won for two configurations; the kappa difference with its interval)."""
    from mura_lib import configurations, evaluation

    comparisons = list(comparisons)
    if comparisons and all(isinstance(c, configurations.ConfigurationComparison) for c in comparisons):
        main, details = configurations.configuration_table, configurations.configuration_details
    else:
        main, details = evaluation.comparison_table, evaluation.comparison_details
    glue(name, format_table(main(comparisons), index=False, wrap=True))
    glue(f"{name}-details", format_table(details(comparisons), index=False, wrap=True))


def glue_group(prefix: str, plan, group: str) -> None:
    """Glue what every results group shows: the comparisons of its configurations as the tables
    ``tab-PREFIX-paired`` (verdicts first) and ``tab-PREFIX-paired-details``
    (:func:`glue_comparisons`) and the figure ``fig-PREFIX-paired``.  The chapter's text reads
    the comparisons' values (:mod:`mura_thesis.values`)."""
    from . import figures

    comparisons = list(plan.comparisons(group).values())
    glue_comparisons(f"tab-{prefix}-paired", comparisons)
    glue_figure(f"fig-{prefix}-paired", figures.paired_differences(comparisons))
