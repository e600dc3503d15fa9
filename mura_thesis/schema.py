"""One schema for everything that sets a chapter's parameters: profiles (``params/*.yaml``),
``-f`` files and ``-p`` values of ``mura-thesis run``.  They are checked before any kernel starts.

The parameters a chapter accepts are the names in its ``parameters`` cell (read with papermill),
typed by their default values; :data:`RULES` adds what a default cannot say (ranges, choices).
A new parameter needs nothing here unless it has such limits: add a line to :data:`RULES`.

Unknown keys, wrong types and values out of range are :class:`ParameterError`\\ s naming the file
(or ``-p``), the key and what is expected; YAML syntax errors name the file and the line.
"""

from __future__ import annotations

import ast
import difflib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

from mura_lib.config import IMAGE_MODELS
from mura_lib.dataset import MISSING_POLICIES, PATIENT_OVERLAP_POLICIES


class ParameterError(ValueError):
    """A profile, parameter file or ``-p`` value does not fit the schema."""


def _int(minimum=None, maximum=None, *, zero: str | None = None) -> dict:
    """An integer schema; ``zero`` allows 0 as well, with that meaning."""
    rule = {"type": "integer"}
    if minimum is not None:
        rule["minimum"] = minimum
    if maximum is not None:
        rule["maximum"] = maximum
    span = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
    text = f"an integer {span}" if minimum is not None else "an integer"
    if zero:
        return {"anyOf": [{"const": 0}, rule], "description": f"{text}, or 0 ({zero})"}
    return rule | {"description": text}


# The ab-initio CNN's four 2x2 pooling blocks need at least 16 pixels; a smaller size would pass
# here and fail every run later.
IMAGE_SIZE = _int(16, 1024)
# Limits of the experiment settings (mura_thesis.plan.PlanSettings) and of the chapters' own
# parameters (JSON Schema).  Chapter parameters not listed here are checked against the type of
# their default value only.
RULES: dict[str, dict] = {
    "seed": _int(0),
    "image_size": IMAGE_SIZE,
    "epochs": _int(1),
    "min_epochs": _int(0),
    "lr_patience": _int(1),
    "early_stopping_patience": _int(1),
    "smoothing": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "a number in (0, 1]"},
    "schedule": {"enum": ["plateau", "cosine"], "description": "'plateau' or 'cosine'"},
    "average_epochs": _int(1),
    # The validation patients are one fold of round(1 / fraction) folds: at least two.
    "validation_fraction": {
        "type": "number",
        "exclusiveMinimum": 0,
        "exclusiveMaximum": 0.5,
        "description": "a number in (0, 0.5)",
    },
    "n_resamples": _int(100),
    "seeds": {
        "type": "array",
        "items": _int(0),
        "minItems": 1,
        "uniqueItems": True,
        "description": "a non-empty list of distinct seeds (integers >= 0)",
    },
    "image_sizes": {
        "type": "array",
        "items": IMAGE_SIZE,
        "minItems": 1,
        "description": "a non-empty list of image sizes in [16, 1024]",
    },
    "regularisation": {"type": "boolean", "description": "true or false"},
    "development": {"type": "boolean", "description": "true or false"},
    "backbone_image_size": _int(32, 1024, zero="the baseline's size"),
    "backbone_epochs": _int(1, zero="the baseline's epoch cap"),
    "source_scale": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "a number in (0, 1]"},
    "multiview_image_size": _int(16, 1024, zero="the baseline's size"),
    "multiview_epochs": _int(1, zero="the baseline's cap"),
    "architecture_image_size": _int(32, 1024),
    "multiview_max_views": _int(1),
    "multiview_learning_rate": {"type": "number", "exclusiveMinimum": 0, "description": "a positive number"},
    "fine_tune_learning_rate": {"type": "number", "exclusiveMinimum": 0, "description": "a positive number"},
    # The Grad-CAM figure of chapter 08 shows this many studies per group; with none it has no panel.
    "gradcam_examples": _int(1),
    "size_sample": _int(1),
    "augmentation_samples": _int(1),
    "pretrained_weights": {
        "anyOf": [{"type": "null"}, {"type": "string", "minLength": 1}],
        "description": "imagenet, the path of a weights file, or null (pretrain on the synthetic source task)",
    },
    "data_source": {"enum": ["synthetic", "mura"], "description": "synthetic or mura"},
}


