"""One training run's configuration and its key.

This module imports nothing of the project, so that anything (the plan, the executors, the
run store, a worker on another machine) can describe a run without importing Keras or the
training code.  ``run_key`` is a pure function of the configuration and of the facts that the
caller measures (the data's manifest hash, the library's source hash, the backend and the
numerical settings in effect): :func:`mura_lib.training.run_key` gathers those facts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageModel:
    """An image network a run can train: the name the thesis prints, and for a keras.applications
    backbone its class, the module whose ``preprocess_input`` it takes, and its smallest input."""

    display_name: str
    constructor: str | None = None  # None: the ab-initio CNN (mura_lib.models.build_cnn)
    preprocess_module: str | None = None
    smallest_input: int = 32


# Every image network, in one place: a new backbone is one line here (mura_lib.models builds it,
# the plan and the chapters print its name, the schema accepts it). The multi-view study model
# wraps the image network of another run (``init_from``).
IMAGE_MODELS = {
    "cnn": ImageModel("ab-initio CNN"),
    "vgg16": ImageModel("VGG16", "VGG16", "vgg16"),
    "densenet169": ImageModel("DenseNet-169", "DenseNet169", "densenet"),
    "resnet50": ImageModel("ResNet-50", "ResNet50", "resnet"),
    "efficientnetb0": ImageModel("EfficientNet-B0", "EfficientNetB0", "efficientnet"),
}
MODEL_NAMES = (*IMAGE_MODELS, "multiview")
# The tasks a model can be trained for (mura_lib.models.TASKS names each task's head layer).
TASK_NAMES = ("abnormality", "study_type")
# How an image is brought to a square (mura_lib.preprocess.resize_image).
POLICIES = ("pad", "stretch", "crop")
# How a run ends (ExperimentConfig.schedule).
SCHEDULES = ("plateau", "cosine")

# The modules whose source shapes a run's result: a change to any of them retrains.  Plotting,
# the statistics of comparisons and the book pipeline are deliberately left out: restyling a
# figure never retrains.  tests/test_training.py follows the training code's imports and fails
# if one of them is neither listed here nor exempted with its reason.
RESULT_MODULES = (
    "mura_lib.config",
    "mura_lib.dataset",
    "mura_lib.preprocess",
    "mura_lib.inputs",
    "mura_lib.models",
    "mura_lib.scoring",
    "mura_lib.callbacks",
    "mura_lib.multiview",
    "mura_lib.training",
)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one training run (one frozen object per experiment)."""

    model: str = "cnn"
    image_size: int = 64
    policy: str = "pad"
    depth: int = 4
    width: int = 32
    dropout: float = 0.3
    l2: float = 1e-4
    batch_norm: bool = True
    augment: bool = True
    weights: str | None = None
    fine_tune: bool = False
    epochs: int = 20  # the fixed budget ("cosine" schedule), or the cap of the plateau rules
    batch_size: int = 32
    learning_rate: float = 1e-3
    # Plateau rules watch the study-level validation AUROC, smoothed over epochs (an exponential
    # moving average with weight ``smoothing`` on the newest epoch), and act only after
    # ``min_epochs``: a small validation subset gives noisy per-epoch values.
    min_epochs: int = 8
    lr_patience: int = 3
    early_stopping_patience: int = 6
    smoothing: float = 0.5
    # How a run ends.  "plateau": the rules above cut the learning rate and stop training, and
    # the weights of the best smoothed validation epoch are kept.  "cosine": a fixed budget of
    # ``epochs`` epochs along which the learning rate decays on a cosine to zero, step by step,
    # with no stopping and no choice of epoch; the weights kept are the average of the last
    # ``average_epochs`` epochs' weights (1: the last epoch's).  The plateau rules' settings
    # are then unused.
    schedule: str = "cosine"
    average_epochs: int = 1
    class_weighting: str = "paper"
    validation_fraction: float = 0.1
    precision: str = "auto"
    seed: int = 0
    # The seed of the patient-level split into training and validation subsets; None: ``seed``.
    # An experiment plan fixes it across seeds, so that every seed of every configuration is
    # validated on the same studies (common random numbers) and only training randomness varies.
    split_seed: int | None = None
    # "abnormality" (a sigmoid unit: is the image abnormal?) or "study_type" (a softmax over the
    # seven study types, a source task for pretraining backbones).
    task: str = "abnormality"
    # The key of a finished run in the same run store whose backbone weights initialise this
    # model's backbone (its head starts afresh); ``fine_tune`` decides whether they then train.
    init_from: str | None = None
    # The multi-view model: views per study it reads (a study's later views are dropped).
    max_views: int = 4

    def __post_init__(self):
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {MODEL_NAMES}, got {self.model!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 1 <= self.average_epochs <= self.epochs:
            raise ValueError(f"average_epochs must be between 1 and epochs ({self.epochs}), got {self.average_epochs}")
        if self.average_epochs > 1 and self.schedule != "cosine":
            raise ValueError("average_epochs > 1 needs schedule 'cosine': the plateau rules keep their best epoch")
        if self.class_weighting not in ("paper", "none"):
            raise ValueError(f"class_weighting must be 'paper' or 'none', got {self.class_weighting!r}")
        for name in ("image_size", "epochs", "batch_size", "lr_patience", "early_stopping_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.min_epochs < 0:
            raise ValueError(f"min_epochs must be zero or positive, got {self.min_epochs}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.task not in TASK_NAMES:
            raise ValueError(f"task must be one of {TASK_NAMES}, got {self.task!r}")
        if self.split_seed is not None and (not isinstance(self.split_seed, int) or self.split_seed < 0):
            raise ValueError(f"split_seed must be None or a non-negative integer, got {self.split_seed!r}")
        if self.max_views < 1:
            raise ValueError(f"max_views must be a positive integer, got {self.max_views}")
        if self.model == "multiview" and self.task != "abnormality":
            raise ValueError(f"model 'multiview' answers the abnormality task, got task {self.task!r}")
        if self.init_from is not None:
            if not isinstance(self.init_from, str) or not re.fullmatch(r"[0-9a-f]{16}", self.init_from):
                raise ValueError(
                    f"init_from must be the 16-character key of a finished run (e.g. run.key), got {self.init_from!r}"
                )
            if self.weights is not None:
                raise ValueError(
                    f"init_from ({self.init_from}) and weights ({self.weights!r}) both initialise the backbone: "
                    "give only one of them."
                )

    def replace(self, **changes) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown experiment settings: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def module_path(name: str) -> Path:
    """The source file of the project module ``name`` (``mura_lib.x`` or ``mura_lib.x.y``),
    found without importing it; a module that moved or vanished is an error, never skipped."""
    parts = name.split(".")
    if parts[0] != "mura_lib":
        raise ValueError(f"{name!r} is not a module of mura_lib")
    base = Path(__file__).parent.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"RESULT_MODULES names {name}, which has no source file at {base}.py: update the list.")


def library_source_hash(modules=RESULT_MODULES) -> str:
    """A hash of the source of the modules that shape a run's result."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode())
        digest.update(module_path(name).read_bytes())
    return digest.hexdigest()[:16]


def run_key(
    config: ExperimentConfig, *, data_hash: str, library: str, backend: str, precision: str, numerics: dict
) -> str:
    """The 16-character key of a run: a hash of everything that determines its result."""
    payload = {
        "config": config.to_dict() | {"precision": precision},
        "library": library,
        "data": data_hash,
        "backend": backend,
        "numerics": numerics,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
