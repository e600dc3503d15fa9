"""``mura-thesis``: build the thesis, re-run a chapter, inspect the build and the run store."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml

from .build import Builder, run_single_chapter
from .profiles import load_profile
from .project import BuildError, is_notebook, project_root, toc_entries


def _parse_value(text: str):
    """Parameter values as YAML scalars: ``3`` is an int, ``0.5`` a float, ``true`` a bool."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _overrides(args, root: Path | None = None) -> dict:
    """The ``-f`` files and ``-p`` values, each checked against the schema: experiment settings,
    and for ``run`` the chapter's own parameters."""
    from .schema import check_overrides, read_yaml

    sources = []
    for file in args.parameters_file or []:
        sources.append((file, read_yaml(file) or {}))
    for name, value in args.parameter or []:
        sources.append(("-p", {name: _parse_value(value)}))
    chapter = Path(args.chapter).stem if getattr(args, "chapter", None) else None
    check_overrides(root or project_root(), chapter, sources)
    values = {}
    for _, loaded in sources:
        values.update(loaded)
    return values


def _build_overrides(args) -> dict:
    """Settings for a whole build: only experiment settings, which every chapter shares."""
    from .plan import PlanSettings

    values = _overrides(args)  # checked against the settings' schema
    unknown = sorted(set(values) - set(PlanSettings.fields()))
    if unknown:
        raise BuildError(
            f"{unknown} are not experiment settings; a build takes {PlanSettings.fields()}. "
            "Chapter-only parameters go to `mura-thesis run CHAPTER -p NAME VALUE`."
        )
    return values


def _data_settings(args) -> dict:
    """``--missing`` and ``--max-excluded-fraction``, checked with the profile's schema."""
    from .schema import DATA_SCHEMA, check

    settings = {"missing": args.missing, "max_excluded_fraction": args.max_excluded_fraction}
    settings = {k: v for k, v in settings.items() if v is not None}
    check({"type": "object", "properties": DATA_SCHEMA["properties"]}, settings, "command line")
    return settings


def cmd_build(args) -> int:
    root = project_root()
    builder = Builder(
        root,
        load_profile(root, args.profile),
        data=args.data,
        overrides=_build_overrides(args),
        workers=args.workers,
        **_data_settings(args),
    )
    if args.pdf:
        from .pdf import build_pdf

        build_pdf(builder, force=args.force)
        return 0
    builder.build(force=args.force, wait=not args.no_wait)
    return 0


def cmd_run(args) -> int:
    root = project_root()
    profile = load_profile(root, args.profile)
    overrides = _overrides(args, root)
    run_single_chapter(
        root,
        profile,
        args.chapter,
        overrides,
        Path(args.output) if args.output else None,
        data=args.data,
        **_data_settings(args),
    )
    return 0


def cmd_status(args) -> int:
    root = project_root()
    builder = Builder(
        root,
        load_profile(root, args.profile),
        data=args.data,
        progress=False,
        generate=False,
        overrides=_build_overrides(args),
        **_data_settings(args),
    )
    print(f"Profile {args.profile!r}:")
    source, path, manifest = builder.data
    if not path.exists():
        print(f"  The {source} dataset is not generated yet ({path}); the next build generates it.")
    for entry in toc_entries(root):
        if not is_notebook(root / f"{entry}.md"):
            continue
        plan = builder.plan(entry)
        reasons = builder.why_stale(plan)
        state = builder.state(plan)
        if reasons:
            print(f"  {plan.name:<32} would re-run: {', '.join(reasons)}")
        else:
            print(f"  {plan.name:<32} up to date ({state['seconds']:.0f}s, {state['finished']})")
    return 0


def cmd_plan(args) -> int:
    from .profiles import plan_for_profile

    root = project_root()
    plan = plan_for_profile(root, load_profile(root, args.profile), args.data, _overrides(args))
    table = plan.describe()
    print(
        f"Profile {args.profile!r}: {len(table)} runs, {int(table['stored'].sum())} stored, "
        f"{len(plan.comparisons_planned)} comparisons."
    )
    print(table.to_string(index=False, max_colwidth=48))
    missing = table.loc[~table["stored"], "cost (image-epochs at 64 px)"].sum()
    budget = (
        "every run trains for its fixed budget"
        if plan.settings.schedule == "cosine"
        else "training usually stops earlier, on a plateau"
    )
    print(f"To train: {int((~table['stored']).sum())} runs, at most {int(missing):,} image-epochs at 64 px ({budget}).")
    return 0


def cmd_train(args) -> int:
    root = project_root()
    profile = load_profile(root, args.profile)
    # --missing and --max-excluded-fraction (or the profile's data section) as a build reads them.
    data_settings = _data_settings(args)
    builder = Builder(root, profile, data=args.data, generate=False, **data_settings)
    with builder.data_environment():
        return _train(args, root, profile, data_settings)


