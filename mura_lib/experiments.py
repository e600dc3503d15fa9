"""The thesis' experiments, defined once so that every chapter asking for the same experiment
(the abstract, a results section, the conclusions) gets the same run from the store."""

from __future__ import annotations

from pathlib import Path

from .config import ExperimentConfig
from .dataset import MuraDataset, load_mura

# How the chapters name the backbones, and the seed offset of the pretraining corpus (drawn from
# another seed, so none of its images is in the thesis' data): defined once, in the plan.
from .plan import BACKBONE_NAMES, SOURCE_SEED_OFFSET  # noqa: F401 (re-exported)
from .runs import Run, RunStore
from .training import run_experiment

# The pretraining corpus' size relative to MURA: about 3,000 training images.
SOURCE_SCALE = 0.08


class Thesis:
    """The data and run store of one build, with the experiments of every chapter.

    Built from a chapter's parameters: ``Thesis(data_root, runs_dir, cache_dir, image_size=...,
    epochs=..., seed=...)``.
    """

    def __init__(
        self,
        data_root: str,
        runs_dir: str = "runs",
        cache_dir: str = "data/cache",
        *,
        image_size: int = 64,
        epochs: int = 10,
        seed: int = 0,
        verbose="auto",
        source_root: str | None = None,
    ):
        self.data_root = data_root
        self.store = RunStore(runs_dir)
        self.cache_dir = Path(cache_dir)
        # Where source corpora for pretraining go: beside the build's synthetic data by default.
        self.source_root = Path(source_root) if source_root else self.cache_dir.parent / "synthetic"
        self._source_datasets: dict[tuple, MuraDataset] = {}
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
        return ExperimentConfig(model="cnn", image_size=self.image_size, epochs=self.epochs, seed=self.seed).replace(
            **changes
        )

    def run(self, config: ExperimentConfig, name: str | None = None, dataset: MuraDataset | None = None) -> Run:
        """The run of ``config`` on the thesis' data (or on ``dataset``), trained if not stored."""
        return run_experiment(
            config, dataset or self.dataset, store=self.store, cache_dir=self.cache_dir, verbose=self.verbose, name=name
        )

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

    def pretrained_config(
        self,
        name: str,
        *,
        fine_tune: bool,
        image_size: int | None = None,
        epochs: int | None = None,
        weights: str | None = "imagenet",
        learning_rate: float | None = None,
        init_from: str | None = None,
    ):
        """A ``keras.applications`` backbone with a new sigmoid head, frozen or fine-tuned.

        Fine-tuning pretrained weights (ImageNet's, a weights file's, or those of the run
        ``init_from``) uses the paper's learning rate of 1e-4 unless one is given; every other
        case uses the baseline's.
        """
        if learning_rate is None:
            learning_rate = 1e-4 if (fine_tune and (weights or init_from)) else self.baseline_config().learning_rate
        return self.baseline_config(
            model=name,
            image_size=image_size or self.image_size,
            epochs=epochs or self.epochs,
            weights=weights,
            fine_tune=fine_tune,
            learning_rate=learning_rate,
            init_from=init_from,
        )

    def pretrained_variants(
        self,
        names=("vgg16", "densenet169", "resnet50", "efficientnetb0"),
        *,
        modes=("frozen", "fine-tuned"),
        image_size: int | None = None,
        epochs: int | None = None,
        weights: str | None = "imagenet",
    ) -> dict[tuple[str, str], Run]:
        """Every backbone in every mode: ``{(name, "frozen" | "fine-tuned"): Run}``."""
        runs = {}
        for name in names:
            for mode in modes:
                if mode not in ("frozen", "fine-tuned"):
                    raise ValueError(f"mode must be 'frozen' or 'fine-tuned', got {mode!r}")
                config = self.pretrained_config(
                    name, fine_tune=mode == "fine-tuned", image_size=image_size, epochs=epochs, weights=weights
                )
                runs[(name, mode)] = self.run(config, name=f"{name} {mode} {config.image_size}px weights={weights}")
        return runs

    # --- pretraining on a source task ------------------------------------------------------

    def source_dataset(
        self, scale: float = SOURCE_SCALE, seed: int | None = None, image_size: int | None = None
    ) -> MuraDataset:
        """The source corpus for pretraining: a synthetic dataset of its own, generated (once)
        under ``source_root`` as ``source-image_size<N>-scale<S>-seed<K>/MURA-v1.1``.

        ``seed`` defaults to the thesis' seed plus :data:`SOURCE_SEED_OFFSET`, ``image_size``
        (the size the radiographs are drawn at) to that of the thesis' synthetic data (128 on
        real MURA).  A seed equal to that of the thesis' own synthetic data is refused: the two
        corpora would share their images.  Only the corpus' ``train`` split trains the source
        model; its ``valid`` split measures it.
        """
        from .synthetic import dataset_spec, generate_synthetic_mura

        target = dataset_spec(self.data_root) if self.data_root else None
        seed = self.seed + SOURCE_SEED_OFFSET if seed is None else int(seed)
        image_size = image_size or (target["image_size"] if target else 128)
        if target and int(target["seed"]) == seed:
            raise ValueError(
                f"The source corpus' seed {seed} is the seed of the thesis' synthetic data in {self.data_root}: "
                "the source corpus would repeat its images. Choose another seed."
            )
        key = (float(scale), seed, int(image_size))
        if key not in self._source_datasets:
            folder = self.source_root / f"source-image_size{image_size}-scale{scale}-seed{seed}"
            root = generate_synthetic_mura(
                folder, scale=scale, image_size=image_size, seed=seed, overwrite=True, progress=self.verbose != "silent"
            )
            self._source_datasets[key] = load_mura(root)
        return self._source_datasets[key]

    def source_config(
        self, name: str, *, image_size: int | None = None, epochs: int | None = None, learning_rate: float | None = None
    ) -> ExperimentConfig:
        """Backbone ``name`` trained from random weights to tell the seven study types apart."""
        return self.pretrained_config(
            name, fine_tune=True, image_size=image_size, epochs=epochs, weights=None, learning_rate=learning_rate
        ).replace(task="study_type")

    def pretrain(
        self,
        name: str,
        image_size: int | None = None,
        epochs: int | None = None,
        *,
        scale: float = SOURCE_SCALE,
        seed: int | None = None,
        corpus_image_size: int | None = None,
    ) -> Run:
        """The source run: backbone ``name`` pretrained on the study-type task of the source
        corpus (:meth:`source_dataset`); its key initialises the transfer variants."""
        dataset = self.source_dataset(scale=scale, seed=seed, image_size=corpus_image_size)
        config = self.source_config(name, image_size=image_size, epochs=epochs)
        return self.run(config, name=f"{name} study-type source {config.image_size}px", dataset=dataset)

    def transfer_variants(
        self,
        names=("vgg16", "efficientnetb0"),
        image_size: int | None = None,
        epochs: int | None = None,
        *,
        pretrain_epochs: int | None = None,
        weights: str | None = None,
        scale: float = SOURCE_SCALE,
        seed: int | None = None,
        corpus_image_size: int | None = None,
    ) -> dict[str, dict[str, Run]]:
        """For each backbone, the abnormality model from random initial weights (all layers
        trained) beside the same model initialised from its study-type source run, frozen and
        fine-tuned: ``{name: {"random init": Run, "source, frozen": Run, "source, fine-tuned":
        Run}}``, all at the same image size and epoch budget.

        With ``weights`` ("imagenet" or a weights file) each backbone also gets "ImageNet,
        frozen" and "ImageNet, fine-tuned" ("weights, ..." for a file).  ``pretrain_epochs``
        (default ``epochs``) is the source runs' budget.
        """
        runs = {}
        for name in names:
            source = self.pretrain(
                name, image_size, pretrain_epochs or epochs, scale=scale, seed=seed, corpus_image_size=corpus_image_size
            )
            configs = {
                "random init": self.pretrained_config(
                    name, fine_tune=True, image_size=image_size, epochs=epochs, weights=None
                ),
                "source, frozen": self.pretrained_config(
                    name, fine_tune=False, image_size=image_size, epochs=epochs, weights=None, init_from=source.key
                ),
                "source, fine-tuned": self.pretrained_config(
                    name, fine_tune=True, image_size=image_size, epochs=epochs, weights=None, init_from=source.key
                ),
            }
            if weights:
                origin = "ImageNet" if weights == "imagenet" else "weights"
                for mode in ("frozen", "fine-tuned"):
                    configs[f"{origin}, {mode}"] = self.pretrained_config(
                        name, fine_tune=mode == "fine-tuned", image_size=image_size, epochs=epochs, weights=weights
                    )
            runs[name] = {
                label: self.run(config, name=f"{name} {label} {config.image_size}px")
                for label, config in configs.items()
            }
        return runs
