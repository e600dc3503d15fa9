"""Faults: concurrent processes, bad images and splits, bad parameters, killed processes, and the
messages they end in.  Small synthetic data; every test takes seconds."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from mura_lib.dataset import MuraFormatError, load_mura, manifest_hash
from mura_lib.files import atomic_write_text
from mura_lib.parallel import partial_name, remove_stale_partials
from mura_lib.preprocess import TooManyExcludedError, build_cache, exclusions
from mura_lib.runs import BrokenRunError, RunStore
from mura_thesis import cli
from mura_thesis.build import Builder, ChapterPlan
from mura_thesis.profiles import load_profile
from mura_thesis.project import BuildError
from mura_thesis.schema import ParameterError

from .conftest import REPO

PROJECT_FILES = ["_toc.yml", "chapters", "params"]
ENVIRONMENT = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def small_project(target: Path) -> Path:
    """The book's sources (not its data or builds), enough for profiles and planning."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        shutil.copytree(source, target / name) if source.is_dir() else shutil.copy2(source, target / name)
    return target


def run_cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mura_thesis.cli", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=ENVIRONMENT,
        timeout=300,
    )


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --- 1. concurrency ---------------------------------------------------------------------------

TRAIN_SCRIPT = """
import sys
from mura_lib.dataset import load_mura
from mura_lib.runs import RunStore
from mura_lib.config import ExperimentConfig
from mura_lib.training import run_experiment
config = ExperimentConfig(image_size=16, depth=1, width=4, epochs=2, batch_size=32, seed=3, augment=False)
run = run_experiment(config, load_mura(sys.argv[1]), store=RunStore(sys.argv[2]), cache_dir=sys.argv[3], verbose="silent")
print("RUN", run.key, flush=True)
"""


@pytest.mark.slow  # starts processes that train or run kernels: the end-to-end tier
def test_two_processes_training_one_run_key_take_turns(synthetic_root, tmp_path):
    store, cache = tmp_path / "runs", tmp_path / "cache"
    build_cache(load_mura(synthetic_root), 16, cache_dir=cache, progress=False)  # both start training at once
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN_SCRIPT, str(synthetic_root), str(store), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENVIRONMENT,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    keys = {line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("RUN")}
    assert len(keys) == 1
    (key,) = keys
    # One trained it, the other waited (saying so) and reused the result.
    assert sum("waiting for run" in out for out, _ in outputs) == 1
    runs = RunStore(store)
    assert runs.verify(key) == []
    history = pd.read_csv(store / key / "history.csv")
    assert history["epoch"].tolist() == [0, 1]
    assert json.loads((store / key / "run.json").read_text()).get("resumed", 0) == 0


def test_damaged_run_is_reported_with_the_command_to_retrain_it(synthetic_root, tmp_path, capsys):
    store = RunStore(tmp_path / "runs")
    directory = store.path("abc123")
    directory.mkdir(parents=True)
    for name in ("config.json", "environment.json", "metrics.json"):
        atomic_write_text(directory / name, "{}")
    atomic_write_text(directory / "run.json", json.dumps({"status": "complete", "name": "baseline seed 0"}))
    write_weights(directory / "model.weights.h5")
    columns = "relpath,study_path,study_type,patient,view,label,subset,probability\n"
    atomic_write_text(directory / "predictions.csv", columns + "a,b,XR_HAND,p1,1,0,test,0.5\n")
    # Two processes appended to one history: the header repeats and the epochs interleave.
    atomic_write_text(directory / "history.csv", "epoch,loss\n0,0.7\nepoch,loss\n0,0.69\n1,0.6\n1,0.61\n")
    with pytest.raises(BrokenRunError, match=r"repeats its header.*mura-thesis runs abc123 --delete"):
        store.load("abc123")
    atomic_write_text(directory / "history.csv", "epoch,loss\n0,0.7\n0,0.69\n1,0.6\n1,0.61\n")
    assert "logs 2 epoch(s) twice after 0 resume(s)" in " ".join(store.verify("abc123"))
    atomic_write_text(directory / "history.csv", "epoch,loss\n0,0.7\n1,0.6\n")
    assert store.verify("abc123") == []
    (directory / "predictions.csv").write_text("relpath,probability\na,0.5\n")
    assert "predictions.csv lacks the columns" in " ".join(store.verify("abc123"))
    (directory / "metrics.json").unlink()
    assert store.verify("abc123") == ["metrics.json is missing"]
    # The command the message names deletes the run.
    assert cli.main(["runs", "abc123", "--delete", "--store", str(store.root)]) == 0
    assert not directory.exists()


def test_a_chapter_waiting_for_a_run_says_so_on_the_terminal(tmp_path):
    """A build whose chapter waited for a run that another process trained showed nothing for
    minutes: the run store's line went into the cell.  Now the build passes it on as it comes."""
    import nbformat
    import papermill

    from mura_thesis.build import WAITING_PREFIX, ForwardLines

    # The run store's own line, while another process holds the run's lock.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from filelock import FileLock; import time; l = FileLock({str(tmp_path / 'k.lock')!r}); "
            "l.acquire(); print('held', flush=True); time.sleep(3)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    lines = []
    with RunStore(tmp_path).lock("k", name="baseline (32 px, seed 0)", out=ForwardLines(WAITING_PREFIX, lines.append)):
        pass
    holder.wait()
    assert len(lines) == 1 and lines[0].startswith(f"{WAITING_PREFIX}k (baseline (32 px, seed 0))"), lines
    sink = ForwardLines(WAITING_PREFIX, lines.append, "    05_1_baseline: ")
    sink.write("epoch 1\nwaiting for run k (baseline (32 px, seed 0)), trained by another")
    sink.write(" process ...\nepoch 2\n")
    assert (
        lines[-1] == "    05_1_baseline: waiting for run k (baseline (32 px, seed 0)), trained by another process ..."
    )
    # papermill streams a cell's output to the sink while the cell still runs.
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("print('waiting for run abc (x), trained by another process ...')")]
    nbformat.write(notebook, tmp_path / "in.ipynb")
    said = []
    papermill.execute_notebook(
        str(tmp_path / "in.ipynb"),
        str(tmp_path / "out.ipynb"),
        progress_bar=False,
        stdout_file=ForwardLines(WAITING_PREFIX, said.append),
    )
    assert said == ["waiting for run abc (x), trained by another process ..."]


