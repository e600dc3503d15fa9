"""The results manifest of a build (``_build/results.json``) and the comparison of two builds.

Two builds of the same commit can disagree (training numerics differ between CPUs), so every
build writes what it concluded in a machine-readable form, and ``mura-thesis compare A B`` sets
two such records side by side.

What a build records
--------------------
- While a chapter executes, the build points ``$MURA_RESULTS_USED`` (:data:`RESULTS_ENV_VAR`) at a
  temporary ``.results.jsonl`` file; the chapter's experiment plan appends one JSON object per
  result it reads: ``{"kind": "comparison", "name", "group", "a", "b", "runs_a", "runs_b",
  "verdict", "auroc_diff", "auroc_low", "auroc_high", "kappa_verdict", ...}`` or ``{"kind":
  "metric", "name", "value", "low", "high"}``.  The build keeps them in the chapter's record
  (``"results"``), which it stores with the chapter's state, so a chapter reused from an earlier
  build still contributes them.  Kinds this module does not know and keys it does not read are
  kept as they are.
- The values each executed chapter glued (myst-nb ``glue``), as text (:func:`glued_text`).

The manifest (:func:`build_manifest`, format 1)::

    {"format": 1, "written", "profile", "settings", "data": {"source", "path", "manifest"},
     "commit", "environment": {"versions", "device", "backend", "numerics"},
     "runs": {run name: key}, "comparisons": {name: record}, "metrics": {name: record},
     "other results": {kind: [record, ...]}, "conflicts": [...],
     "chapters": {chapter: {"executed", "reused"}}, "glued": {chapter: {name: text}}}

Comparing two builds
--------------------
:func:`compare_manifests` reads, for every comparison in both builds, the AUROC verdict
(``verdict``) and the kappa verdict (``kappa_verdict``) of each: "agree" (the same verdict),
"flip" (one "higher", the other "lower"), "one undetermined" (one decided, the other
"undetermined").  It also says whether the two builds' numbers differ by more than their
intervals allow (see :func:`beyond_intervals`).
"""

from __future__ import annotations

import html as html_module
import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from mura_lib.files import atomic_write_text, short_hash

# Where a chapter's experiment plan appends the results it reads (one JSON object a line); set by
# the build for each chapter it executes.  The name is the plan's, which writes the records.
from .plan import RESULTS_ENV_VAR  # noqa: F401 (re-exported for the build)

FORMAT = 1
MANIFEST_NAME = "results.json"
# The result kinds that get a section of their own, keyed by the result's name.
SECTIONS = {"comparison": "comparisons", "metric": "metrics"}
# Per measure: the verdict's key and those of the difference and its interval.
MEASURES = {
    "AUROC": ("verdict", "auroc_diff", "auroc_low", "auroc_high"),
    "kappa": ("kappa_verdict", "kappa_diff", "kappa_low", "kappa_high"),
}
DECIDED = ("higher", "lower")
# The count of compare_manifests that each verdict status adds to ("differ": "other").
STATUS_COUNTS = {"agree": "agree", "flip": "flips", "one undetermined": "one_undetermined"}
UNDETERMINED = "undetermined"
# Glued text longer than this (and every glued table) is kept as its first HEAD characters and a hash.
MAX_TEXT = 500
HEAD = 200


class ManifestError(ValueError):
    """A results manifest that cannot be read; the message names the file and the problem."""


# --- glued values ----------------------------------------------------------------------------


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _shorten(text: str, digest_of: str | None = None, what: str = "") -> str:
    """``text`` as it is if short; else its first HEAD characters and the hash of ``digest_of``."""
    digest_of = text if digest_of is None else digest_of
    if what or len(text) > MAX_TEXT:
        head = text[:HEAD].rstrip()
        ellipsis = " …" if len(text) > HEAD else ""
        return f"{head}{ellipsis} [{what or f'{len(text):,} characters'}, sha256 {short_hash(digest_of.encode())}]"
    return text


