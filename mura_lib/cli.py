"""``mura-thesis``: build the thesis, re-run a chapter, inspect the build and the run store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from .build import BuildError, Builder, chapter_name, is_notebook, load_profile, project_root, run_single_chapter, toc_entries


def _parse_value(text: str):
    """Parameter values as YAML scalars: ``3`` is an int, ``0.5`` a float, ``true`` a bool."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _overrides(args) -> dict:
    values = {}
    for file in args.parameters_file or []:
        loaded = yaml.safe_load(Path(file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise BuildError(f"{file} must hold a mapping of parameter names to values.")
        values.update(loaded)
    for name, value in args.parameter or []:
        values[name] = _parse_value(value)
    return values


def cmd_build(args) -> int:
    root = project_root()
    builder = Builder(root, load_profile(root, args.profile), data=args.data)
    if args.pdf:
        from .pdf import build_pdf

        build_pdf(builder, force=args.force)
        return 0
    builder.build(force=args.force)
    return 0


def cmd_run(args) -> int:
    root = project_root()
    run_single_chapter(root, load_profile(root, args.profile), args.chapter, _overrides(args), Path(args.output) if args.output else None, data=args.data)
    return 0


def cmd_status(args) -> int:
    root = project_root()
    builder = Builder(root, load_profile(root, args.profile), data=args.data, progress=False)
    print(f"Profile {args.profile!r}:")
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


def cmd_synthesize(args) -> int:
    from .synthetic import generate_synthetic_mura

    root = generate_synthetic_mura(args.destination, scale=args.scale, image_size=args.image_size, seed=args.seed, workers=args.workers)
    print(root)
    return 0


def cmd_runs(args) -> int:
    from .runs import RunStore

    store = RunStore(args.store)
    if args.key:
        run = store.load(args.key)
        print(json.dumps({"info": run.info, "config": run.config.to_dict(), "metrics": run.metrics, "environment": run.environment}, indent=1))
        return 0
    table = store.list()
    print(table.to_string(index=False) if not table.empty else f"No runs in {store.root}.")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mura-thesis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def profile_options(p):
        p.add_argument("--profile", default="demo", help="parameter profile from params/ (default: demo)")
        p.add_argument("--data", help="path to a real MURA-v1.1 folder (overrides the profile's data)")

    p = sub.add_parser("build", help="execute the chapters and render the HTML thesis")
    profile_options(p)
    p.add_argument("--force", action="store_true", help="re-execute every chapter")
    p.add_argument("--pdf", action="store_true", help="typeset the PDF thesis (_build/latex/thesis.pdf) instead of the HTML")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="execute one chapter with other parameters")
    p.add_argument("chapter", help="chapter name, e.g. 05_1_baseline")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), help="set a parameter (repeatable)")
    p.add_argument("-f", "--parameters-file", action="append", help="YAML file of parameters")
    p.add_argument("-o", "--output", help="where to write the executed notebook (default build/run/CHAPTER.ipynb)")
    profile_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="which chapters are up to date and why others would re-run")
    profile_options(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("synthesize", help="write a synthetic MURA-v1.1 dataset")
    p.add_argument("destination")
    p.add_argument("--scale", type=float, default=0.02)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int)
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("runs", help="list the run store, or show one run")
    p.add_argument("key", nargs="?")
    p.add_argument("--store", default="runs")
    p.set_defaults(func=cmd_runs)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BuildError as error:
        print(f"\nBUILD FAILED: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileExistsError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted. Finished chapters and runs are kept; the next build continues from them.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