def write_weights(path: Path) -> None:
    """A small HDF5 file, as Keras writes weights."""
    import h5py
    import numpy as np

    with h5py.File(path, "w") as handle:
        handle["kernel"] = np.arange(5000, dtype=np.float32)


def test_run_store_files_are_readable_by_the_group(tmp_path):
    previous = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "run.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o644


def test_second_build_of_a_profile_waits_or_fails_fast(tmp_path):
    project = small_project(tmp_path / "thesis")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import sys, time
            from pathlib import Path
            from mura_thesis.build import Builder
            from mura_thesis.profiles import load_profile
            builder = Builder(Path.cwd(), load_profile(Path.cwd(), "smoke"))
            with builder.lock():
                print("locked", flush=True)
                time.sleep(60)
        """),
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
        env=ENVIRONMENT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        builder = Builder(project, load_profile(project, "smoke"))
        with pytest.raises(BuildError, match=rf"Another build of profile 'smoke' is running .*pid {holder.pid}"):
            with builder.lock(wait=False):
                pass
        # Another profile is another lock.
        with Builder(project, load_profile(project, "demo")).lock(wait=False):
            pass
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its holder.
    with builder.lock(wait=False):
        pass


def test_temporary_names_are_unique_and_only_dead_processes_leftovers_go(tmp_path):
    assert partial_name("05_1_baseline") != partial_name("05_1_baseline")
    dead = tmp_path / f".cache.partial-{dead_pid()}-0a1b2c3d"
    alive = tmp_path / partial_name("cache")
    notebook = tmp_path / f".05_1_baseline.partial-{dead_pid()}-00ff00ff.ipynb"
    for folder in (dead, alive):
        (folder / "sub").mkdir(parents=True)
    notebook.write_text("{}")
    removed = remove_stale_partials(tmp_path)
    assert set(removed) == {dead, notebook}
    assert alive.exists() and not dead.exists() and not notebook.exists()


def test_two_runs_of_one_chapter_do_not_share_an_output(tmp_path):
    from filelock import FileLock

    project = small_project(tmp_path / "thesis")
    output = project / "out.ipynb"
    with FileLock(project / ".out.ipynb.lock"):  # as another `mura-thesis run -o out.ipynb` holds it
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            result = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    textwrap.dedent("""
                    import sys
                    from pathlib import Path
                    from mura_thesis.build import Builder, run_single_chapter
                    from mura_thesis.profiles import load_profile
                    root = Path.cwd()
                    Builder.check_data = lambda self: None  # not needed: the output check comes first
                    try:
                        run_single_chapter(root, load_profile(root, "smoke"), "07_ethics", {}, Path("out.ipynb"),
                                           data=sys.argv[1])
                    except Exception as error:
                        print(type(error).__name__, error)
                """),
                    str(tmp_path),
                ],
                cwd=project,
                capture_output=True,
                text=True,
                env=ENVIRONMENT,
                timeout=120,
            )
        finally:
            holder.kill()
            holder.wait()
    assert "is being written by another `mura-thesis run`" in result.stdout, result.stdout + result.stderr
    assert "-o OTHER.ipynb" in result.stdout
    assert not output.exists()


# --- 2. data problems -------------------------------------------------------------------------


def damage(dataset, mura_copy: Path) -> dict[str, str]:
    """A zero-byte, a truncated and a decompression-bomb image: ``{relpath: expected reason}``."""
    train = dataset.images.loc[dataset.images["split"] == "train"]
    zero, truncated, bomb = train["relpath"].iloc[[3, 10, 20]]
    (mura_copy / zero).write_bytes(b"")
    data = (mura_copy / truncated).read_bytes()
    (mura_copy / truncated).write_bytes(data[: len(data) // 3])
    Image.new("1", (9000, 9000)).save(mura_copy / bomb)  # 81 megapixels in a few kB
    return {zero: "zero-byte file", truncated: "truncated or corrupt", bomb: "too large (decompression-bomb guard)"}


def test_bad_images_are_excluded_with_their_reason_and_counted(mura_copy, tmp_path):
    from mura_lib.inputs import prepare_data

    expected = damage(load_mura(mura_copy), mura_copy)
    dataset = load_mura(mura_copy)
    table = exclusions(dataset, 16, cache_dir=tmp_path, progress=False)
    assert dict(zip(table["relpath"], table["reason"])) == expected
    # Above the threshold the build stops, naming every file and the setting that allows more.
    with pytest.raises(TooManyExcludedError, match="max-excluded-fraction") as error:
        prepare_data(dataset, 16, cache_dir=tmp_path, progress=False, max_excluded_fraction=0.001)
    assert all(relpath in str(error.value) for relpath in expected)
    prepared = prepare_data(dataset, 16, cache_dir=tmp_path, progress=False, max_excluded_fraction=0.05)
    assert set(prepared.excluded["relpath"]) == set(expected)
    assert not prepared.images["relpath"].isin(list(expected)).any()


def test_a_failure_is_retried_and_a_changed_file_processed_again(mura_copy, tmp_path, monkeypatch):
    import mura_lib.preprocess as preprocess

    dataset = load_mura(mura_copy)
    victim, changed = dataset.images["relpath"].iloc[[5, 6]]
    original = preprocess.read_image

    def unreadable(path):
        if str(path).endswith(victim):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return original(path)

    monkeypatch.setattr(preprocess, "read_image", unreadable)
    first = build_cache(dataset, 16, cache_dir=tmp_path, workers=1, progress=False)
    assert first.failures[["relpath", "reason"]].values.tolist() == [[victim, "unreadable (permission denied)"]]
    monkeypatch.setattr(preprocess, "read_image", original)  # the permission is fixed
    again = build_cache(load_mura(mura_copy), 16, cache_dir=tmp_path, workers=1, progress=False)
    assert again.directory == first.directory and again.failures.empty
    assert again.images[again.rows_for([victim])[0]].max() > 0
    # Same size, new content: the manifest covers the content, so this is another cache.
    path = mura_copy / changed
    size = path.stat().st_size
    white = Image.new("L", (40, 40), 255)
    white.save(path)
    with open(path, "ab") as handle:
        handle.write(b"\0" * (size - path.stat().st_size))
    assert path.stat().st_size == size
    third = build_cache(load_mura(mura_copy), 16, cache_dir=tmp_path, workers=1, progress=False)
    assert third.directory != first.directory and third.failures.empty
    assert (third.images[third.rows_for([changed])[0]] == 255).any()


def test_splits_are_checked_before_training(mura_copy):
    csv = mura_copy / "train_image_paths.csv"
    lines = csv.read_text().splitlines()
    # The same image listed twice.
    csv.write_text("\n".join([*lines, lines[4]]) + "\n")
    with pytest.raises(
        MuraFormatError, match=rf"train_image_paths.csv:{len(lines) + 1}: .* listed twice \(first on line 5\)"
    ):
        load_mura(mura_copy)
    csv.write_text("\n".join(lines) + "\n")
    # A link to a file that is gone.
    image = mura_copy / lines[7].split("/", 1)[1]
    image.unlink()
    image.symlink_to(mura_copy / "moved-away.png")
    with pytest.raises(MuraFormatError, match="symbolic links whose target does not exist"):
        load_mura(mura_copy)


def test_empty_and_one_class_splits_are_errors(mura_copy):
    (mura_copy / "valid_image_paths.csv").write_text("")
    with pytest.raises(MuraFormatError, match="valid_image_paths.csv: the valid split has no images"):
        load_mura(mura_copy, missing="drop")


def test_one_class_split_is_an_error(mura_copy):
    studies = mura_copy / "valid_labeled_studies.csv"
    images = mura_copy / "valid_image_paths.csv"
    abnormal = [line.split(",")[0] for line in studies.read_text().splitlines() if line.endswith(",1")]
    studies.write_text("".join(f"{line}\n" for line in studies.read_text().splitlines() if not line.endswith(",1")))
    images.write_text(
        "".join(
            f"{line}\n"
            for line in images.read_text().splitlines()
            if not any(line.startswith(study) for study in abnormal)
        )
    )
    for study in abnormal:
        shutil.rmtree(mura_copy / study.split("/", 1)[1])
    with pytest.raises(MuraFormatError, match="every study of the valid split is normal; with one class AUROC"):
        load_mura(mura_copy)


def test_a_patient_in_both_splits_is_an_error_unless_allowed(mura_copy, monkeypatch):
    """The valid split is the test set: a patient of both splits was accepted without a word."""
    dataset = load_mura(mura_copy)
    study = dataset.images.query("split == 'valid'").iloc[0]
    patient = dataset.images.query("split == 'train'")["patient"].iloc[0]
    # Move one valid study to a patient of the train split, on disk and in both CSV files.
    old = f"{study['split']}/{study['study_type']}/{study['patient']}/{study['study']}"
    new = f"{study['split']}/{study['study_type']}/{patient}/{study['study']}"
    (mura_copy / new).parent.mkdir(parents=True, exist_ok=True)
    (mura_copy / old).rename(mura_copy / new)
    for name in ("valid_image_paths.csv", "valid_labeled_studies.csv"):
        csv = mura_copy / name
        csv.write_text(csv.read_text().replace(f"/{old}/", f"/{new}/"))
    with pytest.raises(
        MuraFormatError, match=rf"patients with studies in both the train and the valid split \(1\):\n  {patient}"
    ):
        load_mura(mura_copy)
    assert patient in set(load_mura(mura_copy, patient_overlap="allow").images.query("split == 'valid'")["patient"])
    monkeypatch.setenv("MURA_PATIENT_OVERLAP", "allow")  # what the build sets from the profile's data section
    load_mura(mura_copy)


def test_an_upper_case_extension_is_named_as_the_problem(mura_copy):
    csv = mura_copy / "train_image_paths.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0].replace(".png", ".PNG"), *lines[1:]]) + "\n")
    with pytest.raises(
        MuraFormatError,
        match=r"train_image_paths.csv:1: .*image1?\d*\.PNG' ends in '.PNG'; MURA's image files end in '.png', lower-case",
    ):
        load_mura(mura_copy)


def test_tiny_images_are_left_out_and_unusual_ones_noted(mura_copy, tmp_path):
    """1 x 1 and 2 x 500 pixel files were trained on; a JPEG named .png with an EXIF rotation was
    used unturned.  Now the tiny ones are left out with their reason, and the JPEG is turned as
    its EXIF says and noted."""
    from mura_lib.preprocess import MIN_IMAGE_SIDE, read_image

    train = load_mura(mura_copy).images.query("split == 'train'")
    dot, sliver, rotated = train["relpath"].iloc[[2, 9, 15]]
    Image.new("L", (1, 1), 128).save(mura_copy / dot)
    Image.new("L", (2, 500), 128).save(mura_copy / sliver)
    picture = Image.new("L", (60, 30), 0)
    picture.paste(255, (0, 0, 30, 30))  # the left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # a viewer turns it 90 degrees clockwise: the white half goes to the top
    picture.save(mura_copy / rotated, format="JPEG", exif=exif.tobytes())
    pixels, note = read_image(mura_copy / rotated)
    assert pixels.shape == (60, 30) and pixels[:30].mean() > 200 and pixels[30:].mean() < 50
    assert note == "JPEG data in a .png file; EXIF orientation 6 applied"
    cache = build_cache(load_mura(mura_copy), 16, cache_dir=tmp_path, workers=1, progress=False)
    reason = f"too small (a side under {MIN_IMAGE_SIDE} pixels)"
    assert dict(zip(cache.failures["relpath"], cache.failures["reason"])) == {dot: reason, sliver: reason}
    assert cache.notes.values.tolist() == [[rotated, "JPEG data in a .png file; EXIF orientation 6 applied"]]
    # The plain images need no note.
    assert read_image(mura_copy / train["relpath"].iloc[0])[1] == ""


def test_non_utf8_csv_names_file_and_line(mura_copy):
    csv = mura_copy / "train_labeled_studies.csv"
    lines = csv.read_bytes().splitlines()
    lines[2] = lines[2].replace(b"MURA", b"MUR\xe9")
    csv.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(MuraFormatError, match=r"train_labeled_studies.csv:3: not valid UTF-8"):
        load_mura(mura_copy)


def test_missing_files_policy_from_profile_and_command_line(mura_copy, monkeypatch):
    victim = load_mura(mura_copy).images.query("split == 'train'")
    victim = victim.loc[victim.groupby("study_path")["view"].transform("size") > 1].iloc[0]
    Path(victim["path"]).unlink()
    with pytest.raises(MuraFormatError, match="--missing drop"):
        load_mura(mura_copy)
    monkeypatch.setenv("MURA_MISSING", "drop")  # what the build sets from --missing or the profile
    assert victim["relpath"] not in set(load_mura(mura_copy).images["relpath"])
    profile = load_profile(REPO, "smoke")
    assert Builder(REPO, profile).missing == "error"
    assert Builder(REPO, profile, missing="drop").data_settings()["MURA_MISSING"] == "drop"


# --- 3. parameters and profiles ---------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda text: text.replace("  epochs: 3", "  epoch: 1"),
            r"params/bad.yaml: parameters.epoch: unknown key \(did you mean 'epochs'\?\)",
        ),
        (
            lambda text: text.replace("    architecture_image_size: 32", "    architecture_image_siz: 32"),
            r"chapters.appendix_a_architectures.architecture_image_siz: unknown key \(did you mean 'architecture_image_size'\?\)",
        ),
        (
            lambda text: text.replace("  appendix_a_architectures:", "  appendix_a_architecture:"),
            r"chapters.appendix_a_architecture: unknown key",
        ),
        (
            lambda text: text.replace("  image_size: 32", "  image_size: abc"),
            r"parameters.image_size: 'abc' is not valid; expected an integer in \[16, 1024\]",
        ),
        (lambda text: text.replace("  image_size: 32", "  image_size: 4"), r"parameters.image_size: 4 is not valid"),
        # Sizes 8-15 passed the schema and then failed every run ("too small for 4 pooling blocks").
        (lambda text: text.replace("  image_size: 32", "  image_size: 12"), r"parameters.image_size: 12 is not valid"),
        (lambda text: text.replace("  seeds: [0, 1]", "  seeds: [0, -1]"), r"parameters.seeds\[1\]: -1 is not valid"),
        (
            lambda text: text.replace("  scale: 0.01", "  scale: 2"),
            r"data.scale: 2 is not valid; expected a number in \(0, 1\]",
        ),
        (
            lambda text: text.replace("  n_resamples: 200", "  n_resamples 200"),
            r"params/bad.yaml:\d+:\d+: YAML syntax error",
        ),
    ],
    ids=[
        "epoch",
        "chapter-key",
        "chapter-name",
        "type",
        "range",
        "below-pooling",
        "list-item",
        "data-section",
        "yaml-syntax",
    ],
)
def test_profile_errors_name_file_key_and_expectation(tmp_path, edit, message):
    project = small_project(tmp_path / "thesis")
    (project / "params" / "bad.yaml").write_text(edit((REPO / "params" / "smoke.yaml").read_text()))
    with pytest.raises(ParameterError, match=message):
        load_profile(project, "bad")


def test_run_parameters_are_checked_before_any_kernel_starts(tmp_path):
    project = small_project(tmp_path / "thesis")
    started = time.perf_counter()
    result = run_cli(project, "run", "05_1_baseline", "-p", "image_size", "abc", "--profile", "smoke")
    assert result.returncode == 2
    assert "-p: image_size: 'abc' is not valid; expected an integer in [16, 1024]" in result.stderr
    assert "Traceback" not in result.stderr
    (project / "mine.yaml").write_text("epochs: 3\nimage_sizez: [16]\n")
    result = run_cli(project, "run", "05_1_baseline", "-f", "mine.yaml", "--profile", "smoke")
    assert result.returncode == 2 and "mine.yaml: image_sizez: unknown key" in result.stderr
    (project / "mine.yaml").write_text("epochs: [3\n")
    result = run_cli(project, "run", "05_1_baseline", "-f", "mine.yaml", "--profile", "smoke")
    assert result.returncode == 2 and "mine.yaml:2:1: YAML syntax error" in result.stderr
    result = run_cli(project, "run", "05_1_baseline", "-f", "params", "--profile", "smoke")
    assert result.returncode == 2 and "params: a folder, not a file; give the path of a YAML file" in result.stderr
    assert "Traceback" not in result.stderr and "IsADirectoryError" not in result.stderr
    result = run_cli(project, "build", "--profile", "smoke", "--max-excluded-fraction", "2")
    assert result.returncode == 2 and "max_excluded_fraction: 2.0 is not valid" in result.stderr
    assert not (project / "data" / "synthetic").exists()  # nothing was generated, no kernel ran
    assert time.perf_counter() - started < 120


_PASSAGE_KEY = re.compile(r"^\s*:{3,}\{passage\}\s+(\S+)\s*\n\s*:when:\s*([^,\n]+)", re.M)
_REFERENCE = re.compile(r"\{(?:glue:text|glue:figure|numref)\}`([^`:]+)")


def staged_text(chapter: str, glued: dict[str, str]) -> str:
    """A chapter's Markdown as the build stages it, every passage chosen by ``glued`` (a key it
    does not give takes its first variant's value)."""
    import jupytext
    import nbformat

    from mura_thesis import presentation

    notebook = jupytext.read(REPO / "chapters" / f"{chapter}.md")
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    values = {key: value.strip() for key, value in _PASSAGE_KEY.findall(markdown)} | glued
    code = nbformat.v4.new_code_cell("glue(...)")
    code.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"application/papermill.record/text/plain": repr(value)},
            metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}},
        )
        for name, value in values.items()
    ]
    notebook.cells.insert(0, code)
    resolved = presentation.resolve_passages(notebook)
    return "\n".join(c.source for c in resolved.cells if c.cell_type == "markdown")