def _normalised_html(markup: str) -> str:
    """A table's HTML without what changes from one rendering to the next: a pandas Styler names
    its table ``T_<random>`` and every cell after it."""
    for table_id in set(re.findall(r'id="(T_[0-9a-zA-Z]+)"', markup)):
        markup = markup.replace(table_id, "T_")
    return markup


def glued_text(data: dict) -> str | None:
    """The text of one glued value (its MIME bundle, without myst-nb's prefix), or ``None`` for a
    figure (an ``image/*`` or PDF bundle).

    - Plain values: their ``text/plain``, with object addresses (``at 0x7f...``) removed.
    - Markdown or LaTeX values: their ``text/markdown`` / ``text/latex`` (their ``text/plain`` is
      only the object's type).
    - Tables (a bundle with ``text/html``, such as a pandas Styler or DataFrame): the first 200
      characters of the table's text, without markup, and the hash of its HTML (a Styler's
      random table id replaced), ``"Run AUROC ... … [HTML table, sha256 0123456789abcdef]"``.
    - Any text longer than 500 characters: its first 200 characters, its length and its hash.
    """
    if any(key.startswith("image/") or key == "application/pdf" for key in data):
        return None
    if "text/html" in data:
        markup = _normalised_html(_text(data["text/html"]))
        markup = re.sub(r"<style.*?</style>", " ", markup, flags=re.S)
        words = re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", markup))).strip()
        return _shorten(words, markup, "HTML table")
    for kind in ("text/markdown", "text/latex", "text/plain"):
        if kind in data:
            text = re.sub(r" at 0x[0-9a-fA-F]+", "", _text(data[kind]))
            return _shorten(text)
    return None


def glued_values(notebook_path: str | os.PathLike) -> dict[str, str]:
    """``{glue name: text}`` of every myst-nb glue output of an executed notebook (outputs with a
    ``scrapbook`` name in their metadata), in the notebook's order; figures are left out and a
    name glued twice keeps its last value, as myst-nb does.  See :func:`glued_text`."""
    import nbformat

    notebook = nbformat.read(str(notebook_path), as_version=4)
    values = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            scrapbook = output.get("metadata", {}).get("scrapbook")
            if not isinstance(scrapbook, dict) or not scrapbook.get("name"):
                continue
            prefix = len(scrapbook.get("mime_prefix") or "")
            data = {key[prefix:]: value for key, value in output.get("data", {}).items()}
            text = glued_text(data)
            if text is not None:
                values[scrapbook["name"]] = text
    return values


# --- the manifest ----------------------------------------------------------------------------


