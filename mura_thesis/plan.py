"""The experiment plan: every run the thesis needs and every comparison it draws, from one profile.

A profile's ``parameters`` section resolves once into :class:`PlanSettings`; the settings give
an :class:`ExperimentPlan`, a table of named runs (each an :class:`ExperimentConfig`, so a run key)
and of named comparisons between them.  Every chapter asks the plan for its runs and comparisons
by name, so the abstract, the results chapters and the conclusions read the same runs and the
same paired intervals and cannot disagree.  ``mura-thesis plan`` prints the table;
``mura-thesis train`` trains whatever is not stored yet.
"""

from __future__ import annotations

# ExperimentConfig is imported where it is used: settings are validated by the build process,
# which does not import TensorFlow.
import dataclasses
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mura_lib.config import IMAGE_MODELS
from mura_lib.files import atomic_write_text, short_hash

if TYPE_CHECKING:
    from mura_lib.config import ExperimentConfig

# The networks whose pretraining the thesis tests (the keras.applications backbones, and the
# ab-initio CNN itself, cheap enough to pretrain on a CPU), by the names the thesis prints.
BACKBONE_NAMES = {name: model.display_name for name, model in IMAGE_MODELS.items()}

# Each variant removes one regulariser of the baseline, all else equal.
REGULARISATION_VARIANTS = {
    "no dropout": {"dropout": 0.0},
    "no L2": {"l2": 0.0},
    "no augmentation": {"augment": False},
    "no batch normalisation": {"batch_norm": False},
}
# The experiments a profile can switch off (``regularisation: false``): the plan group of their
# arms, by the setting that switches it.  A switched-off group has no arms and no comparisons;
# its chapter asks :meth:`ExperimentPlan.trains` and says so in its text.
SWITCHED_GROUPS = {"regularisation": "regularisation", "development": "development"}
# Where a chapter's plan notes the runs it reads (one JSON line each), for the build's provenance
# box; set by the build for each chapter it executes.
RUNS_USED_ENV_VAR = "MURA_RUNS_USED"
# Where a chapter's plan notes the results it reads (one JSON line each), for the build's results
# manifest; set by the build for each chapter it executes.
RESULTS_ENV_VAR = "MURA_RESULTS_USED"
# The pretraining corpus is drawn from the thesis' seed plus this offset: none of its images is in
# the thesis' data.
SOURCE_SEED_OFFSET = 1000
# The alternatives tried while developing the baseline, judged on the validation subset.
DEVELOPMENT_VARIANTS = {
    "3 blocks": {"depth": 3},
    "unweighted loss": {"class_weighting": "none"},
}