def test_switched_off_experiments_have_no_arms_and_their_chapters_say_so(monkeypatch):
    """`regularisation: false` and `development: false` passed the schema and stopped chapters 04
    and 05_3 with "The plan has no group"; now the plan lists the baseline alone for them, and
    the chapters and the conclusions say the experiment is switched off, quoting nothing of it."""
    from mura_thesis.plan import ExperimentPlan, PlanSettings
    from mura_thesis.profiles import profile_settings

    settings = profile_settings("smoke", REPO) | {"regularisation": False, "development": False}
    plan = ExperimentPlan(PlanSettings.from_dict(settings), "unused")
    monkeypatch.setattr(plan, "run", lambda name: f"run {name}")  # nothing trains here
    for group in ("regularisation", "development"):
        assert not plan.trains(group) and plan.comparisons(group) == {}
        assert plan.group(group) == {"baseline": "run baseline"}
        assert not [run for run in plan.runs.values() if run.group == group]
    assert plan.trains("image size") and plan.group("image size")
    with pytest.raises(KeyError, match="no group 'regularisaton'"):
        plan.group("regularisaton")
    # What the chapters glue when the experiment is off: the set-up values and the switch.
    glued = {"reg-source": "synthetic", "reg-profile": "smoke", "reg-size": "32", "reg-seeds": "2"}
    text = staged_text("05_3_regularisation", glued | {"reg-trained": "no"})
    assert "switches the experiment off" in text and "`regularisation: false`" in text
    assert set(_REFERENCE.findall(text)) <= set(glued), set(_REFERENCE.findall(text)) - set(glued)
    assert "reg-no-dropout-diff" in staged_text("05_3_regularisation", glued | {"reg-trained": "yes"})
    text = staged_text("04_model_development", {"model-development-trained": "no"})
    assert "`development: false`" in text
    assert not [name for name in _REFERENCE.findall(text) if "model-development" in name]
    text = staged_text("06_conclusions", {"conc-reg-trained": "no", "conc-reg-any-lower": "no"})
    assert "`regularisation: false`" in text and "No regulariser's removal" not in text