def numerics_environment() -> dict:
    """The numeric settings of the build process, which the chapters' kernels inherit (each run
    records its own in its key): ``TF_ENABLE_ONEDNN_OPTS``, ``$MURA_THREADS`` and the intra-op
    thread count it gives (see :mod:`mura_lib.numerics`)."""
    from mura_lib import numerics

    numerics.configure()
    try:
        threads = numerics.cpu_threads()
    except ValueError as error:
        threads = str(error)
    return {
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        numerics.THREADS_ENV_VAR: os.environ.get(numerics.THREADS_ENV_VAR),
        "threads": threads,
    }


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def build_manifest(
    *,
    profile: str,
    settings: dict,
    data: dict,
    commit: str,
    environment: dict,
    records: list[dict],
    executed_dir: str | os.PathLike | None = None,
) -> dict:
    """The manifest of a build from its chapters' records (as :meth:`Builder.run_chapters`
    returns them: ``"chapter"``, ``"runs"`` as ``[[name, key], ...]``, ``"results"``) and the
    executed notebooks in ``executed_dir`` (``<chapter>.ipynb``, for the glued values).

    Every comparison and metric is kept once, under its name (chapters read the same ones); a
    name that two chapters report differently is kept as the first chapter has it and listed under
    ``"conflicts"``; so is a run name with two keys.  Results of other kinds are kept under
    ``"other results"``, by kind.  The manifest is returned as its JSON reads back (tuples as
    lists), so that it compares equal to a written one."""
    runs: dict[str, str] = {}
    sections: dict[str, dict] = {section: {} for section in SECTIONS.values()}
    first_chapter: dict[tuple, str] = {}
    other: dict[str, list] = {}
    conflicts = []
    chapters, glued = {}, {}
    for record in records:
        chapter = record.get("chapter", "?")
        chapters[chapter] = {"executed": record.get("finished"), "reused": bool(record.get("cached"))}
        for name, key in record.get("runs") or []:
            if runs.setdefault(name, key) != key:
                conflicts.append({"kind": "run", "name": name, "chapters": [first_chapter[("run", name)], chapter]})
            first_chapter.setdefault(("run", name), chapter)
        for result in record.get("results") or []:
            kind, name = result.get("kind"), result.get("name")
            section = SECTIONS.get(kind)
            if section is None or not isinstance(name, str):
                bucket = other.setdefault(str(kind), [])
                if _canonical(result) not in {_canonical(kept) for kept in bucket}:
                    bucket.append(result)
                continue
            kept = sections[section].setdefault(name, result)
            if _canonical(kept) != _canonical(result):
                conflicts.append({"kind": kind, "name": name, "chapters": [first_chapter[(kind, name)], chapter]})
            first_chapter.setdefault((kind, name), chapter)
        notebook = Path(executed_dir) / f"{chapter}.ipynb" if executed_dir is not None else None
        glued[chapter] = glued_values(notebook) if notebook is not None and notebook.exists() else {}
    manifest = {
        "format": FORMAT,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": profile,
        "settings": settings,
        "data": data,
        "commit": commit,
        "environment": dict(environment) | {"numerics": numerics_environment()},
        "runs": runs,
        **sections,
        "other results": other,
        "conflicts": conflicts,
        "chapters": chapters,
        "glued": glued,
    }
    return json.loads(json.dumps(manifest, default=str))


def write_manifest(path: str | os.PathLike, manifest: dict) -> Path:
    """Write ``manifest`` to ``path`` as JSON, atomically."""
    path = Path(path)
    atomic_write_text(path, json.dumps(manifest, indent=1, default=str) + "\n")
    return path


def manifest_path(path: str | os.PathLike) -> Path:
    """``path`` itself, or for a folder ``DIR/_build/results.json`` (a project) or ``DIR/results.json``."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "_build" / MANIFEST_NAME, path / MANIFEST_NAME):
            if candidate.is_file():
                return candidate
        raise ManifestError(
            f"{path} is a folder without a results manifest: neither {path / '_build' / MANIFEST_NAME} "
            f"nor {path / MANIFEST_NAME} exists."
        )
    return path


def load_manifest(path: str | os.PathLike) -> dict:
    """Read and check a manifest (a file, or a folder as :func:`manifest_path` resolves it);
    :class:`ManifestError` says which file and what is wrong."""
    path = manifest_path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file.") from None
    except OSError as error:
        raise ManifestError(f"{path}: cannot be read ({error.strerror or error}).") from None
    try:
        manifest = json.loads(text)
    except ValueError as error:
        raise ManifestError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: not a results manifest (a JSON {type(manifest).__name__}, not an object).")
    if manifest.get("format") != FORMAT:
        raise ManifestError(
            f"{path}: not a results manifest of format {FORMAT} (its format is {manifest.get('format')!r}); "
            "it is written by `mura-thesis build` as _build/results.json."
        )
    for section in ("comparisons", "metrics"):
        entries = manifest.get(section)
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise ManifestError(f"{path}: its {section!r} section is missing or not an object of records.")
    for section in ("runs", "glued"):
        if not isinstance(manifest.get(section, {}), dict):
            raise ManifestError(f"{path}: its {section!r} section is not an object.")
    manifest["path"] = str(path)
    return manifest


def reference_manifest(profile_name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The manifest of the reference build kept for a profile, if the repository keeps one:
    ``benchmarks/results/reference_<profile>_results.json`` (demo:
    ``benchmarks/results/reference_demo_results.json``)."""
    if root is None:
        from .project import project_root

        root = project_root()
    path = Path(root) / "benchmarks" / "results" / f"reference_{profile_name}_results.json"
    return path if path.is_file() else None