def _rules() -> dict[str, dict]:
    names = list(IMAGE_MODELS)
    return RULES | {
        "backbones": {
            "type": "array",
            "items": {"enum": names},
            "minItems": 1,
            "description": f"a non-empty list of backbones from {names}",
        },
        "backbone_modes": {
            "type": "array",
            "items": {"enum": ["frozen", "fine-tuned"]},
            "minItems": 1,
            "description": "a non-empty list of 'frozen' and 'fine-tuned'",
        },
    }


def settings_properties() -> dict[str, dict]:
    """The schema of every experiment setting (the fields of mura_thesis.plan.PlanSettings)."""
    from .plan import PlanSettings

    defaults = PlanSettings().to_dict()
    return {name: parameter_schema(name, defaults[name]) for name in PlanSettings.fields()}


# Parameters the build sets itself; a profile or -p does not.
AUTOMATIC = ("profile", "data_root", "data_source", "runs_dir", "cache_dir", "settings")


DATA_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source"],
    "properties": {
        "source": {"enum": ["synthetic", "mura"], "description": "synthetic or mura"},
        "scale": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "a number in (0, 1] (1 = MURA's size)",
        },
        "valid_scale": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 2,
            "description": "a number in (0, 2]: the size of the valid (test) split relative to MURA's",
        },
        "image_size": _int(16, 4096),
        "seed": _int(0),
        "path": {"type": "string", "description": "the path of a MURA-v1.1 folder"},
        "missing": {"enum": list(MISSING_POLICIES[:2]), "description": "error or drop"},
        "patient_overlap": {
            "enum": list(PATIENT_OVERLAP_POLICIES),
            "description": "error or allow (patients with studies in both splits)",
        },
        "max_excluded_fraction": {"type": "number", "minimum": 0, "maximum": 1, "description": "a number in [0, 1]"},
    },
}


def _type_schema(default) -> dict:
    """A schema from a parameter's default value (its type; lists by their first item)."""
    if isinstance(default, bool):
        return {"type": "boolean", "description": "true or false"}
    if isinstance(default, int):
        return {"type": "integer", "description": "an integer"}
    if isinstance(default, float):
        return {"type": "number", "description": "a number"}
    if isinstance(default, str):
        return {"type": "string", "description": "a string"}
    if isinstance(default, (list, tuple)):
        items = _type_schema(default[0]) if default else {}
        return {"type": "array", "items": items, "description": f"a list of {items.get('description', 'values')}s"}
    return {}


def parameter_schema(name: str, default) -> dict:
    return _rules().get(name) or _type_schema(default)


@lru_cache(maxsize=8)
def _declared(root: str, sources: tuple[tuple[str, float], ...]) -> dict[str, dict]:
    import jupytext
    import papermill

    declared = {}
    with tempfile.TemporaryDirectory() as folder:
        for entry, _ in sources:
            notebook = jupytext.read(Path(root) / f"{entry}.md")
            notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            path = os.path.join(folder, "chapter.ipynb")
            jupytext.write(notebook, path, fmt="ipynb")
            parameters = papermill.inspect_notebook(path)
            declared[Path(entry).name] = {name: _literal(p["default"]) for name, p in parameters.items()}
    return declared


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def chapter_parameters(root: Path) -> dict[str, dict]:
    """``{chapter: {parameter: default}}`` for every notebook chapter of the book."""
    from .project import is_notebook, toc_entries

    entries = [e for e in toc_entries(root) if is_notebook(root / f"{e}.md")]
    sources = tuple((e, (root / f"{e}.md").stat().st_mtime) for e in entries)
    return _declared(str(root), sources)


def _object(properties: dict, what: str) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": properties, "description": what}


def chapter_schema(declared: dict) -> dict:
    return _object({name: parameter_schema(name, default) for name, default in declared.items()}, "parameters")


def profile_schema(root: Path) -> dict:
    chapters = {
        name: {k: v for k, v in declared.items() if k not in AUTOMATIC}
        for name, declared in chapter_parameters(root).items()
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["data"],
        "properties": {
            "description": {"type": "string", "description": "a string"},
            "data": DATA_SCHEMA,
            "parameters": {
                "anyOf": [{"type": "null"}, _object(settings_properties(), "experiment settings")],
                "description": "experiment settings",
            },
            "chapters": {
                "anyOf": [
                    {"type": "null"},
                    _object(
                        {name: {"anyOf": [{"type": "null"}, chapter_schema(d)]} for name, d in chapters.items()},
                        "chapters",
                    ),
                ],
                "description": "chapters",
            },
        },
    }


# --- checking ----------------------------------------------------------------------------------