def _train(args, root: Path, profile, data_settings: dict) -> int:
    from .executors import default_workers, train_runs
    from .profiles import plan_stages

    stages = plan_stages(root, profile, data=args.data)
    names = [name for _, jobs in stages for name, _ in jobs]

    def chosen(label: str) -> bool:
        # A run is named by its label ("no L2 (48 px, seed 0)") or by its name in the plan ("no L2").
        return label in args.run or label.rsplit(" (", 1)[0] in args.run

    if args.run:
        unknown = sorted(set(args.run) - set(names) - {name.rsplit(" (", 1)[0] for name in names})
        if unknown:
            raise ValueError(f"No run named {unknown} in profile {args.profile!r}; its runs: {names}")
    command = ["mura-thesis", "train", "--profile", args.profile] + (["--data", args.data] if args.data else [])
    for option, value in data_settings.items():
        command += [f"--{option.replace('_', '-')}", str(value)]
    ok = True
    # Stages in order: the pretraining runs before the runs initialised from them.
    for data_root, jobs in stages:
        if args.run:
            jobs = [(name, config) for name, config in jobs if chosen(name)]
        if not jobs:
            continue
        results = train_runs(
            jobs,
            data_root=data_root,
            runs_dir=root / "runs",
            cache_dir=root / "data" / "cache",
            executor=args.executor,
            address=args.address,
            gpus_per_run=args.gpus_per_run,
            cpus_per_run=args.cpus_per_run,
            workers=args.workers or default_workers(),
            command=command,
        )
        ok = ok and all(result.ok for result in results)
    return 0 if ok else 1