@pytest.mark.parametrize(
    "changes, message",
    [
        # Only the baseline's size: chapter 05_2 had no group to report.
        ({"image_sizes": [32]}, r"image_sizes: \[32\] has no size other than image_size \(32\)"),
    ],
)
def test_settings_no_chapter_can_report_are_rejected_before_any_chapter_runs(changes, message):
    profile = load_profile(REPO, "smoke")
    with pytest.raises(BuildError, match=message):
        Builder(REPO, profile, overrides=changes).settings()
    assert Builder(REPO, profile, overrides={"image_sizes": [16]}).settings()["image_sizes"] == [16]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"seeds": [0, 0]}, r"seeds: \[0, 0\] is not valid; expected a non-empty list of distinct seeds"),
        ({"seeds": []}, r"seeds: \[\] is not valid"),
        ({"image_sizes": []}, r"image_sizes: \[\] is not valid"),
        ({"backbones": []}, r"backbones: \[\] is not valid"),
        ({"backbone_modes": []}, r"backbone_modes: \[\] is not valid"),
        ({"gradcam_examples": 0}, r"gradcam_examples: 0 is not valid; expected an integer >= 1"),
        # 0.5 or more passed and failed in every run's patient split ("must be in (0, 0.5)").
        ({"validation_fraction": 0.6}, r"validation_fraction: 0.6 is not valid; expected a number in \(0, 0.5\)"),
    ],
    ids=[
        "duplicate-seeds",
        "no-seeds",
        "no-sizes",
        "no-backbones",
        "no-modes",
        "no-gradcam-examples",
        "validation-fraction",
    ],
)
def test_empty_and_repeated_settings_are_rejected_by_the_schema(values, message):
    from mura_thesis.schema import check_overrides

    with pytest.raises(ParameterError, match=message):
        check_overrides(REPO, "08_extensions", [("-p", values)])