def read_yaml(path: str | os.PathLike):
    """Parse a YAML file; syntax errors become a :class:`ParameterError` with file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ParameterError(f"{path}: a folder, not a file; give the path of a YAML file.") from None
    except PermissionError:
        raise ParameterError(f"{path}: not readable (permission denied).") from None
    except UnicodeDecodeError as error:
        raise ParameterError(f"{path}: not UTF-8 text (byte offset {error.start}); save it as UTF-8.") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = " ".join(str(part) for part in (error.context, error.problem) if part)
        raise ParameterError(f"{where}: YAML syntax error: {problem}.") from None
    except yaml.YAMLError as error:
        raise ParameterError(f"{path}: YAML error: {error}") from None


def _resolve(schema: dict, instance, path) -> dict:
    """The sub-schema that describes ``path`` (for the 'expected' part of a message)."""
    node = schema
    for part in path:
        if "anyOf" in node and "properties" not in node:
            node = next((s for s in node["anyOf"] if s.get("type") == "object"), node)
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return node


def _key(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problems(schema: dict, instance) -> list[str]:
    """One message per problem of ``instance`` (``key: value is wrong; expected ...``)."""
    messages = []
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        for leaf in _leaves(error):
            messages.append(_message(schema, leaf))
    return list(dict.fromkeys(messages))


def _leaves(error):
    """The most specific errors below an ``anyOf`` (the one that nearly matched)."""
    if error.validator != "anyOf" or not error.context:
        return [error]
    objects = [
        e for e in error.context if e.validator in ("additionalProperties", "type") and e.validator_value != "null"
    ]
    typed = [e for e in error.context if e.validator != "type" or e.validator_value not in ("null",)]
    deepest = max(typed or error.context, key=lambda e: len(e.absolute_path))
    if len(deepest.absolute_path) > len(error.absolute_path) or objects:
        return [deepest] if deepest.validator != "anyOf" else _leaves(deepest)
    return [error]


def _message(schema: dict, error) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"{_key([*path, key])}: unknown key{hint}")
        return "; ".join(parts) + f". Known keys{' of ' + _key(path) if path else ''}: {', '.join(allowed)}."
    if error.validator == "required":
        return f"{_key(path) or 'top level'}: {error.message}."
    node = _resolve(schema, error.instance, path)
    expected = node.get("description") or error.schema.get("description") or error.message
    # For an item of a list, say what the whole list should be.
    if path and isinstance(path[-1], int):
        parent = _resolve(schema, None, path[:-1])
        expected = parent.get("description", expected)
    return f"{_key(path)}: {error.instance!r} is not valid; expected {expected}."


def check(schema: dict, instance, where: str) -> None:
    found = problems(schema, instance)
    if found:
        raise ParameterError(f"{where}: " + ("\n  ".join(found) if len(found) == 1 else "\n  " + "\n  ".join(found)))


def settings_problems(settings: dict) -> list[str]:
    """What the schema cannot say of one value alone: combinations of experiment settings that
    pass it but that the chapters cannot report (one message each)."""
    found = []
    base, sizes = settings.get("image_size"), settings.get("image_sizes")
    if base is not None and sizes is not None and all(int(size) == int(base) for size in sizes):
        found.append(
            f"image_sizes: {list(sizes)} has no size other than image_size ({base}); the input-size "
            "chapter (05_2_image_size) compares other sizes with the baseline's, so list at least one more"
        )
    return found


def check_settings(settings: dict, where: str) -> None:
    """:func:`settings_problems` as one :class:`ParameterError`."""
    found = settings_problems(settings)
    if found:
        raise ParameterError(f"{where}: " + "; ".join(found) + ".")


def check_profile(root: Path, path: Path, values) -> None:
    """Check a profile's content against the schema (``path`` names it in messages)."""
    if not isinstance(values, dict):
        raise ParameterError(
            f"{path}: a profile is a mapping with the sections description, data, parameters, chapters."
        )
    check(profile_schema(root), values, str(path))


def check_overrides(root: Path, chapter: str | None, sources: list[tuple[str, dict]]) -> None:
    """Check ``-f`` files and ``-p`` values: ``[(where, {name: value})]``.  They may set any
    experiment setting and, for one chapter (``chapter``), that chapter's own parameters."""
    properties = dict(settings_properties())
    if chapter is not None:
        declared = chapter_parameters(root).get(chapter)
        if declared is None:
            return  # an unknown chapter is reported by the build with the list of chapters
        properties |= {k: parameter_schema(k, v) for k, v in declared.items() if k not in AUTOMATIC}
    schema = _object(properties, "parameters")
    for where, values in sources:
        if not isinstance(values, dict):
            raise ParameterError(
                f"{where}: expected a mapping of parameter names to values, got {type(values).__name__}."
            )
        check(schema, values, where)
