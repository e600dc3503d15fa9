"""The project's own promises: README commands, CI, dependency lists that agree."""

import re

import tomllib
import yaml

from .conftest import REPO


def _names(requirements):
    return {re.split(r"[<>=\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = (
        _names(project["dependencies"])
        | _names(project["optional-dependencies"]["cpu"])
        | _names(project["optional-dependencies"]["dev"])
    )
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    listed = _names(p for p in pip if not p.startswith("-e"))
    assert listed == wanted
    # Version bounds agree too.
    specs = {re.split(r"[<>=]", r, maxsplit=1)[0].lower(): r for r in project["dependencies"]}
    for requirement in pip:
        name = re.split(r"[<>=]", requirement, maxsplit=1)[0].lower()
        if name in specs:
            assert requirement == specs[name]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_every_profile_is_valid_and_chapters_exist():
    from mura_lib.build import load_profile, toc_entries

    assert toc_entries(REPO)
    for path in (REPO / "params").glob("*.yaml"):
        profile = load_profile(REPO, path.stem)
        assert profile.parameters.get("seed") is not None


def test_every_profile_resolves_into_an_experiment_plan():
    from mura_lib.build import load_profile
    from mura_lib.plan import PlanSettings, settings_from_parameters

    for path in (REPO / "params").glob("*.yaml"):
        profile = load_profile(REPO, path.stem)
        settings_from_parameters(profile.parameters, source=str(path))  # raises on a bad setting
        # Every setting is spelt out in every profile, so a profile reads as the whole plan.
        assert set(profile.parameters) == set(PlanSettings.fields()), path.name


def test_chapter_defaults_are_the_demo_profile():
    """A chapter run on its own (papermill, Jupyter) gets the same settings as the demo build."""
    import papermill

    from mura_lib.build import Builder, is_notebook, load_profile, toc_entries
    from mura_lib.plan import PlanSettings

    demo = load_profile(REPO, "demo")
    builder = Builder(REPO, demo)
    for entry in toc_entries(REPO):
        source = REPO / f"{entry}.md"
        if not is_notebook(source):
            continue
        declared = papermill.inspect_notebook(str(builder._converted(source)))
        if "profile" in declared:
            assert declared["profile"]["default"].strip("'\"") == "demo", entry
        if "settings" in declared:
            assert declared["settings"]["default"] == "{}", entry
        for name, spec in declared.items():
            if name in PlanSettings.fields():
                assert yaml.safe_load(spec["default"]) == demo.parameters[name], f"{entry}: {name}"


def test_build_process_describes_the_machine_without_loading_a_framework():
    import subprocess
    import sys

    code = (
        "import sys\nfrom mura_lib.build import build_environment\nbuild_environment()\n"
        "from mura_lib.plan import PlanSettings\nPlanSettings()\n"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