# --- comparing two builds --------------------------------------------------------------------


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def verdict_status(a, b) -> str:
    """The status of two verdicts: "agree", "flip" (one "higher", the other "lower"), "one
    undetermined" (one decided, one "undetermined"), "differ" (other different verdicts) or
    "missing" (either has none)."""
    if a is None or b is None:
        return "missing"
    # Builds before the verdict words were unified said "no detectable difference" of two runs.
    a, b = (UNDETERMINED if v == "no detectable difference" else v for v in (a, b))
    if a == b:
        return "agree"
    if not (isinstance(a, str) and isinstance(b, str)):
        return "differ"
    if {a, b} == set(DECIDED):
        return "flip"
    if UNDETERMINED in (a, b) and {a, b} - {UNDETERMINED} <= set(DECIDED):
        return "one undetermined"
    return "differ"


def beyond_intervals(value_a, low_a, high_a, value_b, low_b, high_b) -> bool | None:
    """Whether two builds' estimates of one number differ by more than their intervals allow:
    ``|d_A - d_B| > sqrt(h_A² + h_B²)``, with ``h`` each build's interval half-width,
    ``(high - low) / 2``.  ``None`` when either lacks the value or its interval."""
    numbers = [_number(v) for v in (value_a, low_a, high_a, value_b, low_b, high_b)]
    if any(n is None for n in numbers):
        return None
    value_a, low_a, high_a, value_b, low_b, high_b = numbers
    half_a, half_b = (high_a - low_a) / 2, (high_b - low_b) / 2
    return abs(value_a - value_b) > math.hypot(half_a, half_b)


def _presence(name: str, a: dict, b: dict) -> str:
    return "both" if name in a and name in b else ("A only" if name in a else "B only")


def _summary(manifest: dict) -> dict:
    environment = manifest.get("environment") or {}
    return {
        "path": manifest.get("path"),
        "profile": manifest.get("profile"),
        "commit": manifest.get("commit"),
        "device": environment.get("device"),
        "data": (manifest.get("data") or {}).get("manifest"),
    }