def cmd_synthesize(args) -> int:
    from mura_lib.synthetic import generate_synthetic_mura

    root = generate_synthetic_mura(
        args.destination,
        scale=args.scale,
        valid_scale=args.valid_scale,
        image_size=args.image_size,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    print(root)
    return 0


def cmd_runs(args) -> int:
    from mura_lib.runs import RunStore

    store = RunStore(args.store)
    if args.delete:
        if not args.key:
            raise ValueError("--delete needs the KEY of the run to delete (see `mura-thesis runs`).")
        store.delete(args.key)
        print(f"Deleted run {args.key} from {store.root}; the next build that needs it trains it again.")
        return 0
    if args.key:
        run = store.load(args.key)
        print(
            json.dumps(
                {
                    "info": run.info,
                    "config": run.config.to_dict(),
                    "metrics": run.metrics,
                    "environment": run.environment,
                },
                indent=1,
            )
        )
        return 0
    table = store.list()
    print(table.to_string(index=False) if not table.empty else f"No runs in {store.root}.")
    return 0


def cmd_compare(args) -> int:
    from .manifest import compare_manifests, format_comparison, load_manifest

    result = compare_manifests(load_manifest(args.a), load_manifest(args.b))
    print(json.dumps(result, indent=1) if args.json else format_comparison(result))
    return 1 if result["counts"]["flips"] else 0


def cmd_citation(args) -> int:
    from .citation import stale_files, write_files

    root = project_root()
    if args.check:
        stale = stale_files(root)
        for name in stale:
            print(f"{name} differs from _config.yml and pyproject.toml: run `mura-thesis citation`.", file=sys.stderr)
        return 1 if stale else 0
    written = write_files(root)
    print(f"Wrote {', '.join(written)}." if written else "CITATION.cff and .zenodo.json are up to date.")
    return 0


def cmd_archive(args) -> int:
    from .archive import write_archive

    write_archive(project_root(), args.output, with_weights=args.with_weights)
    return 0


# Commands that import TensorFlow, whose native start-up lines the terminal does not need.
NATIVE_LOG_COMMANDS = ("build", "train", "run", "archive")


@contextmanager
def native_output_to(path: Path):
    """Send what native code writes to this process's standard error (TensorFlow's C++ start-up
    lines, here and in the worker processes it starts) to ``path``, while Python's own
    ``sys.stderr`` (progress, warnings, error messages) still reaches the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    previous = sys.stderr
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1, errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = previous
        os.dup2(terminal, 2)
        os.close(terminal)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mura-thesis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def profile_options(p):
        p.add_argument("--profile", default="demo", help="parameter profile from params/ (default: demo)")
        p.add_argument("--data", help="path to a real MURA-v1.1 folder (overrides the profile's data)")
        p.add_argument(
            "--missing",
            choices=("error", "drop"),
            help="images listed in a CSV but missing on disk: stop (error) or leave them out (drop); "
            "default: the profile's data.missing, else error",
        )
        p.add_argument(
            "--max-excluded-fraction",
            type=float,
            metavar="F",
            help="stop if more than this fraction of images cannot be decoded "
            "(default: the profile's data.max_excluded_fraction, else 0.01)",
        )

    p = sub.add_parser("build", help="execute the chapters and render the HTML thesis")
    profile_options(p)
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="change an experiment setting for the whole build (repeatable)",
    )
    p.add_argument("-f", "--parameters-file", action="append", help="YAML file of experiment settings")
    p.add_argument("--force", action="store_true", help="re-execute every chapter")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once if another build of this profile runs in this checkout (default: wait for it)",
    )
    p.add_argument(
        "--pdf", action="store_true", help="typeset the PDF thesis (_build/latex/thesis.pdf) instead of the HTML"
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="train the plan's missing runs N at a time, each in its own process, before the chapters execute "
        "(default: one per CPU core without a GPU, else 1; 1 trains each run in the chapter that first needs it)",
    )
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="execute one chapter with other parameters")
    p.add_argument("chapter", help="chapter name, e.g. 05_1_baseline")
    p.add_argument(
        "-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), help="set a parameter (repeatable)"
    )
    p.add_argument("-f", "--parameters-file", action="append", help="YAML file of parameters")
    p.add_argument("-o", "--output", help="where to write the executed notebook (default build/run/CHAPTER.ipynb)")
    profile_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="which chapters are up to date and why others would re-run")
    profile_options(p)
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), help="as for build")
    p.add_argument("-f", "--parameters-file", action="append", help="as for build")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("plan", help="list every run of a profile's experiment plan: key, chapters, stored or not, cost")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), help="change a setting")
    p.add_argument("-f", "--parameters-file", action="append", help="YAML file of settings")
    profile_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("train", help="train every run of the profile not yet in runs/, here or on a Ray cluster")
    profile_options(p)
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="one run at a time here, or Ray tasks")
    p.add_argument("--address", help="Ray cluster to join, e.g. auto or HEAD:6379 (default: start Ray on this machine)")
    p.add_argument("--gpus-per-run", type=float, default=0, help="GPUs each Ray task asks for (default 0)")
    p.add_argument("--cpus-per-run", type=float, default=1, help="CPUs each Ray task asks for (default 1)")
    p.add_argument("--run", action="append", metavar="NAME", help="train only the run of this name (repeatable)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local executor: runs trained at once, each in its own process (default: one per CPU core "
        "without a GPU, else 1)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("synthesize", help="write a synthetic MURA-v1.1 dataset")
    p.add_argument("destination")
    p.add_argument("--scale", type=float, default=0.02, help="size relative to MURA-v1.1 (default: 0.02)")
    p.add_argument(
        "--valid-scale",
        type=float,
        help="size of the valid split (the test set) relative to MURA's, if not --scale; "
        "e.g. 0.75 gives a test set of about 900 studies",
    )
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int)
    p.add_argument("--overwrite", action="store_true", help="replace a dataset of another specification at DESTINATION")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("runs", help="list the run store, or show one run")
    p.add_argument("key", nargs="?")
    p.add_argument("--store", default="runs")
    p.add_argument("--delete", action="store_true", help="delete run KEY (a damaged one), so that it is trained again")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "compare",
        help="compare two builds' results (_build/results.json): verdicts side by side, numbers against their "
        "intervals; exit 1 if a verdict flips, 2 if a manifest cannot be read",
    )
    p.add_argument("a", metavar="A", help="a results manifest, or a folder holding _build/results.json or results.json")
    p.add_argument("b", metavar="B", help="the other build's, e.g. benchmarks/results/reference_demo_results.json")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "citation",
        help="write CITATION.cff and .zenodo.json from _config.yml and pyproject.toml (--check: exit 1 if stale)",
    )
    p.add_argument("--check", action="store_true", help="only check that both files are up to date")
    p.set_defaults(func=cmd_citation)

    p = sub.add_parser(
        "archive",
        help="one zip file of the last build: HTML, PDF, results manifest, runs, source, package lock, README",
    )
    p.add_argument("-o", "--output", help="the archive's file (default _build/mura-thesis-PROFILE-COMMIT.zip)")
    p.add_argument(
        "--with-weights", action="store_true", help="include every run's weights, so the book rebuilds without training"
    )
    p.set_defaults(func=cmd_archive)

    args = parser.parse_args(argv)
    try:
        root = project_root() if args.command in NATIVE_LOG_COMMANDS else None
    except BuildError:
        root = None
    if root is None:
        return _run(args)
    with native_output_to(root / "build" / "logs" / "native.log"):
        return _run(args)


def _run(args) -> int:
    try:
        return args.func(args)
    except BuildError as error:
        # Only a build fails as a build; other commands (status, plan, run) say what went wrong.
        prefix = "BUILD FAILED" if args.command == "build" else "error"
        print(f"\n{prefix}: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileExistsError, KeyError, RuntimeError) as error:
        # Expected failures (bad data, parameters, a damaged run): the message says it all.
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno == errno.ENOSPC:
            print(
                f"error: no space left on the device holding {error.filename or 'the output'}. Free space there "
                "(old caches in data/cache, old runs) and re-run; finished work is kept.",
                file=sys.stderr,
            )
            return 1
        if error.filename and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            print(f"error: {error.strerror}: {error.filename}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print(
            "\nInterrupted. Finished chapters and runs are kept; the next build continues from them.", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
