"""Build profiles (``params/<name>.yaml``): loading and checking them, the data they build on, and
the experiment plan they resolve to."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .plan import ExperimentPlan, PlanSettings, settings_from_parameters
from .project import BuildError


@dataclass
class Profile:
    name: str
    description: str
    data: dict
    parameters: dict = field(default_factory=dict)
    chapters: dict = field(default_factory=dict)

    def chapter_parameters(self, chapter: str) -> dict:
        return {**self.parameters, **self.chapters.get(chapter, {})}


def load_profile(root: Path, name: str) -> Profile:
    path = root / "params" / f"{name}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in (root / "params").glob("*.yaml"))
        raise BuildError(f"Unknown profile {name!r}: {path} does not exist. Available: {', '.join(available)}.")
    from .schema import check_profile, read_yaml

    values = read_yaml(path)
    # Unknown keys (a typo would silently leave a chapter's default), types and ranges.
    check_profile(root, path.relative_to(root) if path.is_relative_to(root) else path, values)
    data = values.get("data") or {}
    return Profile(
        name=name,
        description=values.get("description", ""),
        data=data,
        parameters=values.get("parameters") or {},
        chapters=values.get("chapters") or {},
    )


def resolve_data(
    root: Path, profile: Profile, data: str | None = None, *, progress: bool = True, generate: bool = True
) -> tuple[str, Path]:
    """``(source, MURA-v1.1 folder)`` for a build, generating synthetic data when needed
    (with ``generate=False`` the folder is returned even if it does not exist yet)."""
    from mura_lib.dataset import DATA_ENV_VAR, resolve_data_root

    if data or profile.data["source"] == "mura":
        path = data or profile.data.get("path") or os.environ.get(DATA_ENV_VAR)
        if not path:
            raise BuildError(
                f"Profile {profile.name!r} runs on real MURA-v1.1: pass --data /path/to/MURA-v1.1 "
                f"(make book PROFILE={profile.name} DATA=...) or set ${DATA_ENV_VAR}."
            )
        return "mura", resolve_data_root(path)
    from mura_lib.synthetic import generate_synthetic_mura

    keys = ("scale", "valid_scale", "image_size", "seed")
    spec = {k: profile.data[k] for k in keys if profile.data.get(k) is not None}
    folder = root / "data" / "synthetic" / "-".join(f"{k}{v}" for k, v in sorted(spec.items()))
    if not generate:
        from mura_lib.dataset import DATASET_DIRNAME

        return "synthetic", folder / DATASET_DIRNAME
    # The folder belongs to the build: a dataset from older generator code is replaced.
    return "synthetic", generate_synthetic_mura(folder, progress=progress, overwrite=True, **spec)


def profile_settings(profile: str, root: str | Path | None = None) -> dict:
    """The ``parameters`` section of ``params/<profile>.yaml`` (validated), as a dict."""
    from .project import project_root

    loaded = load_profile(Path(root) if root else project_root(), profile)
    return settings_from_parameters(loaded.parameters, source=f"params/{profile}.yaml")


def plan_for_profile(
    root: str | Path, profile, data: str | None = None, overrides: dict | None = None, *, verbose="lines"
) -> "ExperimentPlan":
    """The plan of a build: the profile's data (generated if synthetic) and its settings."""
    root = Path(root)
    _, data_root = resolve_data(root, profile, data)
    settings = settings_from_parameters(
        profile.parameters | dict(overrides or {}), source=f"params/{profile.name}.yaml"
    )
    return ExperimentPlan(
        PlanSettings.from_dict(settings), data_root, root / "runs", root / "data" / "cache", verbose=verbose
    )


def plan_jobs(root: str | Path, profile, data: str | None = None) -> tuple[Path, list]:
    """``(data root, [(name, ExperimentConfig), ...])``: every run of a profile's plan (a name or a
    loaded profile), for an executor."""
    if isinstance(profile, str):
        profile = load_profile(Path(root), profile)
    plan = plan_for_profile(root, profile, data)
    return Path(plan.data_root), plan.jobs()


def plan_stages(root: str | Path, profile, data: str | None = None) -> list[tuple[Path, list]]:
    """:meth:`ExperimentPlan.job_stages` of a profile (a name or a loaded profile)."""
    if isinstance(profile, str):
        profile = load_profile(Path(root), profile)
    return plan_for_profile(root, profile, data).job_stages()


def chapter_plan(
    profile: str, settings: dict | None, data_root, runs_dir="runs", cache_dir="data/cache", *, verbose="lines"
) -> ExperimentPlan:
    """The plan a chapter runs under: the profile's settings, with ``settings`` on top (the build
    passes the resolved settings; a chapter run by hand may pass only the ones it changes)."""
    resolved = profile_settings(profile) if profile else {}
    return ExperimentPlan(
        PlanSettings.from_dict(resolved | dict(settings or {})), data_root, runs_dir, cache_dir, verbose=verbose
    )