def compare_manifests(a: dict, b: dict) -> dict:
    """Set two builds' manifests side by side.

    For every comparison in both builds, and for each measure (AUROC: ``verdict``,
    ``auroc_diff``, ``auroc_low``, ``auroc_high``; kappa: ``kappa_verdict``, ``kappa_diff``,
    ``kappa_low``, ``kappa_high``): both verdicts and their status (:func:`verdict_status`:
    "agree", "flip", "one undetermined"), both differences with their intervals, and whether the
    differences are further apart than their intervals allow: ``|d_A - d_B| > sqrt(h_A² + h_B²)``
    with ``h = (high - low) / 2`` of each build's interval (:func:`beyond_intervals`).  The same
    rule applies to every metric with an interval in both builds (``value``, ``low``, ``high``).
    Comparisons and metrics of one build only are listed as such ("A only", "B only").  Glued
    values are counted as equal or different, for information only.

    Returns ``{"a", "b" (each build's profile, commit, device, data), "differences" (experiment
    settings that differ, whether the data differ), "comparisons": [...], "metrics": [...],
    "glued", "runs", "counts"}``; ``counts`` holds ``verdicts`` (compared, both builds having
    one), ``agree``, ``flips``, ``one_undetermined``, ``other`` (other differences), ``numbers``
    (with intervals in both), ``beyond``, ``only_in_a``, ``only_in_b``, and ``by_measure``.
    """
    comparisons_a, comparisons_b = a.get("comparisons") or {}, b.get("comparisons") or {}
    rows = []
    measure_counts = {
        measure: {"verdicts": 0, "agree": 0, "flips": 0, "one_undetermined": 0, "other": 0} for measure in MEASURES
    }
    beyond = numbers = 0
    for name in list(comparisons_a) + [n for n in comparisons_b if n not in comparisons_a]:
        presence = _presence(name, comparisons_a, comparisons_b)
        row = {"name": name, "in": presence, "measures": {}}
        if presence == "both":
            ra, rb = comparisons_a[name], comparisons_b[name]
            for measure, (verdict, diff, low, high) in MEASURES.items():
                status = verdict_status(ra.get(verdict), rb.get(verdict))
                apart = beyond_intervals(
                    ra.get(diff), ra.get(low), ra.get(high), rb.get(diff), rb.get(low), rb.get(high)
                )
                row["measures"][measure] = {
                    "verdict_a": ra.get(verdict),
                    "verdict_b": rb.get(verdict),
                    "status": status,
                    **{f"{key}_a": ra.get(field) for key, field in (("diff", diff), ("low", low), ("high", high))},
                    **{f"{key}_b": rb.get(field) for key, field in (("diff", diff), ("low", low), ("high", high))},
                    "beyond": apart,
                }
                counts = measure_counts[measure]
                if status != "missing":
                    counts["verdicts"] += 1
                    counts[STATUS_COUNTS.get(status, "other")] += 1
                if apart is not None:
                    numbers += 1
                    beyond += apart
        rows.append(row)

    metrics_a, metrics_b = a.get("metrics") or {}, b.get("metrics") or {}
    metric_rows = []
    for name in list(metrics_a) + [n for n in metrics_b if n not in metrics_a]:
        presence = _presence(name, metrics_a, metrics_b)
        row = {"name": name, "in": presence}
        if presence == "both":
            ma, mb = metrics_a[name], metrics_b[name]
            row |= {f"{key}_a": ma.get(key) for key in ("value", "low", "high")}
            row |= {f"{key}_b": mb.get(key) for key in ("value", "low", "high")}
            row["beyond"] = beyond_intervals(
                ma.get("value"), ma.get("low"), ma.get("high"), mb.get("value"), mb.get("low"), mb.get("high")
            )
            if row["beyond"] is not None:
                numbers += 1
                beyond += row["beyond"]
        metric_rows.append(row)

    glued = {"equal": 0, "differ": 0, "only_in_a": 0, "only_in_b": 0, "differing": []}
    glued_a, glued_b = a.get("glued") or {}, b.get("glued") or {}
    for chapter in list(glued_a) + [c for c in glued_b if c not in glued_a]:
        values_a, values_b = glued_a.get(chapter) or {}, glued_b.get(chapter) or {}
        for name in list(values_a) + [n for n in values_b if n not in values_a]:
            if name not in values_b:
                glued["only_in_a"] += 1
            elif name not in values_a:
                glued["only_in_b"] += 1
            elif values_a[name] == values_b[name]:
                glued["equal"] += 1
            else:
                glued["differ"] += 1
                glued["differing"].append(f"{chapter}/{name}")

    runs_a, runs_b = a.get("runs") or {}, b.get("runs") or {}
    runs = {
        "same_key": sum(1 for n in runs_a if n in runs_b and runs_a[n] == runs_b[n]),
        "other_key": sum(1 for n in runs_a if n in runs_b and runs_a[n] != runs_b[n]),
        "only_in_a": sum(1 for n in runs_a if n not in runs_b),
        "only_in_b": sum(1 for n in runs_b if n not in runs_a),
    }

    settings_a, settings_b = a.get("settings") or {}, b.get("settings") or {}
    differences = {
        "settings": sorted(k for k in set(settings_a) | set(settings_b) if settings_a.get(k) != settings_b.get(k)),
        "data": (a.get("data") or {}).get("manifest") != (b.get("data") or {}).get("manifest"),
    }
    totals = {key: sum(c[key] for c in measure_counts.values()) for key in next(iter(measure_counts.values()))}
    counts = totals | {
        "numbers": numbers,
        "beyond": beyond,
        "only_in_a": sum(r["in"] == "A only" for r in rows),
        "only_in_b": sum(r["in"] == "B only" for r in rows),
        "by_measure": measure_counts,
    }
    return {
        "a": _summary(a),
        "b": _summary(b),
        "differences": differences,
        "comparisons": rows,
        "metrics": metric_rows,
        "glued": glued,
        "runs": runs,
        "counts": counts,
    }