# --- 4. how errors reach the user, what faults leave behind -----------------------------------

CACHE_SCRIPT = """
import sys
from mura_lib.dataset import load_mura
from mura_lib.preprocess import build_cache
build_cache(load_mura(sys.argv[1]), 16, cache_dir=sys.argv[2], workers=2, chunk_size=4, progress=False)
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_a_script_without_a_main_guard_can_build_the_cache_in_parallel(synthetic_root, tmp_path, how):
    """A plain script (no ``if __name__ == "__main__":``) hung for ever, its workers running it
    again; read from standard input it died with FileNotFoundError '<stdin>' and BrokenProcessPool."""
    script = CACHE_SCRIPT + 'print("BUILT", flush=True)\n'
    arguments = [str(synthetic_root), str(tmp_path / "cache")]
    if how == "file":
        (tmp_path / "plain.py").write_text(script)
        command, given = [sys.executable, str(tmp_path / "plain.py"), *arguments], None
    else:
        command, given = [sys.executable, "-", *arguments], script
    result = subprocess.run(
        command, input=given, cwd=tmp_path, capture_output=True, text=True, env=ENVIRONMENT, timeout=120
    )
    assert result.returncode == 0 and "BUILT" in result.stdout, result.stderr[-2000:]
    assert "leaked semaphore" not in result.stderr


def test_killed_cache_build_leaves_no_workers_and_its_leftovers_are_removed(mura_copy, tmp_path):
    psutil = pytest.importorskip("psutil")
    dataset = load_mura(mura_copy)
    blocker = mura_copy / dataset.images["relpath"].iloc[30]
    content = blocker.read_bytes()
    blocker.unlink()
    os.mkfifo(blocker)  # a worker opening it blocks, so the build is still running when it is killed
    cache = tmp_path / "cache"
    process = subprocess.Popen([sys.executable, "-c", CACHE_SCRIPT, str(mura_copy), str(cache)], env=ENVIRONMENT)
    deadline = time.time() + 60
    workers = []
    while time.time() < deadline:
        partials = list(cache.glob(".*.partial-*"))
        workers = [p for p in psutil.Process(process.pid).children(recursive=True)]
        if partials and len(workers) >= 3:  # the fork server and two workers
            break
        time.sleep(0.2)
    assert partials and workers, "the cache build did not start"
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers outlived their parent: {alive}"
    # The next build removes the dead build's half-written array and builds the cache.
    blocker.unlink()
    blocker.write_bytes(content)
    built = build_cache(load_mura(mura_copy), 16, cache_dir=cache, workers=1, progress=False)
    assert not list(cache.glob(".*.partial-*"))
    assert built.failures.empty


def test_killed_synthesize_leftovers_are_removed(tmp_path):
    from mura_lib.synthetic import generate_synthetic_mura

    leftover = tmp_path / f".MURA-v1.1.partial-{dead_pid()}-12345678"
    (leftover / "train").mkdir(parents=True)
    generate_synthetic_mura(tmp_path, scale=0.002, image_size=32, workers=1, progress=False)
    assert not leftover.exists()


def test_synthesize_overwrite_from_the_command_line(tmp_path, capsys):
    arguments = ["synthesize", str(tmp_path), "--scale", "0.002", "--image-size", "32", "--workers", "1"]
    assert cli.main(arguments) == 0
    assert cli.main([*arguments, "--seed", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main([*arguments, "--seed", "1", "--overwrite"]) == 0
    assert json.loads((tmp_path / "MURA-v1.1" / "SYNTHETIC.json").read_text())["seed"] == 1
    # A folder the generator did not write (a real MURA copy has no SYNTHETIC.json) is never deleted.
    (tmp_path / "MURA-v1.1" / "SYNTHETIC.json").unlink()
    capsys.readouterr()
    assert cli.main([*arguments, "--seed", "2", "--overwrite"]) == 2
    assert "has no SYNTHETIC.json, so this generator did not write it" in capsys.readouterr().err
    assert (tmp_path / "MURA-v1.1" / "train_image_paths.csv").exists()


def test_train_reads_the_data_as_told(tmp_path, monkeypatch, capsys):
    """`train --missing drop` and `--max-excluded-fraction` were ignored (and the error then told
    the user to pass the option they had passed): every reader of the data, in this process and
    in the workers, now gets them, as does the command that retries a run."""
    import mura_thesis.executors as executors
    import mura_thesis.profiles as profiles

    seen = {}

    def train_runs(jobs, **options):
        seen.update(missing=os.environ.get("MURA_MISSING"), fraction=os.environ.get("MURA_MAX_EXCLUDED_FRACTION"))
        seen["command"] = options["command"]
        return [executors.Result(name, "0" * 16, "stored") for name, _ in jobs]

    monkeypatch.setattr(profiles, "plan_stages", lambda *a, **k: [(tmp_path, [("baseline (32 px, seed 0)", None)])])
    monkeypatch.setattr(executors, "train_runs", train_runs)
    monkeypatch.delenv("MURA_MISSING", raising=False)
    monkeypatch.chdir(small_project(tmp_path / "thesis"))
    assert cli.main(["train", "--profile", "smoke", "--missing", "drop", "--max-excluded-fraction", "0.2"]) == 0
    assert seen["missing"] == "drop" and float(seen["fraction"]) == 0.2
    assert seen["command"][-4:] == ["--missing", "drop", "--max-excluded-fraction", "0.2"]
    assert "MURA_MISSING" not in os.environ  # set for the training only
    assert "MURA_MISSING" in executors.WORKER_ENV_VARS and "MURA_MAX_EXCLUDED_FRACTION" in executors.WORKER_ENV_VARS


def test_a_run_store_that_cannot_be_written_stops_training_at_once(synthetic_root, tmp_path, monkeypatch):
    """A read-only runs/ failed every run with a traceback and "retry it alone", which cannot
    help: now nothing starts, and the message names the folder and what to do."""
    import errno
    import tempfile

    from mura_lib.config import ExperimentConfig
    from mura_thesis.executors import NotWritableError, train_runs

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    out = tmp_path / "out.txt"
    with open(out, "w") as stream, pytest.raises(NotWritableError) as error:
        config = ExperimentConfig(image_size=16, depth=1, width=4, epochs=1, augment=False)
        train_runs(
            [("tiny", config)], data_root=synthetic_root, runs_dir=tmp_path / "runs", cache_dir=tmp_path, out=stream
        )
    message = str(error.value)
    assert f"Cannot write to the run store {tmp_path / 'runs'} (Read-only file system); nothing was trained" in message
    assert "retry" not in out.read_text() and "Traceback" not in out.read_text()


def test_full_disk_names_the_path(monkeypatch, capsys):
    import mura_lib.synthetic as synthetic

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/synthetic/MURA-v1.1/train/image1.png")

    monkeypatch.setattr(synthetic, "generate_synthetic_mura", full)
    assert cli.main(["synthesize", "/data/synthetic"]) == 1
    error = capsys.readouterr().err
    assert "no space left on the device holding /data/synthetic/MURA-v1.1/train/image1.png" in error
    assert "Traceback" not in error


CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Test

```{{code-cell}} ipython3
import keras
{body}
```
"""


