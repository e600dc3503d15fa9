"""The thesis' experiments, defined once so that every chapter asking for the same experiment
(the abstract, a results section, the conclusions) gets the same run from the store."""

from __future__ import annotations

from pathlib import Path

from .dataset import MuraDataset, load_mura
from .runs import Run, RunStore
from .training import ExperimentConfig, run_experiment


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