@dataclass(frozen=True)
class PlanSettings:
    """The experiment settings of a profile (``params/<profile>.yaml``, section ``parameters``)."""

    seed: int = 0
    image_size: int = 48
    epochs: int = 20  # the fixed budget (schedule "cosine"), or the cap of the plateau rules
    min_epochs: int = 6
    lr_patience: int = 2
    early_stopping_patience: int = 4
    smoothing: float = 0.5
    # "plateau" (the rules above) or "cosine" (a fixed budget of ``epochs``, the weights of the
    # last ``average_epochs`` epochs averaged): see ExperimentConfig.schedule.
    schedule: str = "cosine"
    average_epochs: int = 1
    validation_fraction: float = 0.2
    n_resamples: int = 1000
    seeds: tuple = (0, 1, 2)
    image_sizes: tuple = (32, 48, 64)
    regularisation: bool = True
    development: bool = True
    backbones: tuple = ("cnn",)
    backbone_modes: tuple = ("frozen", "fine-tuned")
    pretrained_weights: str | None = None  # None: pretrain on the synthetic source task; "imagenet"; a file
    backbone_image_size: int = 0  # 0: the baseline's
    backbone_epochs: int = 0  # 0: the baseline's cap
    source_scale: float = 0.08
    multiview_image_size: int = 0  # 0: the baseline's
    multiview_epochs: int = 0  # 0: the baseline's cap
    multiview_max_views: int = 4  # views per study the multi-view model reads (later views are dropped)
    multiview_learning_rate: float = 1e-4
    fine_tune_learning_rate: float = 1e-4  # the paper's smaller rate for fine-tuning pretrained weights

    def __post_init__(self):
        for name in ("seeds", "image_sizes", "backbones", "backbone_modes"):
            value = getattr(self, name)
            if isinstance(value, (str, int)) or value is None:
                raise ValueError(f"{name} must be a list, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {self.image_size}")
        if any(int(s) < 8 for s in self.image_sizes):
            raise ValueError(f"image_sizes must be at least 8 pixels each, got {list(self.image_sizes)}")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        if any(int(s) < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative integers, got {list(self.seeds)}")
        for mode in self.backbone_modes:
            if mode not in ("frozen", "fine-tuned"):
                raise ValueError(f"backbone_modes must be 'frozen' or 'fine-tuned', got {mode!r}")
        unknown = [b for b in self.backbones if b not in BACKBONE_NAMES]
        if unknown:
            raise ValueError(f"unknown backbones {unknown}; known: {sorted(BACKBONE_NAMES)}")
        if self.n_resamples < 100:
            raise ValueError(f"n_resamples must be at least 100, got {self.n_resamples}")
        if len({int(x) for x in self.seeds}) != len(self.seeds):
            raise ValueError(f"seeds must not repeat a seed, got {list(self.seeds)}")
        if not self.fine_tune_learning_rate > 0:
            raise ValueError(f"fine_tune_learning_rate must be positive, got {self.fine_tune_learning_rate}")

    @property
    def arm_seeds(self) -> tuple[int, ...]:
        """The seeds every configuration (arm) of the plan is trained with: ``seed`` first, then
        the other ``seeds`` in their order."""
        return (int(self.seed), *[int(x) for x in self.seeds if int(x) != int(self.seed)])

    # The settings whose 0 means "the baseline's": what they resolve to.
    @property
    def backbone_size(self) -> int:
        """The input size of the transfer runs: ``backbone_image_size``, or the baseline's."""
        return self.backbone_image_size or self.image_size

    @property
    def backbone_cap(self) -> int:
        """The epoch cap of the transfer runs: ``backbone_epochs``, or the baseline's."""
        return self.backbone_epochs or self.epochs

    @property
    def multiview_size(self) -> int:
        """The input size of the multi-view model: ``multiview_image_size``, or the baseline's."""
        return self.multiview_image_size or self.image_size

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict, *, source: str = "the settings") -> "PlanSettings":
        unknown = sorted(set(values) - set(cls.fields()))
        if unknown:
            raise ValueError(f"{source}: unknown experiment settings {unknown}; known: {cls.fields()}")
        return cls(**values)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def baseline_config(self, **changes) -> "ExperimentConfig":
        from mura_lib.config import ExperimentConfig

        return ExperimentConfig(
            model="cnn",
            image_size=self.image_size,
            epochs=self.epochs,
            min_epochs=self.min_epochs,
            lr_patience=self.lr_patience,
            early_stopping_patience=self.early_stopping_patience,
            smoothing=self.smoothing,
            schedule=self.schedule,
            average_epochs=self.average_epochs,
            validation_fraction=self.validation_fraction,
            seed=self.seed,
            # Every seed of every arm is validated on the same studies: the split is the plan's.
            split_seed=self.seed,
        ).replace(**changes)


@dataclass(frozen=True)
class PlannedRun:
    name: str
    group: str
    label: str
    config: "ExperimentConfig"
    chapters: tuple = ()
    dataset: str = "target"  # "target" (the thesis' data) or "source" (the pretraining corpus)
    source: str | None = None  # the run whose backbone initialises this one (its key is known once trained data exist)
    arm: str = ""  # the configuration this run is one seed of (its name in the plan's arms)