def _plural(count: int, word: str, plural_form: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural_form or word + 's'}"


def summary_line(result: dict) -> str:
    """``"verdicts agreeing: 11 of 12 (1 one undetermined, 0 flips); numbers beyond their
    intervals: 0 of 12"``, with the comparisons of one build only, if any."""
    counts = result["counts"]
    details = [f"{counts['one_undetermined']} one undetermined", _plural(counts["flips"], "flip")]
    if counts["other"]:
        details.append(f"{counts['other']} other")
    line = (
        f"verdicts agreeing: {counts['agree']} of {counts['verdicts']} ({', '.join(details)}); "
        f"numbers beyond their intervals: {counts['beyond']} of {counts['numbers']}"
    )
    if counts["only_in_a"] or counts["only_in_b"]:
        line += f"; comparisons in A only: {counts['only_in_a']}, in B only: {counts['only_in_b']}"
    return line


def _interval(value, low, high, *, signed: bool = True) -> str:
    """``"+0.012 [-0.005, +0.030]"`` (a difference) or ``"0.812 [0.790, 0.834]"``."""
    value, low, high = _number(value), _number(low), _number(high)
    spec = "+.3f" if signed else ".3f"
    if value is None:
        return "n/a"
    if low is None or high is None:
        return f"{value:{spec}}"
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


def _beyond_word(beyond) -> str:
    return "n/a" if beyond is None else ("yes" if beyond else "no")


def comparison_table(result: dict):
    """The comparisons of both builds as a pandas table: one row per comparison and measure,
    with both verdicts, the status, both differences with their intervals and whether they lie
    beyond them (comparisons of one build only have one row, saying so)."""
    import pandas as pd

    rows = []
    for comparison in result["comparisons"]:
        if comparison["in"] != "both":
            rows.append({"comparison": comparison["name"], "status": f"in {comparison['in']}"})
            continue
        for measure, m in comparison["measures"].items():
            rows.append(
                {
                    "comparison": comparison["name"],
                    "measure": measure,
                    "verdict A": m["verdict_a"],
                    "verdict B": m["verdict_b"],
                    "status": m["status"],
                    "diff A [interval]": _interval(m["diff_a"], m["low_a"], m["high_a"]),
                    "diff B [interval]": _interval(m["diff_b"], m["low_b"], m["high_b"]),
                    "beyond intervals": _beyond_word(m["beyond"]),
                }
            )
    columns = [
        "comparison",
        "measure",
        "verdict A",
        "verdict B",
        "status",
        "diff A [interval]",
        "diff B [interval]",
        "beyond intervals",
    ]
    return pd.DataFrame(rows, columns=columns).fillna("")


def metric_table(result: dict):
    """The metrics of both builds as a pandas table: both values with their intervals and
    whether they lie beyond them."""
    import pandas as pd

    rows = []
    for metric in result["metrics"]:
        if metric["in"] != "both":
            rows.append({"metric": metric["name"], "beyond intervals": f"in {metric['in']}"})
            continue
        rows.append(
            {
                "metric": metric["name"],
                "A [interval]": _interval(metric["value_a"], metric["low_a"], metric["high_a"], signed=False),
                "B [interval]": _interval(metric["value_b"], metric["low_b"], metric["high_b"], signed=False),
                "beyond intervals": _beyond_word(metric["beyond"]),
            }
        )
    return pd.DataFrame(rows, columns=["metric", "A [interval]", "B [interval]", "beyond intervals"]).fillna("")


