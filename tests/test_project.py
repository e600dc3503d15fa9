"""The project's own promises: README commands, CI, dependency lists that agree."""

import re

import pytest
import tomllib
import yaml

from mura_thesis import imports as import_graph

from .conftest import REPO


def _names(requirements):
    return {re.split(r"[<>=\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = (
        _names(project["dependencies"])
        | _names(project["optional-dependencies"]["cpu"])
        | _names(project["optional-dependencies"]["jax"])
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
    # Every tier CI runs, the JAX tier among them, is a command the README gives.
    targets = re.findall(r"^make ([\w-]+)$", ci, re.MULTILINE)
    assert "test-jax" in targets
    for target in targets:
        assert f"`make {target}`" in readme, target


def test_every_profile_is_valid_and_chapters_exist():
    from mura_thesis.profiles import load_profile
    from mura_thesis.project import toc_entries

    assert toc_entries(REPO)
    for path in (REPO / "params").glob("*.yaml"):
        profile = load_profile(REPO, path.stem)
        assert profile.parameters.get("seed") is not None


def test_every_profile_resolves_into_an_experiment_plan():
    from mura_thesis.plan import PlanSettings, settings_from_parameters
    from mura_thesis.profiles import load_profile

    for path in (REPO / "params").glob("*.yaml"):
        profile = load_profile(REPO, path.stem)
        settings_from_parameters(profile.parameters, source=str(path))  # raises on a bad setting
        # Every setting is spelt out in every profile, so a profile reads as the whole plan.
        assert set(profile.parameters) == set(PlanSettings.fields()), path.name


def test_chapter_defaults_are_the_demo_profile():
    """A chapter run on its own (papermill, Jupyter) gets the same settings as the demo build."""
    import papermill

    from mura_thesis.build import Builder
    from mura_thesis.plan import PlanSettings
    from mura_thesis.profiles import load_profile
    from mura_thesis.project import is_notebook, toc_entries

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
        "import sys\nfrom mura_thesis.build import build_environment\nbuild_environment()\n"
        "from mura_thesis.plan import PlanSettings\nPlanSettings()\n"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_no_import_cycles_and_the_core_never_imports_the_book_pipeline():
    edges = import_graph.graph()
    assert import_graph.cycles(edges) == []
    core = [name for name in edges if not name.startswith("mura_thesis")]
    upward = {name: sorted(t for t in edges[name] if t.startswith("mura_thesis")) for name in core}
    assert {name: targets for name, targets in upward.items() if targets} == {}
    # The configuration and the project helpers import nothing of the project.
    assert edges["mura_lib.config"] == set() and edges["mura_thesis.project"] == set()


# Modules that training reaches but that cannot change a run's result, each with its reason.
KEY_EXEMPT = {
    "mura_lib": "the package's __init__ only applies mura_lib.numerics",
    "mura_lib.numerics": "its settings in effect are a field of the run key",
    "mura_lib.device": "the backend and the resolved precision are fields of the run key",
    "mura_lib.runs": "the run store: where a result is written, not what it is",
    "mura_lib.files": "atomic file writing and checksums",
    "mura_lib.parallel": "the process pool and temporary names of the cache build",
}


def test_result_modules_cover_everything_training_imports():
    """A module that training reaches is either hashed into the run key or exempt for a stated
    reason; a new module split out of training cannot silently fall out of the key."""
    from mura_lib.config import RESULT_MODULES

    edges = import_graph.graph()
    reached = import_graph.reachable(edges, "mura_lib.training") | {"mura_lib.training"}
    assert reached - set(RESULT_MODULES) - set(KEY_EXEMPT) == set()
    assert set(RESULT_MODULES) <= set(edges), "RESULT_MODULES names a module that does not exist"


def test_run_key_follows_the_source_of_every_result_module(monkeypatch, tmp_path):
    from mura_lib import config

    before = config.library_source_hash()
    original = config.module_path
    for name in config.RESULT_MODULES:
        copy = tmp_path / f"{name}.py"
        copy.write_bytes(original(name).read_bytes() + b"\n# changed\n")
        monkeypatch.setattr(config, "module_path", lambda n, name=name, copy=copy: copy if n == name else original(n))
        assert config.library_source_hash() != before, name
    monkeypatch.setattr(config, "module_path", original)
    with pytest.raises(FileNotFoundError, match="update the list"):
        config.library_source_hash(("mura_lib.no_such_module",))


def test_chapter_keys_cover_the_modules_a_chapter_can_run():
    """A chapter's key covers the project modules its code imports, what they import (inside
    functions too, and the packages' __init__), never the pipeline's NOT_IN_CHAPTERS, and
    nothing it cannot reach: editing the Background chapter's module re-executes no other."""
    from mura_thesis import build, imports

    background = set(build.chapter_library_files("import mura_thesis as book\nfrom mura_thesis import background\n"))
    assert {"mura_thesis", "mura_thesis.background", "mura_thesis.tables", "mura_thesis.figures"} <= background
    assert not background & set(build.NOT_IN_CHAPTERS)
    baseline = set(
        build.chapter_library_files(
            "%matplotlib inline\nfrom mura_thesis import values\nfrom mura_lib import explain\n"
        )
    )
    # values reaches the plan, and the plan the training code (inside its functions).
    assert {"mura_thesis.values", "mura_thesis.plan", "mura_lib.training", "mura_lib.models", "mura_lib"} <= baseline
    assert "mura_thesis.background" not in baseline and "mura_thesis.values" not in background
    assert build.chapter_library_files("x = 1\n") == {}
    assert set(build.NOT_IN_CHAPTERS) <= set(imports.modules())


def test_a_chapter_key_changes_with_the_modules_it_reaches_only(monkeypatch, tmp_path):
    from mura_thesis import build, imports

    code = "from mura_thesis import background\n"
    before = build.library_hash(code)
    original = imports.modules

    def edited(name):
        def modules(*args, **kwargs):
            found = dict(original(*args, **kwargs))
            copy = tmp_path / f"{name}.py"
            copy.write_bytes(found[name].read_bytes() + b"\n# edited\n")
            found[name] = copy
            return found

        return modules

    monkeypatch.setattr(imports, "modules", edited("mura_thesis.background"))
    assert build.library_hash(code) != before
    monkeypatch.setattr(imports, "modules", edited("mura_thesis.values"))
    assert build.library_hash(code) == before