@dataclass(frozen=True)
class PlannedComparison:
    """Configuration (arm) ``a`` against arm ``b``, every seed of each, on the same studies of
    ``subset`` (``level="configuration"``); or, with ``level="run"``, run ``a`` against run ``b``
    alone (the paired comparison of two single runs)."""

    name: str
    group: str
    a: str
    b: str
    subset: str = "test"
    labels: tuple | None = None  # how the text names A and B, where their run labels do not say it
    level: str = "configuration"


def _append_line(variable: str, record: dict) -> None:
    path = os.environ.get(variable)
    if path:
        with open(path, "a") as stream:
            stream.write(json.dumps(record) + "\n")


def _note_run_used(name: str, key: str) -> None:
    _append_line(RUNS_USED_ENV_VAR, {"name": name, "key": key})


def _note_result(record: dict) -> None:
    """One result a chapter read (a comparison's verdict with its interval, a metric), for the
    build's results manifest (:mod:`mura_thesis.manifest`)."""
    _append_line(RESULTS_ENV_VAR, record)


def _seed_name(seed: int) -> str:
    return f"seed {seed}"


class ExperimentPlan:
    """The runs and comparisons of one build, over the data and run store of that build."""

    def __init__(
        self,
        settings: PlanSettings,
        data_root: str | Path,
        runs_dir: str | Path = "runs",
        cache_dir: str | Path = "data/cache",
        *,
        verbose="silent",
    ):
        self.settings = settings
        self.data_root = str(data_root)
        self.runs_dir = Path(runs_dir)
        self.cache_dir = Path(cache_dir)
        self.verbose = verbose
        self.runs: dict[str, PlannedRun] = {}
        self.arms: dict[str, dict[int, str]] = {}  # arm -> {seed: run name}
        self.comparisons_planned: dict[str, PlannedComparison] = {}
        self._trained: dict[str, object] = {}
        self._compared: dict[str, object] = {}
        self._lay_out()

    # --- construction ----------------------------------------------------------------------
    def run_name(self, arm: str, seed: int) -> str:
        """The name of seed ``seed`` of arm ``arm``: the arm's own name for the plan's seed, ``seed
        N`` for the baseline's other seeds, else ``ARM, seed N``."""
        if int(seed) == int(self.settings.seed):
            return arm
        return _seed_name(int(seed)) if arm == "baseline" else f"{arm}, seed {int(seed)}"

    def _add(self, name, group, label, config, chapters, dataset="target", source=None, *, seeds=None) -> None:
        """Add the arm ``name``: one run per seed of ``seeds`` (default: the plan's seeds), with
        common random numbers: seed s of every arm draws the same data order, augmentation and
        dropout streams and is validated on the same studies.  ``source`` names the arm whose run
        of the same seed initialises each run (its only run, if it has one seed)."""
        seeds = self.settings.arm_seeds if seeds is None else tuple(int(x) for x in seeds)
        self.arms[name] = {}
        for seed in seeds:
            run = self.run_name(name, seed)
            source_run = None
            if source is not None:
                source_seeds = self.arms[source]
                source_run = source_seeds.get(seed, source_seeds[next(iter(source_seeds))])
            # The baseline's other seeds keep their group of old ("seeds"): plan.group lists arms.
            run_group = "seeds" if name == "baseline" and run != name else group
            self.runs[run] = PlannedRun(
                run, run_group, label, config.replace(seed=seed), tuple(chapters), dataset, source_run, name
            )
            self.arms[name][seed] = run

    def _compare(self, name, group, a, b, subset="test", labels=None, level="configuration") -> None:
        self.comparisons_planned[name] = PlannedComparison(name, group, a, b, subset, labels, level)

    def _lay_out(self) -> None:
        s = self.settings
        base = s.baseline_config()
        everywhere = ("index", "05_1_baseline", "06_conclusions")
        self._add("baseline", "baseline", "baseline", base, everywhere + ("04_model_development", "08_extensions"))
        # Single runs of one configuration against each other: what training randomness alone does.
        for seed in s.arm_seeds[1:]:
            self._compare(
                f"{_seed_name(seed)} vs {_seed_name(s.seed)}",
                "seeds",
                _seed_name(seed),
                "baseline",
                labels=(_seed_name(seed), _seed_name(s.seed)),  # every seed's run is labelled "baseline"
                level="run",
            )
        for size in sorted({int(x) for x in s.image_sizes}):
            if size != s.image_size:
                name = f"{size} px"
                self._add(
                    name,
                    "image size",
                    name,
                    base.replace(image_size=size),
                    ("index", "05_2_image_size", "06_conclusions"),
                )
                self._compare(f"{size} px vs {s.image_size} px", "image size", name, "baseline")
        if s.regularisation:
            for label, changes in REGULARISATION_VARIANTS.items():
                self._add(
                    label, "regularisation", label, base.replace(**changes), ("05_3_regularisation", "06_conclusions")
                )
                self._compare(f"{label} vs baseline", "regularisation", label, "baseline")
        if s.development:
            for label, changes in DEVELOPMENT_VARIANTS.items():
                self._add(label, "development", label, base.replace(**changes), ("04_model_development",))
                self._compare(f"{label} vs baseline", "development", label, "baseline", subset="validation")
        self._lay_out_transfer(base)
        self._lay_out_multiview()

    def _lay_out_multiview(self) -> None:
        """The multi-view study model: the image network at the multi-view size (the baseline
        itself, or the same network from the image-size sweep) wrapped to read whole studies and
        trained on them, against that image network with its views' probabilities averaged.  Seed
        s of the multi-view model starts from seed s of the image network."""
        s = self.settings
        size = s.multiview_size
        image_run = "baseline" if size == s.image_size else f"{size} px"
        if image_run not in self.arms:
            self._add(image_run, "multi-view", image_run, s.baseline_config(image_size=size), ("08_extensions",))
        config = self.runs[image_run].config.replace(
            model="multiview",
            max_views=s.multiview_max_views,
            learning_rate=s.multiview_learning_rate,
            epochs=s.multiview_epochs or s.epochs,
            # A short fine-tuning from a trained network: the plateau rules may act from the start.
            min_epochs=0,
        )
        self._add("multi-view", "multi-view", "multi-view model", config, ("08_extensions",), source=image_run)
        self._compare(
            "multi-view vs mean of views",
            "multi-view",
            "multi-view",
            image_run,
            labels=("the multi-view model", "the image model with averaged views"),
        )

    @property
    def pretraining(self) -> str:
        """Where the backbones' pretrained weights come from: "source" (the synthetic study-type
        task), "ImageNet", or "weights" (a file)."""
        weights = self.settings.pretrained_weights
        return "source" if not weights else "ImageNet" if weights == "imagenet" else "weights"

    def _lay_out_transfer(self, base) -> None:
        """Per backbone: random initialisation, and pretrained weights frozen or fine-tuned.  Each
        pretrained arm is compared with a random-initialisation arm trained at its own learning
        rate, so that the comparison changes the initial weights only: the frozen arm (its head
        trains at the baseline's rate) against random initialisation at that rate, the fine-tuned
        arm (at ``fine_tune_learning_rate``) against random initialisation at that rate."""
        s = self.settings
        size, epochs = s.backbone_size, s.backbone_cap
        chapters = ("index", "05_4_pretrained", "06_conclusions")
        for backbone in s.backbones:
            name = BACKBONE_NAMES[backbone]
            common = dict(model=backbone, image_size=size, epochs=epochs)
            source = None
            if self.pretraining == "source":
                source = f"{name} source task"
                # One source run, shared by every seed of the arms it initialises.
                self._add(
                    source,
                    "source",
                    source,
                    base.replace(**common, weights=None, fine_tune=True, task="study_type"),
                    ("05_4_pretrained",),
                    dataset="source",
                    seeds=(s.seed,),
                )
            references = {}
            for rate in sorted(
                {base.learning_rate, *([s.fine_tune_learning_rate] if "fine-tuned" in s.backbone_modes else [])},
                reverse=True,
            ):
                config = base.replace(**common, weights=None, fine_tune=True, learning_rate=rate)
                random = f"{name} random init"
                if rate != base.learning_rate:
                    random += f" (learning rate {rate:g})"
                if backbone == "cnn" and size == s.image_size and epochs == s.epochs and rate == base.learning_rate:
                    random = "baseline"  # the ab-initio CNN from random weights at the same budget is the baseline
                elif random not in self.arms:
                    self._add(random, "transfer", random, config, chapters)
                    if size == s.image_size and backbone != "cnn" and rate == base.learning_rate:
                        self._compare(f"{random} vs baseline", "architecture", random, "baseline")
                references[rate] = random
            weights = None if self.pretraining == "source" else s.pretrained_weights
            for mode in s.backbone_modes:
                fine_tune = mode == "fine-tuned"
                label = f"{name} {self.pretraining}, {mode}"
                rate = s.fine_tune_learning_rate if fine_tune else base.learning_rate
                config = base.replace(**common, weights=weights, fine_tune=fine_tune, learning_rate=rate)
                self._add(label, "transfer", label, config, chapters, source=source)
                self._compare(f"{label} vs random init", "transfer", label, references[rate])
            if len(s.backbone_modes) == 2:
                self._compare(
                    f"{name} fine-tuned vs frozen",
                    "transfer modes",
                    f"{name} {self.pretraining}, fine-tuned",
                    f"{name} {self.pretraining}, frozen",
                )

    # --- runs ------------------------------------------------------------------------------
    @cached_property
    def dataset(self):
        from mura_lib.dataset import load_mura

        return load_mura(self.data_root)

    @cached_property
    def store(self):
        from mura_lib.runs import RunStore

        return RunStore(self.runs_dir)

    @cached_property
    def source_dataset(self):
        """The pretraining corpus: a synthetic dataset of its own, from another seed, so that none
        of its images is in the thesis' data; generated once beside the build's data."""
        from mura_lib.dataset import load_mura
        from mura_lib.synthetic import generate_synthetic_mura

        seed = self.settings.seed + SOURCE_SEED_OFFSET
        folder = self.cache_dir.parent / "synthetic" / f"source-scale{self.settings.source_scale}-seed{seed}"
        root = generate_synthetic_mura(
            folder,
            scale=self.settings.source_scale,
            image_size=128,
            seed=seed,
            overwrite=True,
            progress=self.verbose != "silent",
        )
        return load_mura(root)

    def dataset_of(self, name: str):
        return self.source_dataset if self.planned(name).dataset == "source" else self.dataset

    def config(self, name: str):
        """The run's configuration, with the key of the run it is initialised from filled in."""
        planned = self.planned(name)
        if planned.source is None:
            return planned.config
        return planned.config.replace(init_from=self.key(planned.source))

    def key(self, name: str) -> str:
        from mura_lib.training import run_key

        return run_key(self.config(name), self.dataset_of(name).manifest_hash())

    def planned(self, name: str) -> PlannedRun:
        if name == _seed_name(self.settings.seed):
            name = "baseline"
        try:
            return self.runs[name]
        except KeyError:
            raise KeyError(f"The plan has no run {name!r}; it has: {', '.join(self.runs)}") from None

    def run(self, name: str):
        """The stored run ``name``, trained first if the store does not have it yet."""
        planned = self.planned(name)
        if planned.name not in self._trained:
            from mura_lib.training import run_experiment

            if planned.source is not None:
                self.run(planned.source)  # the source run must exist before its weights can be used
            self._trained[planned.name] = run_experiment(
                self.config(planned.name),
                self.dataset_of(planned.name),
                store=self.store,
                cache_dir=self.cache_dir,
                verbose=self.verbose,
                name=self.label(planned.name),
            )
            _note_run_used(planned.name, self._trained[planned.name].key)
        return self._trained[planned.name]

    def group(self, group: str, *, with_baseline: bool = True) -> dict[str, object]:
        """``{label: Run}`` of a group: the plan's seed of each arm of the group, the baseline first
        (the group ``seeds`` lists the baseline's other seeds); of a group the profile switched off
        (:meth:`trains`), the baseline alone."""
        names = [n for n, p in self.runs.items() if p.group == group and (p.name == p.arm or group == "seeds")]
        if not names and group not in {p.group for p in self.runs.values()} and group not in SWITCHED_GROUPS:
            raise KeyError(f"The plan has no group {group!r}; it has: {sorted({p.group for p in self.runs.values()})}")
        runs = {"baseline": self.run("baseline")} if with_baseline else {}
        runs.update({self.runs[n].label: self.run(n) for n in names})
        return runs

    def arm_table(self, group: str) -> pd.DataFrame:
        """What the group ``group`` trains, one row per arm: the settings in which the arm's
        configuration differs from the baseline's (``image_size = 32``), the run whose weights
        it starts from (if any), the data it trains on and its seeds.  The baseline's own row comes first."""
        base = self.runs["baseline"].config
        rows = []
        for arm in ["baseline", *dict.fromkeys(p.arm for p in self.runs.values() if p.group == group)]:
            if arm == "baseline" and group == "seeds":
                continue
            planned = self.runs[self.arms[arm][min(self.arms[arm])]]
            config = planned.config
            changed = {
                name: getattr(config, name)
                for name in config.__dataclass_fields__
                if name not in ("seed", "split_seed") and getattr(config, name) != getattr(base, name)
            }
            rows.append(
                {
                    "arm": planned.label if arm != "baseline" else "baseline",
                    "changes from the baseline": ", ".join(f"{k} = {v}" for k, v in changed.items()) or "none",
                    "starts from": self.runs[planned.source].label if planned.source else "none",
                    "data": "source corpus" if planned.dataset == "source" else "thesis data",
                    "seeds": ", ".join(str(seed) for seed in self.arms[arm]),
                }
            )
        return pd.DataFrame(rows).set_index("arm")

    def trains(self, group: str) -> bool:
        """Whether this plan trains the experiment ``group``: ``False`` for one the profile switched
        off (``regularisation: false``, :data:`SWITCHED_GROUPS`), whose :meth:`group` is the
        baseline alone and whose :meth:`comparisons` are none."""
        setting = SWITCHED_GROUPS.get(group)
        return True if setting is None else bool(getattr(self.settings, setting))

    def arm_runs(self, arm: str) -> dict[int, object]:
        """``{seed: Run}`` of every seed of the arm ``arm``."""
        if arm not in self.arms:
            raise KeyError(f"The plan has no arm {arm!r}; it has: {', '.join(self.arms)}")
        return {seed: self.run(name) for seed, name in self.arms[arm].items()}

    def headline(self):
        """The baseline's overall test metrics with their bootstrap intervals (the row
        ``overall`` of :func:`mura_lib.evaluation.metrics_table`)."""
        from mura_lib.evaluation import metrics_table

        studies = self.run("baseline").study_predictions("test")
        row = metrics_table(studies, n_resamples=self.settings.n_resamples, seed=self.settings.seed).loc["overall"]
        for metric in ("auroc", "kappa"):
            _note_result(
                {
                    "kind": "metric",
                    "name": f"baseline {metric} (seed {self.settings.seed})",
                    "value": float(row[metric]),
                    "low": float(row[f"{metric}_low"]),
                    "high": float(row[f"{metric}_high"]),
                }
            )
        return row

    def seed_runs(self) -> dict[int, object]:
        """``{seed: Run}`` of the baseline's seeds."""
        return self.arm_runs("baseline")

    # --- comparisons -------------------------------------------------------------------------
    def comparison(self, name: str):
        """The comparison ``name``: for two configurations, a
        :class:`mura_lib.configurations.ConfigurationComparison` over every seed of each arm and
        the same test studies, its verdicts adjusted by Holm's procedure over the comparisons of
        its group (the family); for two single runs (``level="run"``), the paired
        :class:`mura_lib.evaluation.Comparison`.  Computed once from the stored runs and kept in
        the run store."""
        if name in self._compared:
            return self._compared[name]
        planned = self.comparisons_planned.get(name)
        if planned is None:
            raise KeyError(f"The plan has no comparison {name!r}; it has: {', '.join(self.comparisons_planned)}")
        if planned.level == "run":
            self._compared[name] = self._run_comparison(planned)
        else:
            self._compared.update(self._family(planned.group))
        return self._compared[name]

    def _names(self, planned: PlannedComparison) -> tuple[str, str]:
        if planned.labels:
            return planned.labels[0], planned.labels[1]
        return self._label(planned.a), self._label(planned.b)

    def _run_comparison(self, planned: PlannedComparison):
        from mura_lib.evaluation import Comparison, compare_paired

        run_a, run_b = self.run(planned.a), self.run(planned.b)
        identity = {
            "a": run_a.key,
            "b": run_b.key,
            "subset": planned.subset,
            "n": self.settings.n_resamples,
            "seed": self.settings.seed,
            "names": [planned.a, planned.b, *(planned.labels or ())],
            "version": 1,
        }
        path = self.runs_dir / "comparisons" / f"{short_hash(identity)}.json"
        if path.exists():
            values = json.loads(path.read_text())
            values.pop("verdict", None)
            values.pop("kappa_verdict", None)
            return Comparison(**values)
        name_a, name_b = self._names(planned)
        result = compare_paired(
            run_a.study_predictions(planned.subset),
            run_b.study_predictions(planned.subset),
            n_resamples=self.settings.n_resamples,
            seed=self.settings.seed,
            name_a=name_a,
            name_b=name_b,
        )
        atomic_write_text(path, json.dumps(result.to_dict(), indent=1))
        return result

    def _family(self, group: str) -> dict:
        """Every configuration comparison of ``group``, decided together (Holm's procedure over
        the family), cached in the run store under the keys of all their runs."""
        from mura_lib.config import library_source_hash
        from mura_lib.configurations import ConfigurationComparison, compare_configurations, holm

        members = [c for c in self.comparisons_planned.values() if c.group == group and c.level == "configuration"]
        arms = {c.name: (self.arm_runs(c.a), self.arm_runs(c.b)) for c in members}
        identity = {
            "comparisons": {
                c.name: [
                    c.subset,
                    self._names(c),
                    {str(s): r.key for s, r in arms[c.name][0].items()},
                    {str(s): r.key for s, r in arms[c.name][1].items()},
                ]
                for c in members
            },
            "n": self.settings.n_resamples,
            "seed": self.settings.seed,
            # The statistics' own source: a change to the method recomputes the cached results.
            "method": library_source_hash(("mura_lib.configurations", "mura_lib.evaluation")),
            "version": 2,
        }
        path = self.runs_dir / "comparisons" / f"{short_hash(identity)}.json"
        if path.exists():
            stored = json.loads(path.read_text())
            results = {name: ConfigurationComparison.from_dict(values) for name, values in stored.items()}
        else:
            computed = []
            for c in members:
                runs_a, runs_b = arms[c.name]
                name_a, name_b = self._names(c)
                computed.append(
                    compare_configurations(
                        {seed: run.study_predictions(c.subset) for seed, run in runs_a.items()},
                        {seed: run.study_predictions(c.subset) for seed, run in runs_b.items()},
                        n_resamples=self.settings.n_resamples,
                        seed=self.settings.seed,
                        name_a=name_a,
                        name_b=name_b,
                    )
                )
            results = dict(zip([c.name for c in members], holm(computed)))
            atomic_write_text(path, json.dumps({n: r.to_dict() for n, r in results.items()}, indent=1))
        for c in members:
            runs_a, runs_b = arms[c.name]
            _note_result(
                {
                    "kind": "comparison",
                    "name": c.name,
                    "group": c.group,
                    "a": c.a,
                    "b": c.b,
                    "subset": c.subset,
                    "runs_a": {str(s): r.key for s, r in runs_a.items()},
                    "runs_b": {str(s): r.key for s, r in runs_b.items()},
                    # The bootstrap draws stay in the run store's copy; the manifest keeps the results.
                    **{k: v for k, v in results[c.name].to_dict().items() if not k.endswith("_draws")},
                }
            )
        return results

    def _label(self, name: str) -> str:
        return self.runs[name].label if name in self.runs else name

    def comparisons(self, group: str) -> dict[str, object]:
        """``{name: Comparison}`` of one group, in plan order."""
        return {n: self.comparison(n) for n, c in self.comparisons_planned.items() if c.group == group}

    def seed_summary(self, metric: str = "auroc") -> dict:
        """Mean, SD and the SD's interval over the seeds (:func:`mura_lib.evaluation.seed_spread`)."""
        from mura_lib.evaluation import seed_spread

        values = [run.metrics[metric] for run in self.seed_runs().values()]
        if len(values) < 2:
            return {
                "n": len(values),
                "mean": values[0] if values else float("nan"),
                "sd": float("nan"),
                "sd_low": float("nan"),
                "sd_high": float("nan"),
            }
        return seed_spread(values)

    # --- description ----------------------------------------------------------------------------
    def describe(self, *, with_keys: bool = True) -> pd.DataFrame:
        """One row per distinct run: name, group, key, chapters, whether stored, a rough cost."""
        rows = []
        train_images = None
        for planned in self.runs.values():
            row = {
                "run": planned.name,
                "arm": planned.arm,
                "group": planned.group,
                "model": planned.config.model,
                "image size": planned.config.image_size,
                "seed": planned.config.seed,
                "epoch cap": planned.config.epochs,
                "chapters": ", ".join(planned.chapters),
            }
            if with_keys:
                if planned.source is not None and not self.store.is_complete(self.key(planned.source)):
                    key = "(after " + planned.source + ")"
                else:
                    key = self.key(planned.name)
                row["key"] = key
                row["stored"] = not key.startswith("(") and self.store.is_complete(key)
                if train_images is None:
                    train_images = (
                        int((self.dataset.images["split"] == "train").sum())
                        if "split" in self.dataset.images
                        else len(self.dataset.images)
                    )
                # Image-epochs at 64 px: the cost of a convolutional network grows with the pixels.
                row["cost (image-epochs at 64 px)"] = int(
                    train_images * planned.config.epochs * (planned.config.image_size / 64) ** 2
                )
            rows.append(row)
        return pd.DataFrame(rows)

    def label(self, name: str) -> str:
        """How run ``name`` is labelled in the run store: ``"no L2 (48 px, seed 0)"``."""
        config = self.runs[name].config
        return f"{name} ({config.image_size} px, seed {config.seed})"

    def job_stages(self) -> list[tuple[Path, list]]:
        """``[(data root, [(label, config), ...]), ...]`` in the order an executor must train them:
        the source runs, then the runs that need no other run, then those initialised from a source
        run (their configurations carry its key).  Each run is named by its :meth:`label`, as the
        chapters name it in the run store."""
        source = [(self.label(p.name), p.config) for p in self.runs.values() if p.dataset == "source"]
        stages = []
        if source:
            stages.append((Path(self.source_dataset.root), source))
        stages.append((Path(self.data_root), self.jobs()))
        dependent = [p.name for p in self.runs.values() if p.source is not None]
        if dependent:
            stages.append((Path(self.data_root), [(self.label(n), self.config(n)) for n in dependent]))
        return stages

    def jobs(self) -> list[tuple[str, "ExperimentConfig"]]:
        """``(label, config)`` of every run on the thesis' data that needs no other run first."""
        runs = self.runs.values()
        return [(self.label(p.name), p.config) for p in runs if p.dataset == "target" and p.source is None]


def settings_from_parameters(parameters: dict, *, source: str) -> dict:
    """The experiment settings among a profile's parameters, checked against :class:`PlanSettings`."""
    return PlanSettings.from_dict(dict(parameters), source=source).to_dict()
