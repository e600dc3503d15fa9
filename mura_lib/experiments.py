"""The thesis' experiments, defined once so that every chapter asking for the same experiment
(the abstract, a results section, the conclusions) gets the same run from the store."""

from __future__ import annotations

from pathlib import Path

from .dataset import MuraDataset, load_mura
from .runs import Run, RunStore
from .training import ExperimentConfig, run_experiment

# How the chapters name the backbones of mura_lib.models.BACKBONES.
BACKBONE_NAMES = {"vgg16": "VGG16", "densenet169": "DenseNet-169", "resnet50": "ResNet-50", "efficientnetb0": "EfficientNet-B0"}


class Thesis:
    """The data and run store of one build, with the experiments of every chapter.

    Built from a chapter's parameters: ``Thesis(data_root, runs_dir, cache_dir, image_size=...,
    epochs=..., seed=...)``.
    """

    def __init__(self, data_root: str, runs_dir: str = "runs", cache_dir: str = "data/cache", *,
                 image_size: int = 64, epochs: int = 10, seed: int = 0, verbose="auto"):
        self.data_root = data_root
        self.store = RunStore(runs_dir)
        self.cache_dir = Path(cache_dir)
        self.image_size = image_size
        self.epochs = epochs
        self.seed = seed
        self.verbose = verbose
        self._dataset: MuraDataset | None = None

    @property
    def dataset(self) -> MuraDataset:
        if self._dataset is None:
            self._dataset = load_mura(self.data_root)
        return self._dataset

    def baseline_config(self, **changes) -> ExperimentConfig:
        """The ab-initio CNN with the thesis' default settings."""
        return ExperimentConfig(model="cnn", image_size=self.image_size, epochs=self.epochs, seed=self.seed).replace(**changes)

    def run(self, config: ExperimentConfig, name: str | None = None) -> Run:
        return run_experiment(config, self.dataset, store=self.store, cache_dir=self.cache_dir, verbose=self.verbose, name=name)

    def baseline(self, seed: int | None = None) -> Run:
        config = self.baseline_config() if seed is None else self.baseline_config(seed=seed)
        return self.run(config, name=f"baseline seed {config.seed}")

    # --- experiments of the results chapters (shared with the conclusions) -------------------

    def seeds(self, seeds=(0,)) -> list[Run]:
        """The baseline trained once per seed (seed ``self.seed`` is the baseline run itself)."""
        return [self.baseline(seed=int(s)) for s in seeds]

    def image_size_sweep(self, sizes=(32, 64, 96)) -> dict[int, Run]:
        """The baseline at several input sizes; the size ``self.image_size`` is the baseline."""
        runs = {}
        for size in sorted({int(s) for s in sizes}):
            config = self.baseline_config(image_size=size)
            runs[size] = self.run(config, name=f"baseline {size}px seed {config.seed}")
        return runs

    REGULARISATION_VARIANTS = {
        "baseline": {},
        "no dropout": {"dropout": 0.0},
        "no L2": {"l2": 0.0},
        "no augmentation": {"augment": False},
        "no batch normalisation": {"batch_norm": False},
    }

    def regularisation_variants(self) -> dict[str, Run]:
        """The baseline and four variants, each without one of its regularisers."""
        runs = {}
        for label, changes in self.REGULARISATION_VARIANTS.items():
            if not changes:
                runs[label] = self.baseline()
            else:
                runs[label] = self.run(self.baseline_config(**changes), name=f"baseline {label} seed {self.seed}")
        return runs

    def pretrained_config(self, name: str, *, fine_tune: bool, image_size: int | None = None,
                          epochs: int | None = None, weights: str | None = "imagenet",
                          learning_rate: float | None = None):
        """A ``keras.applications`` backbone with a new sigmoid head, frozen or fine-tuned.

        Fine-tuning ImageNet weights uses the paper's learning rate of 1e-4 unless one is given;
        every other case uses the baseline's.
        """
        if learning_rate is None:
            learning_rate = 1e-4 if (fine_tune and weights) else self.baseline_config().learning_rate
        return self.baseline_config(
            model=name,
            image_size=image_size or self.image_size,
            epochs=epochs or self.epochs,
            weights=weights,
            fine_tune=fine_tune,
            learning_rate=learning_rate,
        )

    def pretrained_variants(self, names=("vgg16", "densenet169", "resnet50", "efficientnetb0"), *,
                            modes=("frozen", "fine-tuned"), image_size: int | None = None,
                            epochs: int | None = None, weights: str | None = "imagenet") -> dict[tuple[str, str], Run]:
        """Every backbone in every mode: ``{(name, "frozen" | "fine-tuned"): Run}``."""
        runs = {}
        for name in names:
            for mode in modes:
                if mode not in ("frozen", "fine-tuned"):
                    raise ValueError(f"mode must be 'frozen' or 'fine-tuned', got {mode!r}")
                config = self.pretrained_config(name, fine_tune=mode == "fine-tuned", image_size=image_size,
                                                epochs=epochs, weights=weights)
                runs[(name, mode)] = self.run(config, name=f"{name} {mode} {config.image_size}px weights={weights}")
        return runs