def _left_aligned(table) -> str:
    table = table.copy()
    for column in table.columns:
        width = max([len(str(column)), *(len(str(v)) for v in table[column])])
        table[column] = [str(v).ljust(width) for v in table[column]]
    return "\n".join(line.rstrip() for line in table.to_string(index=False, justify="left").splitlines())


def format_comparison(result: dict) -> str:
    """The report ``mura-thesis compare`` prints: the two builds, the comparisons' table, the
    metrics' table, the glued values' count and the summary line."""
    lines = []
    for label in ("a", "b"):
        build = result[label]
        lines.append(
            f"{label.upper()}: {build['path'] or 'manifest'} (profile {build['profile']}, commit {build['commit']}, "
            f"{build['device']})"
        )
    differences = result["differences"]
    if differences["settings"]:
        lines.append(f"The builds' experiment settings differ: {', '.join(differences['settings'])}.")
    if differences["data"]:
        lines.append("The builds read different data (their data manifests differ).")
    lines.append("")
    table = comparison_table(result)
    lines += ["Comparisons:", _left_aligned(table) if len(table) else "(none)", ""]
    metrics = metric_table(result)
    if len(metrics):
        lines += ["Metrics:", _left_aligned(metrics), ""]
    glued = result["glued"]
    glued_line = (
        f"Glued values (information only): {glued['equal']} equal, {glued['differ']} differ, "
        f"{glued['only_in_a']} in A only, {glued['only_in_b']} in B only"
    )
    if glued["differing"]:
        shown = glued["differing"][:10]
        more = f" and {len(glued['differing']) - len(shown)} more" if len(glued["differing"]) > len(shown) else ""
        glued_line += f"; differing: {', '.join(shown)}{more}"
    lines += [glued_line + ".", summary_line(result)]
    return "\n".join(lines)


# --- the status page -------------------------------------------------------------------------


def _markdown_escaped(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", str(text))


def reference_section(manifest: dict, profile_name: str, reference: str | os.PathLike | None, root=None) -> str:
    """The status page's section on the reference build: how many of this build's verdicts
    agree with the reference's, and the comparisons whose verdicts differ; or that no reference
    is kept for the profile (``reference`` is ``None``)."""
    lines = ["## Reference build", ""]
    if reference is None:
        return "\n".join(lines + [f"No reference build is kept for the {profile_name} profile.", ""])
    reference = Path(reference)
    shown = reference.relative_to(root) if root is not None and reference.is_relative_to(root) else reference
    try:
        kept = load_manifest(reference)
    except ManifestError as error:
        return "\n".join(lines + [f"The reference build's manifest could not be read: {_markdown_escaped(error)}", ""])
    result = compare_manifests(manifest, kept)
    counts = result["counts"]
    lines += [
        f"Verdicts agreeing with the reference build: {counts['agree']} of {counts['verdicts']}.",
        "",
        f"The reference build is `{shown.as_posix()}` (commit `{kept.get('commit')}`, "
        f"{_markdown_escaped(result['b']['device'] or 'device not recorded')}).",
    ]
    differences = result["differences"]
    if differences["settings"] or differences["data"]:
        what = []
        if differences["settings"]:
            what.append(f"other experiment settings ({', '.join(differences['settings'])})")
        if differences["data"]:
            what.append("other data")
        lines.append(f"It was built with {' and '.join(what)}.")
    lines.append("")
    differing = [
        f"- {_markdown_escaped(c['name'])} ({measure}): this build {m['verdict_a'] or 'none'}, "
        f"the reference {m['verdict_b'] or 'none'}."
        for c in result["comparisons"]
        if c["in"] == "both"
        for measure, m in c["measures"].items()
        if m["status"] not in ("agree", "missing")
    ]
    if differing:
        lines += ["Verdicts that differ:", "", *differing, ""]
    if counts["only_in_a"] or counts["only_in_b"]:
        lines += [
            f"Comparisons of this build only: {counts['only_in_a']}; of the reference only: {counts['only_in_b']}.",
            "",
        ]
    return "\n".join(lines)