def chapter_plan(project: Path, name: str, body: str) -> ChapterPlan:
    source = project / "chapters" / f"{name}.md"
    source.write_text(CHAPTER.format(body=body))
    return ChapterPlan(entry=f"chapters/{name}", source=source, parameters={}, parts={})


@pytest.mark.slow  # starts processes that train or run kernels: the end-to-end tier
def test_kernel_death_and_expected_errors_end_in_one_message(tmp_path, capfd):
    project = small_project(tmp_path / "thesis")
    builder = Builder(project, load_profile(project, "smoke"))
    builder._data = ("synthetic", tmp_path, "manifest")
    # A chapter that ends well: no "KeyboardInterrupt caught in kernel" from the kernel's shutdown.
    record = builder.execute(chapter_plan(project, "fine", "print('ok')"), project / "build" / "fine.ipynb")
    assert record["chapter"] == "fine"
    assert "KeyboardInterrupt" not in capfd.readouterr().err
    plan = chapter_plan(project, "killed", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(
        BuildError, match="The kernel executing chapter killed .* died.*Re-running the same command resumes"
    ):
        builder.execute(plan, project / "build" / "killed.ipynb")
    plan = chapter_plan(
        project,
        "bad_data",
        "from mura_lib.dataset import MuraFormatError\n"
        "raise MuraFormatError('train_image_paths.csv:3: not valid UTF-8')",
    )
    with pytest.raises(BuildError) as error:
        builder.execute(plan, project / "build" / "bad_data.ipynb")
    assert "Chapter bad_data (chapters/bad_data.md) stopped: train_image_paths.csv:3: not valid UTF-8" in str(
        error.value
    )
    assert "Traceback" not in str(error.value) and "----" not in str(error.value)


def test_status_does_not_generate_the_dataset(tmp_path):
    project = small_project(tmp_path / "thesis")
    result = run_cli(project, "status", "--profile", "smoke")
    assert result.returncode == 0, result.stderr
    assert "not generated yet" in result.stdout and "never executed" in result.stdout
    assert not (project / "data").exists()
    # Settings no chapter can report are refused here too, as an error of status, not a failed build.
    result = run_cli(project, "status", "--profile", "smoke", "-p", "image_sizes", "[32]")
    assert result.returncode == 1 and "error: profile 'smoke'" in result.stderr, result.stderr
    assert "has no size other than image_size (32)" in result.stderr and "BUILD FAILED" not in result.stderr


def test_run_names_the_settings_it_changed(tmp_path, monkeypatch):
    """`mura-thesis run CHAPTER -p image_size 64` said "Executing CHAPTER with {}": the settings
    reach a chapter inside its `settings` parameter, so none was among its own parameters."""
    import mura_thesis.build as build

    project = small_project(tmp_path / "thesis")
    monkeypatch.setattr(Builder, "data", property(lambda self: ("synthetic", tmp_path, "manifest")))
    monkeypatch.setattr(Builder, "check_data", lambda self: None)
    monkeypatch.setattr(Builder, "execute", lambda self, plan, output: {"seconds": 0.0})
    monkeypatch.setattr(Builder, "exclusion_summary", lambda self: None)
    monkeypatch.setattr(build, "present_notebook", lambda *args, **kwargs: None)
    said = []
    monkeypatch.setattr(Builder, "say", lambda self, message: said.append(message))
    profile = load_profile(project, "smoke")
    build.run_single_chapter(project, profile, "05_1_baseline", {"image_size": 64}, tmp_path / "out.ipynb")
    assert "Executing 05_1_baseline with image_size=64 ..." in said
    build.run_single_chapter(project, profile, "05_1_baseline", {}, tmp_path / "out.ipynb")
    assert "Executing 05_1_baseline with the profile's settings ..." in said


def test_makefile_passes_the_data_path_as_typed(tmp_path):
    """A path with a space, or a quote (which broke the Makefile's own quoting), reaches the CLI
    as one argument, unchanged (a stand-in for the CLI prints its arguments)."""
    (tmp_path / "bin").mkdir()
    stub = tmp_path / "bin" / "mura-thesis"
    stub.write_text('#!/bin/sh\nfor a in "$@"; do printf "[%s]" "$a"; done\n')
    stub.chmod(0o755)
    (tmp_path / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    for data in ("/my data/MURA-v1.1", "/data/O'Brien's copy/MURA-v1.1", '/a "quoted" folder/MURA'):
        for target in ("book", "status"):
            result = subprocess.run(
                ["make", "-s", "-C", str(REPO), target, f"VENV={tmp_path}", f"DATA={data}", "PROFILE=smoke"],
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, result.stderr
            assert f"[--profile][smoke][--data][{data}]" in result.stdout, result.stdout


def test_an_image_replaced_by_one_of_the_same_size_changes_the_manifest(mura_copy, monkeypatch):
    import mura_lib.dataset as dataset_module
    from mura_lib.config import ExperimentConfig, run_key

    read = []
    original = dataset_module.file_digest

    def counting(path):
        read.append(path)
        return original(path)

    monkeypatch.setattr(dataset_module, "file_digest", counting)
    before = manifest_hash(mura_copy)
    files = [p for split in ("train", "valid") for p in (mura_copy / split).rglob("*") if p.is_file()]
    assert len(read) == len(files)  # the first use reads every file once
    read.clear()
    dataset_module._CONTENT_TABLES.clear()  # a new process: the hashes remembered on disk serve
    assert manifest_hash(mura_copy) == before and read == []
    path = mura_copy / load_mura(mura_copy).images["relpath"].iloc[4]
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))  # same size
    after = manifest_hash(mura_copy)
    assert after != before and read == [str(path)]

    def key(data_hash):
        return run_key(ExperimentConfig(), data_hash=data_hash, library="l", backend="b", precision="p", numerics={})

    assert key(after) != key(before)


def _flip_middle(directory: Path) -> None:
    path = directory / "images.npy"
    with open(path, "r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        handle.write(bytes(4096))


def _cut(name: str):
    def cut(directory: Path) -> None:
        path = directory / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return cut


@pytest.mark.parametrize(
    "damage, message",
    [
        (_flip_middle, "row(s) whose bytes changed"),
        (lambda d: (d / "images.npy").write_bytes(os.urandom((d / "images.npy").stat().st_size)), "does not open"),
        (_cut("images.npy"), "images.npy has"),
        (_cut("index.csv"), "index.csv differs"),
        (lambda d: (d / "meta.json").unlink(), "meta.json is missing"),
        (lambda d: (d / "index.csv").unlink(), "index.csv is missing"),
    ],
    ids=["zeros-in-images", "random-images", "truncated-images", "cut-index", "no-meta", "no-index"],
)
def test_a_damaged_image_cache_is_repaired(mura_copy, tmp_path, capsys, damage, message):
    import numpy as np

    from mura_lib.preprocess import DamagedCacheError, open_cache

    dataset = load_mura(mura_copy)
    cache = build_cache(dataset, 16, cache_dir=tmp_path, workers=1, progress=False)
    reference, directory = np.array(cache.images), cache.directory
    del cache
    damage(directory)
    if message != "row(s) whose bytes changed":
        with pytest.raises(DamagedCacheError, match=message):
            open_cache(directory)
    capsys.readouterr()
    repaired = build_cache(dataset, 16, cache_dir=tmp_path, workers=1, progress=False)
    assert message in capsys.readouterr().out
    assert len(repaired.index) == len(dataset.images)
    assert np.array_equal(np.array(repaired.images), reference)


def test_an_unchanged_image_cache_is_not_hashed_again(mura_copy, tmp_path, monkeypatch):
    import mura_lib.preprocess as preprocess

    dataset = load_mura(mura_copy)
    build_cache(dataset, 16, cache_dir=tmp_path, workers=1, progress=False)
    hashed = []
    original = preprocess.bytes_digest
    monkeypatch.setattr(preprocess, "bytes_digest", lambda data: hashed.append(1) or original(data))
    build_cache(dataset, 16, cache_dir=tmp_path, workers=1, progress=False)
    assert hashed == []  # the rows were stamped as checked when they were written


def _stored_run(store: RunStore, key: str = "k1") -> Path:
    """A run stored by RunStore.finish, with a stand-in for the model (it writes a small HDF5 file)."""

    class Model:
        def save_weights(self, path):
            write_weights(Path(path))

    directory = store.start(key, {"model": "cnn"}, name="baseline", data_root="data")
    (directory / "history.csv").write_text("epoch,loss\n" + "".join(f"{e},0.{70 - e}\n" for e in range(5)))
    predictions = pd.DataFrame(
        [(f"r{i}", f"s{i // 2}", "XR_HAND", "p", 1, (i // 2) % 2, "test", 0.3 + 0.1 * i) for i in range(8)],
        columns=["relpath", "study_path", "study_type", "patient", "view", "label", "subset", "probability"],
    )
    store.finish(key, model=Model(), predictions=predictions, environment={}, data_summary={}, training={"epochs": 5})
    return directory


def _replace(name: str, edit):
    def replace(directory: Path) -> None:
        path = directory / name
        path.write_bytes(edit(path.read_bytes()))

    return replace


RUN_DAMAGE = {
    "history-cut-mid-row": (_replace("history.csv", lambda b: b[:-3]), "cut short"),
    "history-last-rows-lost": (_replace("history.csv", lambda b: b"".join(b.splitlines(True)[:-2])), "records 5"),
    "weights-truncated": (_replace("model.weights.h5", lambda b: b[: len(b) // 2]), "does not open as an HDF5"),
    "predictions-same-size": (_replace("predictions.csv", lambda b: b.replace(b"0.3", b"0.9", 1)), None),
}


@pytest.mark.parametrize("case", RUN_DAMAGE, ids=list(RUN_DAMAGE))
@pytest.mark.parametrize("checksums", [True, False], ids=["checksums", "old-run-without-checksums"])
def test_a_damaged_run_fails_verification(tmp_path, case, checksums):
    store = RunStore(tmp_path / "runs")
    directory = _stored_run(store)
    assert store.verify("k1") == []
    if not checksums:  # a run stored before checksums were recorded: its structure is checked
        info = json.loads((directory / "run.json").read_text())
        del info["checksums"]
        atomic_write_text(directory / "run.json", json.dumps(info))
    damage, structural = RUN_DAMAGE[case]
    damage(directory)
    problems = " ".join(store.verify("k1"))
    if checksums:
        assert "were stored" in problems or "differs from what was stored" in problems
    elif structural is None:
        assert problems == ""  # a same-size edit keeps the structure: only a checksum finds it
        return
    else:
        assert structural in problems
    with pytest.raises(BrokenRunError, match="mura-thesis runs k1 --delete"):
        store.load("k1")


def test_changed_weights_of_the_same_size_are_refused_when_loaded(tmp_path):
    store = RunStore(tmp_path / "runs")
    directory = _stored_run(store)
    _replace("model.weights.h5", lambda b: b[:-100] + bytes([b[-100] ^ 0xFF]) + b[-99:])(directory)
    run = store.load("k1")  # the weights' size is checked here, their bytes when they are read
    with pytest.raises(BrokenRunError, match=r"model.weights.h5 differs.*mura-thesis runs k1 --delete"):
        run.load_model()


def test_the_data_chapter_never_opens_an_image_the_cache_left_out(mura_copy, tmp_path, monkeypatch):
    import mura_lib.preprocess as preprocess
    from mura_thesis import data_tables, development

    expected = damage(load_mura(mura_copy), mura_copy)
    dataset = load_mura(mura_copy)
    huge = dataset.images["relpath"].iloc[30]
    Image.new("1", (11000, 11000)).save(mura_copy / huge)  # above twice the limit, where PIL's own message differs
    expected[huge] = "too large (decompression-bomb guard)"
    table = exclusions(dataset, 16, cache_dir=tmp_path, progress=False)
    assert dict(zip(table["relpath"], table["reason"])) == expected
    for relpath in (huge, next(r for r, why in expected.items() if why.startswith("too large") and r != huge)):
        error = table.loc[table["relpath"] == relpath, "error"].item()
        assert error.endswith("is more than the limit of 50,000,000"), error
    opened = []
    original = preprocess.open_image
    monkeypatch.setattr(preprocess, "open_image", lambda path: opened.append(str(path)) or original(path))
    excluded = table["relpath"]
    sizes = data_tables.image_sizes(dataset, 10**6, excluded=excluded)
    assert len(sizes) == len(dataset.images) - len(expected)
    data_tables.examples_figure(dataset, 0, excluded=excluded)
    study = dataset.images.loc[dataset.images["relpath"] == huge, "study_path"].item()
    data_tables.study_figure(dataset, study, excluded=excluded)
    assert data_tables.example_study(dataset, 0, excluded=excluded)["study_path"] not in set(
        dataset.images.loc[dataset.images["relpath"].isin(excluded), "study_path"]
    )
    for seed in range(20):
        development.example_image(dataset, seed, excluded=excluded)
    assert opened and not {str(mura_copy / relpath) for relpath in expected} & set(opened)
    # Without the list, an image that cannot be read is a clear error, not PIL's.
    with pytest.raises(ValueError, match="did not leave it out"):
        data_tables.image_sizes(dataset, 10**6)


def test_every_image_is_opened_through_the_one_reader():
    opened = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "mura_lib").rglob("*.py")
        if "Image.open(" in path.read_text()
    }
    assert opened == {"mura_lib/preprocess.py"}
    assert (REPO / "mura_lib" / "preprocess.py").read_text().count("Image.open(") == 1
