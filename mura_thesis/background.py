"""Figures and tables that explain the background, drawn from code.

The Background chapter checks its claims by short computations: that a network with linear
activations collapses into one linear layer, that a hand-written backward pass agrees with finite
differences, what a convolution does to a radiograph, how sensitivity, AUROC, kappa and their
bootstrap intervals come out on simulated scores, how polynomials under- and over-fit, and where
VGG16 keeps its parameters.  Each computation is a function of a seed (or of its inputs) here; the
numbers the chapter quotes come back from the ``*_numbers`` functions as a dictionary keyed by the
names under which the chapter glues them, and each figure comes back as a matplotlib Figure.

The figures are built with :class:`matplotlib.figure.Figure` rather than through ``pyplot``: they
are not registered as open figures, so nothing has to close them after they are shown or glued.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import ndimage, stats
from sklearn import datasets, metrics

from .figures import FIGURE_WIDTH

# ----------------------------------------------------------------------------------------------
# Neural networks: structure and activation functions


def network_diagram(layer_sizes: Sequence[int] = (4, 5, 3, 1)) -> Figure:
    """A fully connected network drawn as units (circles) and weights (lines), layer by layer.

    The input layer is blue, hidden layers orange, the output layer green; every layer is named
    below its units, and the weights and biases between two layers are named above them.
    """
    if len(layer_sizes) < 2 or min(layer_sizes) < 1:
        raise ValueError(f"a network needs at least two layers of at least one unit each, got {list(layer_sizes)}")
    last = len(layer_sizes) - 1
    kinds = ["input" if column == 0 else "output" if column == last else "hidden" for column in range(last + 1)]
    layer_names = [f"{kind} layer\n$a_{column}$" for column, kind in enumerate(kinds)]
    top = (max(layer_sizes) - 1) / 2
    fig = Figure(figsize=(FIGURE_WIDTH, 3.4))
    ax = fig.subplots()
    positions = [[(column, (size - 1) / 2 - row) for row in range(size)] for column, size in enumerate(layer_sizes)]
    for left, right in zip(positions[:-1], positions[1:]):
        for x0, y0 in left:
            for x1, y1 in right:
                ax.plot([x0, x1], [y0, y1], color="0.6", linewidth=0.8, zorder=1)
    for column, layer in enumerate(positions):
        colour = "C0" if column == 0 else ("C2" if column == last else "C1")
        for x, y in layer:
            ax.scatter(x, y, s=520, color=colour, edgecolor="black", linewidth=0.8, zorder=2)
        ax.text(column, -top - 0.75, layer_names[column], ha="center", va="top", fontsize=10)
    for column in range(1, len(layer_sizes)):
        ax.text(column - 0.5, top + 0.55, f"$\\mathbf{{W}}_{column}, b_{column}$", ha="center", fontsize=10)
    ax.set_xlim(-0.5, len(layer_sizes) - 0.5)
    ax.set_ylim(-top - 1.9, top + 0.9)
    ax.axis("off")
    return fig


def random_network(widths: Sequence[int], rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases of a fully connected network with the given layer widths, input first.

    The weights into a layer of ``n_in`` inputs are drawn with standard deviation ``1 / sqrt(n_in)``
    (all weight matrices first), then the biases with standard deviation 1.
    """
    weights = [rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)) for n_in, n_out in zip(widths[:-1], widths[1:])]
    biases = [rng.normal(0, 1, n_out) for n_out in widths[1:]]
    return weights, biases


def relu(x: np.ndarray) -> np.ndarray:
    """The rectified linear unit, ``max(0, x)`` element by element."""
    return np.maximum(x, 0)


def forward(
    inputs: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activation: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """The forward pass, one input vector per row: ``a @ W + b`` layer by layer.

    ``activation`` is applied after every hidden layer (the identity when it is None); the output
    layer stays linear.
    """
    output = inputs
    for depth, (W, b) in enumerate(zip(weights, biases)):
        output = output @ W + b
        if activation is not None and depth < len(weights) - 1:
            output = activation(output)
    return output


def collapse(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The single linear layer ``(W', b')`` that a network with identity activations amounts to:
    ``W' = W_1 W_2 ... W_L`` and ``b'`` the biases passed on through the later layers."""
    W_collapsed = np.linalg.multi_dot(weights) if len(weights) > 1 else weights[0]
    b_collapsed = biases[0]
    for W, b in zip(weights[1:], biases[1:]):
        b_collapsed = b_collapsed @ W + b
    return W_collapsed, b_collapsed


def unexplained_variance(inputs: np.ndarray, outputs: np.ndarray) -> float:
    """The fraction of the variance of ``outputs`` that the best affine map of ``inputs``, fitted by
    least squares, leaves unexplained (0: the outputs are an affine function of the inputs)."""
    design = np.column_stack([inputs, np.ones(len(inputs))])
    coefficients, *_ = np.linalg.lstsq(design, outputs, rcond=None)
    residual = outputs - design @ coefficients
    return float((residual**2).sum() / ((outputs - outputs.mean()) ** 2).sum())


def activation_functions(other_logits: Sequence[float] = (0.0, 1.0)) -> Figure:
    """Three panels: (a) the ReLU, (b) the sigmoid beside tanh, (c) the softmax of ``(x, *other_logits)``
    as its first component ``x`` varies."""
    x = np.linspace(-6, 6, 601)
    fig = Figure(figsize=(FIGURE_WIDTH, 2.6))
    axes = fig.subplots(1, 3, sharex=True)
    axes[0].plot(x, relu(x), color="C0")
    axes[0].set_title("(a) ReLU")
    axes[0].set_ylabel("activation $f(x)$")
    axes[1].plot(x, 1 / (1 + np.exp(-x)), color="C1", label=r"$\sigma(x)$")
    axes[1].plot(x, np.tanh(x), color="C1", linestyle="--", label=r"$\tanh(x)$")
    axes[1].axhline(0, color="0.5", linewidth=0.6)
    axes[1].set_title("(b) sigmoid and tanh")
    axes[1].legend(loc="upper left", fontsize=8)
    others = np.asarray(other_logits, dtype=float)
    stacked = np.column_stack([x, *(np.full_like(x, value) for value in others)])
    probabilities = np.exp(stacked) / np.exp(stacked).sum(axis=1, keepdims=True)
    for j, style in zip(range(stacked.shape[1]), ["-", "--", ":", "-."]):
        axes[2].plot(x, probabilities[:, j], color="C2", linestyle=style, label=f"$w_{j + 1}$")
    fixed = ", ".join(f"{value:g}" for value in others)
    axes[2].set_title(f"(c) softmax, $v = (x, {fixed})$")
    axes[2].set_ylim(-0.02, 1.02)
    axes[2].legend(loc="center left", fontsize=8)
    for ax in axes:
        ax.set_xlabel("pre-activation $x$")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Training: a one-hidden-layer network on two half-moons, with its backward pass written out

# The three update rules compared, all from the same initial parameters.
OPTIMISERS = {
    "gradient descent, full batch": dict(batch_size=None, adam=False, learning_rate=0.5),
    "stochastic gradient descent, batches of 16": dict(batch_size=16, adam=False, learning_rate=0.5),
    "Adam, batches of 16": dict(batch_size=16, adam=True, learning_rate=0.01),
}


def moons_network(parameters: Sequence[np.ndarray], X: np.ndarray) -> np.ndarray:
    """Probability of class 1 from a network 2 inputs -> tanh hidden layer -> 1 sigmoid unit;
    ``parameters`` are ``[W1 (2 x h), b1 (h), w2 (h), b2 (1)]``."""
    return 1 / (1 + np.exp(-(np.tanh(X @ parameters[0] + parameters[1]) @ parameters[2] + parameters[3])))


def cross_entropy(p: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of predicted probabilities ``p`` for labels ``y``."""
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def numerical_gradient(
    loss: Callable[[list[np.ndarray]], float], parameters: Sequence[np.ndarray], epsilon: float = 1e-6
) -> list[np.ndarray]:
    """Central finite differences ``(L(θ + ε e_j) - L(θ - ε e_j)) / 2ε`` for every parameter."""
    probe = [P.copy() for P in parameters]
    gradient = [np.zeros_like(P) for P in probe]
    for k, P in enumerate(probe):
        for index in np.ndindex(P.shape):
            original = P[index]
            P[index] = original + epsilon
            loss_plus = loss(probe)
            P[index] = original - epsilon
            loss_minus = loss(probe)
            P[index] = original
            gradient[k][index] = (loss_plus - loss_minus) / (2 * epsilon)
    return gradient


@dataclass
class MoonsTraining:
    """What :func:`train_two_moons` computed: the data, the loss curves and the gradient check."""

    inputs: np.ndarray
    labels: np.ndarray
    initial_parameters: list[np.ndarray]
    loss_curves: dict[str, np.ndarray]  # update rule -> full-training-set loss after each update
    trained_parameters: dict[str, list[np.ndarray]]
    analytic_gradient: list[np.ndarray]  # backward pass at the initial parameters, full batch
    numerical_gradient: list[np.ndarray]  # finite differences at the initial parameters

    def loss(self, parameters: Sequence[np.ndarray]) -> float:
        return cross_entropy(moons_network(parameters, self.inputs), self.labels)


def train_two_moons(
    seed: int, *, n_samples: int = 200, hidden: int = 16, n_iterations: int = 1500, optimisers: dict | None = None
) -> MoonsTraining:
    """Train a ``2 -> hidden tanh -> 1 sigmoid`` network on two noisy half-moons with each update rule
    of ``optimisers`` (default :data:`OPTIMISERS`), forward pass, backward pass and update written out
    in NumPy, and check the backward pass against finite differences at the initial parameters."""
    X, y = datasets.make_moons(n_samples=n_samples, noise=0.2, random_state=seed)
    rng = np.random.default_rng([seed, 3])
    initial = [rng.normal(0, 1 / np.sqrt(2), (2, hidden)), np.zeros(hidden), rng.normal(0, 1 / np.sqrt(hidden), hidden)]
    initial.append(np.zeros(1))
    loss_curves, trained = {}, {}
    analytic_gradient = None
    for name, options in (optimisers or OPTIMISERS).items():
        params = [P.copy() for P in initial]
        first_moment = [np.zeros_like(P) for P in params]
        second_moment = [np.zeros_like(P) for P in params]
        batch_rng = np.random.default_rng([seed, 4])
        losses = []
        for step in range(1, n_iterations + 1):
            if options["batch_size"] is None:
                X_batch, y_batch = X, y
            else:
                batch = batch_rng.choice(len(X), size=options["batch_size"], replace=False)
                X_batch, y_batch = X[batch], y[batch]
            # forward pass, keeping the hidden activations
            hidden_activations = np.tanh(X_batch @ params[0] + params[1])
            p = 1 / (1 + np.exp(-(hidden_activations @ params[2] + params[3])))
            # backward pass: chain rule from the loss to every parameter
            d_output = (p - y_batch) / len(y_batch)  # dL/d(output pre-activation)
            d_hidden = np.outer(d_output, params[2]) * (1 - hidden_activations**2)  # dL/d(hidden pre-activation)
            gradient = [
                X_batch.T @ d_hidden,
                d_hidden.sum(axis=0),
                hidden_activations.T @ d_output,
                np.array([d_output.sum()]),
            ]
            if analytic_gradient is None:
                analytic_gradient = [g.copy() for g in gradient]  # the first step of the first rule
            # update
            for k, (P, g) in enumerate(zip(params, gradient)):
                if options["adam"]:
                    first_moment[k] = 0.9 * first_moment[k] + 0.1 * g
                    second_moment[k] = 0.999 * second_moment[k] + 0.001 * g**2
                    m_hat = first_moment[k] / (1 - 0.9**step)
                    v_hat = second_moment[k] / (1 - 0.999**step)
                    P -= options["learning_rate"] * m_hat / (np.sqrt(v_hat) + 1e-8)
                else:
                    P -= options["learning_rate"] * g
            losses.append(cross_entropy(moons_network(params, X), y))
        loss_curves[name] = np.array(losses)
        trained[name] = params
    checked = numerical_gradient(lambda parameters: cross_entropy(moons_network(parameters, X), y), initial)
    return MoonsTraining(X, y, initial, loss_curves, trained, analytic_gradient, checked)


def training_numbers(training: MoonsTraining) -> dict[str, float]:
    """The gradient check and the losses the chapter quotes, by glue name.  The first update rule of
    the training is taken as full-batch gradient descent, the second as SGD, the last as Adam."""
    analytic = np.concatenate([g.ravel() for g in training.analytic_gradient])
    numerical = np.concatenate([g.ravel() for g in training.numerical_gradient])
    gd, sgd, *_, adam = training.loss_curves
    curves = training.loss_curves
    adam_predictions = moons_network(training.trained_parameters[adam], training.inputs) > 0.5
    return {
        "gradcheck-n-parameters": analytic.size,
        "gradcheck-max-abs": np.abs(analytic - numerical).max(),
        "gradcheck-relative": np.linalg.norm(analytic - numerical) / np.linalg.norm(analytic + numerical),
        "gradcheck-gradient-norm": np.linalg.norm(analytic),
        "train-initial-loss": training.loss(training.initial_parameters),
        "train-final-loss-gd": curves[gd][-1],
        "train-final-loss-sgd": curves[sgd][-1],
        "train-final-loss-adam": curves[adam][-1],
        "train-iterations": len(curves[gd]),
        "train-accuracy-adam": np.mean(adam_predictions == training.labels),
    }


def training_figure(training: MoonsTraining) -> Figure:
    """(a) The training loss of each update rule against the iteration (log scale); (b) the decision
    boundary of the network trained with the last rule (Adam) over the training points."""
    fig = Figure(figsize=(FIGURE_WIDTH, 3.2))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.35, 1]})
    for (name, curve), colour in zip(training.loss_curves.items(), ["C0", "C1", "C2"]):
        axes[0].plot(np.arange(1, len(curve) + 1), curve, color=colour, label=name, linewidth=1.2)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("iteration (log scale)")
    axes[0].set_ylabel("training loss (cross-entropy)")
    axes[0].set_title("(a) loss during training")
    axes[0].set_ylim(0, 0.65)
    axes[0].legend(fontsize=7, loc="upper right")
    adam = list(training.trained_parameters)[-1]
    grid_x, grid_y = np.meshgrid(np.linspace(-1.6, 2.6, 200), np.linspace(-1.2, 1.7, 150))
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    grid_p = moons_network(training.trained_parameters[adam], grid).reshape(grid_x.shape)
    axes[1].contourf(grid_x, grid_y, grid_p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    axes[1].contour(grid_x, grid_y, grid_p, levels=[0.5], colors="black", linewidths=1)
    X, y = training.inputs, training.labels
    for label, marker in [(0, "o"), (1, "s")]:
        colour = "C0" if label == 0 else "C3"
        axes[1].scatter(
            *X[y == label].T,
            s=10,
            marker=marker,
            edgecolor="black",
            linewidth=0.3,
            color=colour,
            label=f"class {label}",
        )
    axes[1].set_xlabel("input $x_1$")
    axes[1].set_ylabel("input $x_2$")
    axes[1].set_title("(b) decision boundary after Adam")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Convolution and pooling on a radiograph

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)


def gaussian_kernel(size: int = 9, sigma: float = 2.0) -> np.ndarray:
    """A normalised ``size`` by ``size`` Gaussian kernel (its weights sum to one)."""
    gaussian_1d = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / sigma) ** 2)
    return np.outer(gaussian_1d, gaussian_1d) / np.outer(gaussian_1d, gaussian_1d).sum()


def max_pool(image: np.ndarray, pool: int) -> np.ndarray:
    """Maximum over non-overlapping ``pool`` by ``pool`` windows; a ragged edge is dropped."""
    height, width = (image.shape[0] // pool) * pool, (image.shape[1] // pool) * pool
    return image[:height, :width].reshape(height // pool, pool, width // pool, pool).max(axis=(1, 3))


@dataclass
class ConvolutionExample:
    """A radiograph (scaled to [0, 1]) and what a few hand-made kernels and pooling make of it."""

    image: np.ndarray
    blurred: np.ndarray
    edges_x: np.ndarray
    edges_y: np.ndarray
    magnitude: np.ndarray
    pooled: np.ndarray
    pool: int


def convolve_radiograph(radiograph: np.ndarray, pool: int = 4) -> ConvolutionExample:
    """Blur an 8-bit greyscale radiograph with a 9 by 9 Gaussian, take its Sobel edges in both
    directions and their magnitude, and max-pool the magnitude over ``pool`` by ``pool`` windows."""
    image = radiograph.astype(float) / 255.0
    edges_x = ndimage.convolve(image, SOBEL_X, mode="nearest")
    edges_y = ndimage.convolve(image, SOBEL_X.T, mode="nearest")
    magnitude = np.hypot(edges_x, edges_y)
    blurred = ndimage.convolve(image, gaussian_kernel(), mode="nearest")
    return ConvolutionExample(image, blurred, edges_x, edges_y, magnitude, max_pool(magnitude, pool), pool)


def convolution_numbers(example: ConvolutionExample, shift=(17, -11), kernels: int = 32) -> dict[str, float]:
    """Sizes, the translation-equivariance check (shift then convolve against convolve then shift,
    with periodic boundaries) and the parameters of a dense against a convolutional layer, by glue name."""
    image = example.image
    shift_then_convolve = ndimage.convolve(np.roll(image, shift, axis=(0, 1)), SOBEL_X, mode="wrap")
    convolve_then_shift = np.roll(ndimage.convolve(image, SOBEL_X, mode="wrap"), shift, axis=(0, 1))
    return {
        "conv-image-height": image.shape[0],
        "conv-image-width": image.shape[1],
        "conv-pooled-height": example.pooled.shape[0],
        "conv-pooled-width": example.pooled.shape[1],
        "conv-equivariance-max-diff": np.abs(shift_then_convolve - convolve_then_shift).max(),
        # a dense layer from every pixel to a hidden layer of the same size; a layer of 3x3 kernels
        "dense-layer-parameters": image.size * image.size + image.size,
        "conv-layer-parameters": 3 * 3 * 1 * kernels + kernels,
    }


def convolution_figure(example: ConvolutionExample) -> Figure:
    """Six image panels: the radiograph, its blur, both Sobel responses (diverging scale), the
    gradient magnitude and its max pooling."""
    panels = [
        ("(a) synthetic radiograph", example.image, "gray", None),
        ("(b) Gaussian blur, 9×9", example.blurred, "gray", None),
        ("(c) Sobel kernel $K_x$", example.edges_x, "RdBu_r", np.abs(example.edges_x).max()),
        ("(d) Sobel kernel $K_y$", example.edges_y, "RdBu_r", np.abs(example.edges_y).max()),
        ("(e) gradient magnitude", example.magnitude, "magma", None),
        (f"(f) {example.pool}×{example.pool} max pooling of (e)", example.pooled, "magma", None),
    ]
    panel_height = min(FIGURE_WIDTH / 3 * example.image.shape[0] / example.image.shape[1], 3.6)
    fig = Figure(figsize=(FIGURE_WIDTH, 2 * panel_height + 0.7))
    axes = fig.subplots(2, 3)
    for ax, (title, panel, cmap, limit) in zip(axes.ravel(), panels):
        if limit is None:
            ax.imshow(panel, cmap=cmap)
        else:
            ax.imshow(panel, cmap=cmap, vmin=-limit, vmax=limit)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Prediction and performance measures


def study_example(view_probabilities: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """One study's view probabilities, their mean (the study's probability) and how many views
    would be called abnormal on their own, by glue name."""
    probabilities = np.asarray(view_probabilities, dtype=float)
    numbers = {f"study-example-p{i}": p for i, p in enumerate(probabilities, start=1)}
    numbers["study-example-mean"] = probabilities.mean()
    numbers["study-example-votes"] = int((probabilities > threshold).sum())
    return numbers


@dataclass
class SimulatedScores:
    """Labels and predicted probabilities of simulated studies, and the Gaussians they came from."""

    labels: np.ndarray
    scores: np.ndarray
    mean_normal: float
    mean_abnormal: float
    spread: float

    @property
    def predicted(self) -> np.ndarray:
        return (self.scores > 0.5).astype(int)


def simulated_scores(
    seed: int,
    n_normal: int = 661,
    n_abnormal: int = 538,
    mean_normal: float = -1.0,
    mean_abnormal: float = 1.0,
    spread: float = 1.2,
) -> SimulatedScores:
    """Log-odds of abnormality drawn from two Gaussians of equal spread, normal studies first, turned
    into probabilities with the sigmoid.  The default counts are those of MURA's public validation split."""
    rng = np.random.default_rng([seed, 5])
    log_odds = np.concatenate(
        [rng.normal(mean_normal, spread, n_normal), rng.normal(mean_abnormal, spread, n_abnormal)]
    )
    labels = np.concatenate([np.zeros(n_normal, dtype=int), np.ones(n_abnormal, dtype=int)])
    return SimulatedScores(labels, 1 / (1 + np.exp(-log_odds)), mean_normal, mean_abnormal, spread)


def performance_numbers(simulated: SimulatedScores) -> dict[str, float]:
    """Confusion counts at threshold 0.5, sensitivity, specificity, accuracy, kappa by hand and its
    difference from scikit-learn's, the AUROC beside its closed form and the fraction of correctly
    ranked abnormal-normal pairs, by glue name."""
    y_true, y_score, y_pred = simulated.labels, simulated.scores, simulated.predicted
    tn, fp, fn, tp = metrics.confusion_matrix(y_true, y_pred).ravel()
    accuracy = (tp + tn) / len(y_true)
    p_expected = ((tp + fn) * (tp + fp) + (tn + fp) * (tn + fn)) / len(y_true) ** 2
    kappa = (accuracy - p_expected) / (1 - p_expected)
    auroc = metrics.roc_auc_score(y_true, y_score)
    separation = (simulated.mean_abnormal - simulated.mean_normal) / np.sqrt(2 * simulated.spread**2)
    pairwise = y_score[y_true == 1][:, None] - y_score[y_true == 0][None, :]
    auroc_pairs = np.mean(pairwise > 0) + 0.5 * np.mean(pairwise == 0)
    return {
        "pm-n-normal": int((y_true == 0).sum()),
        "pm-n-abnormal": int((y_true == 1).sum()),
        "pm-n-total": len(y_true),
        "pm-tp": tp,
        "pm-fp": fp,
        "pm-tn": tn,
        "pm-fn": fn,
        "pm-sensitivity": tp / (tp + fn),
        "pm-specificity": tn / (tn + fp),
        "pm-accuracy": accuracy,
        "pm-p-observed": accuracy,
        "pm-p-expected": p_expected,
        "pm-kappa": kappa,
        "pm-kappa-diff": abs(kappa - metrics.cohen_kappa_score(y_true, y_pred)),
        "pm-auroc": auroc,
        "pm-auroc-theory": stats.norm.cdf(separation),
        "pm-auroc-pairs-diff": abs(auroc - auroc_pairs),
        "pm-n-pairs": pairwise.size,
    }


def _kappa_rows(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Cohen's kappa of every row of two 0/1 matrices."""
    p_observed = (labels == predicted).mean(axis=1)
    p_expected = labels.mean(axis=1) * predicted.mean(axis=1) + (1 - labels.mean(axis=1)) * (1 - predicted.mean(axis=1))
    return (p_observed - p_expected) / (1 - p_expected)


def bootstrap_numbers(simulated: SimulatedScores, n_resamples: int, seed: int, small: int = 207) -> dict[str, float]:
    """95% percentile-bootstrap intervals of the AUROC and kappa over all studies, and the half-width
    of the kappa interval for a random subset of ``small`` studies (MURA's hidden test set has 207),
    by glue name.  The AUROC of every resample comes at once from the rank-sum (Mann-Whitney) form."""
    y_true, y_score, y_pred = simulated.labels, simulated.scores, simulated.predicted
    n_bootstrap = int(n_resamples)
    boot_rng = np.random.default_rng([seed, 6])
    resamples = boot_rng.integers(0, len(y_true), size=(n_bootstrap, len(y_true)))
    boot_true = y_true[resamples]
    ranks = stats.rankdata(y_score[resamples], axis=1)
    n_pos = boot_true.sum(axis=1)
    boot_auroc = ((ranks * boot_true).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * (len(y_true) - n_pos))
    boot_kappa = _kappa_rows(boot_true, y_pred[resamples])
    subset = np.random.default_rng([seed, 7]).choice(len(y_true), size=small, replace=False)
    small_resamples = subset[boot_rng.integers(0, subset.size, size=(n_bootstrap, subset.size))]
    small_kappa = _kappa_rows(y_true[small_resamples], y_pred[small_resamples])
    return {
        "pm-n-bootstrap": n_bootstrap,
        "pm-auroc-low": np.percentile(boot_auroc, 2.5),
        "pm-auroc-high": np.percentile(boot_auroc, 97.5),
        "pm-kappa-low": np.percentile(boot_kappa, 2.5),
        "pm-kappa-high": np.percentile(boot_kappa, 97.5),
        "pm-small-kappa-halfwidth": (np.percentile(small_kappa, 97.5) - np.percentile(small_kappa, 2.5)) / 2,
    }


def scores_and_roc(simulated: SimulatedScores) -> Figure:
    """(a) Histograms of the predicted probabilities by true class, with the threshold 0.5; (b) the
    ROC curve with the operating point at 0.5 and the chance diagonal."""
    y_true, y_score = simulated.labels, simulated.scores
    scores_normal, scores_abnormal = y_score[y_true == 0], y_score[y_true == 1]
    tn, fp, fn, tp = metrics.confusion_matrix(y_true, simulated.predicted).ravel()
    fpr, tpr, _ = metrics.roc_curve(y_true, y_score)
    auroc = metrics.roc_auc_score(y_true, y_score)
    fig = Figure(figsize=(FIGURE_WIDTH, 3.3))
    axes = fig.subplots(1, 2)
    bins = np.linspace(0, 1, 26)
    axes[0].hist(scores_normal, bins=bins, alpha=0.6, color="C0", label=f"normal ({len(scores_normal)})")
    axes[0].hist(scores_abnormal, bins=bins, alpha=0.6, color="C3", label=f"abnormal ({len(scores_abnormal)})")
    axes[0].axvline(0.5, color="black", linestyle="--", linewidth=1, label="threshold 0.5")
    axes[0].set_xlabel("predicted probability of abnormality")
    axes[0].set_ylabel("number of studies")
    axes[0].set_title("(a) scores by true class")
    axes[0].set_ylim(0, axes[0].get_ylim()[1] * 1.45)
    axes[0].legend(fontsize=8, loc="upper center", ncol=2)
    axes[1].plot(fpr, tpr, color="C2", label=f"ROC curve, AUROC = {auroc:.3f}")
    axes[1].plot([0, 1], [0, 1], color="0.5", linestyle=":", label="chance")
    specificity, sensitivity = tn / (tn + fp), tp / (tp + fn)
    axes[1].scatter([1 - specificity], [sensitivity], color="black", zorder=3, label="operating point at 0.5")
    axes[1].set_xlabel("false positive rate (1 − specificity)")
    axes[1].set_ylabel("true positive rate (sensitivity)")
    axes[1].set_title("(b) ROC curve")
    axes[1].set_aspect("equal")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Over-fitting: polynomials of increasing degree on noisy samples of a sine curve


def sine_curve(x: np.ndarray) -> np.ndarray:
    """The function the polynomial example samples, ``sin 2πx``."""
    return np.sin(2 * np.pi * x)


@dataclass
class PolynomialFits:
    """Least-squares polynomial fits of every degree, their errors, and a ridge-penalised fit of the
    highest degree (in Legendre polynomials of ``2x - 1``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    noise_sd: float
    degrees: np.ndarray
    fits: dict[int, np.polynomial.Polynomial]
    rmse_train: np.ndarray
    rmse_valid: np.ndarray
    ridge_coefficients: np.ndarray
    ridge_rmse_train: float
    ridge_rmse_valid: float

    @property
    def best_degree(self) -> int:
        return int(self.degrees[np.argmin(self.rmse_valid)])

    @property
    def high_degree(self) -> int:
        return int(self.degrees[-1])

    def ridge(self, x: np.ndarray) -> np.ndarray:
        return np.polynomial.legendre.legvander(2 * x - 1, self.high_degree) @ self.ridge_coefficients


def polynomial_fits(
    seed: int,
    n_train: int = 20,
    n_valid: int = 500,
    noise_sd: float = 0.25,
    max_degree: int = 14,
    penalty: float = 1e-4,
) -> PolynomialFits:
    """Fit polynomials of degree 0 to ``max_degree`` to ``n_train`` noisy samples of ``sin 2πx`` and
    measure their root mean squared error there and on ``n_valid`` fresh samples; fit the highest
    degree again with an L2 penalty of ``penalty`` times ``n_train`` on its coefficients."""
    rng = np.random.default_rng([seed, 8])
    x_train = np.sort(rng.uniform(0, 1, n_train))
    y_train = sine_curve(x_train) + rng.normal(0, noise_sd, x_train.size)
    x_valid = rng.uniform(0, 1, n_valid)
    y_valid = sine_curve(x_valid) + rng.normal(0, noise_sd, x_valid.size)
    degrees = np.arange(0, max_degree + 1)
    fits = {d: np.polynomial.Polynomial.fit(x_train, y_train, d) for d in degrees}
    rmse_train = np.array([np.sqrt(np.mean((fits[d](x_train) - y_train) ** 2)) for d in degrees])
    rmse_valid = np.array([np.sqrt(np.mean((fits[d](x_valid) - y_valid) ** 2)) for d in degrees])
    design_train = np.polynomial.legendre.legvander(2 * x_train - 1, max_degree)
    design_valid = np.polynomial.legendre.legvander(2 * x_valid - 1, max_degree)
    ridge_coefficients = np.linalg.solve(
        design_train.T @ design_train + penalty * len(x_train) * np.eye(max_degree + 1), design_train.T @ y_train
    )
    ridge_rmse_valid = np.sqrt(np.mean((design_valid @ ridge_coefficients - y_valid) ** 2))
    ridge_rmse_train = np.sqrt(np.mean((design_train @ ridge_coefficients - y_train) ** 2))
    return PolynomialFits(
        x_train=x_train,
        y_train=y_train,
        x_valid=x_valid,
        y_valid=y_valid,
        noise_sd=noise_sd,
        degrees=degrees,
        fits=fits,
        rmse_train=rmse_train,
        rmse_valid=rmse_valid,
        ridge_coefficients=ridge_coefficients,
        ridge_rmse_train=ridge_rmse_train,
        ridge_rmse_valid=ridge_rmse_valid,
    )


def polynomial_numbers(fits: PolynomialFits) -> dict[str, float]:
    """Sample sizes, the noise level and the errors of the linear, best and highest-degree fits and
    of the penalised fit, by glue name."""
    best, high = (int(np.argmin(fits.rmse_valid)), len(fits.degrees) - 1)
    linear = int(np.flatnonzero(fits.degrees == 1)[0])
    return {
        "poly-n-train": fits.x_train.size,
        "poly-n-valid": fits.x_valid.size,
        "poly-noise-sd": fits.noise_sd,
        "poly-best-degree": fits.best_degree,
        "poly-best-valid": fits.rmse_valid[best],
        "poly-best-train": fits.rmse_train[best],
        "poly-high-degree": fits.high_degree,
        "poly-high-train": fits.rmse_train[high],
        "poly-high-valid": fits.rmse_valid[high],
        "poly-linear-train": fits.rmse_train[linear],
        "poly-linear-valid": fits.rmse_valid[linear],
        "poly-ridge-valid": fits.ridge_rmse_valid,
        "poly-ridge-train": fits.ridge_rmse_train,
    }


def overfitting_figure(fits: PolynomialFits) -> Figure:
    """(a) Training and validation error against the degree (log scale), with the noise level and the
    best degree marked; (b) the training points, the true curve and the linear, best, highest-degree
    and penalised fits, with one legend below both panels."""
    best, high = fits.best_degree, fits.high_degree
    fig = Figure(figsize=(FIGURE_WIDTH, 3.3))
    axes = fig.subplots(1, 2)
    axes[0].plot(fits.degrees, fits.rmse_train, marker="o", markersize=4, color="C0", label="training set")
    axes[0].plot(fits.degrees, fits.rmse_valid, marker="s", markersize=4, color="C3", label="validation set")
    axes[0].axhline(fits.noise_sd, color="0.5", linestyle=":", label="noise level")
    axes[0].axvline(best, color="black", linestyle="--", linewidth=0.8)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("polynomial degree (model capacity)")
    axes[0].set_ylabel("root mean squared error")
    axes[0].set_title("(a) error against capacity")
    axes[0].legend(fontsize=8, loc="upper left")
    x_plot = np.linspace(0, 1, 400)
    axes[1].scatter(fits.x_train, fits.y_train, color="black", s=14, zorder=3, label="training points")
    axes[1].plot(x_plot, sine_curve(x_plot), color="0.5", linestyle=":", label=r"true function $\sin 2\pi x$")
    axes[1].plot(x_plot, fits.fits[1](x_plot), color="C0", label="degree 1 (under-fits)")
    axes[1].plot(x_plot, fits.fits[best](x_plot), color="C2", label=f"degree {best} (best on validation)")
    axes[1].plot(x_plot, fits.fits[high](x_plot), color="C3", label=f"degree {high} (over-fits)")
    axes[1].plot(x_plot, fits.ridge(x_plot), color="C4", linestyle="--", label=f"degree {high} with L2 penalty")
    axes[1].set_ylim(-2, 2)
    axes[1].set_xlabel("input $x$")
    axes[1].set_ylabel("target $y$")
    axes[1].set_title("(b) fitted curves")
    fig.tight_layout()
    fig.legend(*axes[1].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------
# VGG16 from its published configuration

# Configuration D: five blocks of 3x3 convolutions (stride 1, padding 1), each ending in 2x2 max
# pooling, as (convolutions, filters); then three fully connected layers; input 224x224x3.
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VGG16_DENSE = (("fc1", 4096), ("fc2", 4096), ("predictions", 1000))


def vgg16_layers(
    blocks: Sequence[tuple[int, int]] = VGG16_BLOCKS,
    dense: Sequence[tuple[str, int]] = VGG16_DENSE,
    size: int = 224,
    channels: int = 3,
) -> pd.DataFrame:
    """VGG16 layer by layer, counted from its description: name, kind, output shape and trainable
    parameters (``3 * 3 * C_in * C_out + C_out`` for a convolution, ``n_in * n_out + n_out`` for a
    fully connected layer, none for pooling)."""
    rows = []
    for block, (n_convolutions, filters) in enumerate(blocks, start=1):
        for index in range(1, n_convolutions + 1):
            parameters = 3 * 3 * channels * filters + filters
            shape = f"{size}×{size}×{filters}"
            rows.append(
                {
                    "layer": f"block{block}_conv{index}",
                    "kind": "convolution",
                    "output shape": shape,
                    "parameters": parameters,
                }
            )
            channels = filters
        size //= 2
        shape = f"{size}×{size}×{channels}"
        rows.append({"layer": f"block{block}_pool", "kind": "max pooling", "output shape": shape, "parameters": 0})
    units = size * size * channels
    for name, width in dense:
        rows.append(
            {"layer": name, "kind": "fully connected", "output shape": f"{width}", "parameters": units * width + width}
        )
        units = width
    return pd.DataFrame(rows)


def stacked_kernel_share(n_layers: int, kernel: int = 3) -> float:
    """Weights of ``n_layers`` stacked ``kernel`` by ``kernel`` convolutions as a fraction of those of
    the one larger kernel with the same receptive field (equal numbers of feature maps in and out)."""
    receptive_field = n_layers * (kernel - 1) + 1
    return n_layers * kernel**2 / receptive_field**2


def vgg16_numbers(layers: pd.DataFrame) -> dict[str, float]:
    """Parameter totals of the convolutional base and the fully connected head, the size of the
    flattened final feature maps, the parameters of a one-unit head on their global average, and the
    savings of stacked 3x3 kernels, by glue name."""
    kind = layers["kind"]
    total = int(layers["parameters"].sum())
    dense = int(layers.loc[kind == "fully connected", "parameters"].sum())
    final_maps = [int(n) for n in layers.loc[kind != "fully connected", "output shape"].iloc[-1].split("×")]
    return {
        "vgg16-total": total,
        "vgg16-conv": int(layers.loc[kind == "convolution", "parameters"].sum()),
        "vgg16-dense": dense,
        "vgg16-dense-share": dense / total,
        "vgg16-fc1": int(layers.loc[kind == "fully connected", "parameters"].iloc[0]),
        "vgg16-n-conv": int((kind == "convolution").sum()),
        "vgg16-n-dense": int((kind == "fully connected").sum()),
        "vgg16-flatten": int(np.prod(final_maps)),
        "vgg16-new-head": final_maps[-1] + 1,
        "stack-3x3-vs-5x5": stacked_kernel_share(2),
        "stack-3x3-vs-7x7": stacked_kernel_share(3),
    }


def vgg16_parameters_figure(layers: pd.DataFrame) -> Figure:
    """Trainable parameters of each weight layer (log scale), convolutions and dense layers coloured apart."""
    fig = Figure(figsize=(FIGURE_WIDTH, 3.4))
    ax = fig.subplots()
    weighted = layers[layers["parameters"] > 0]
    colours = weighted["kind"].map({"convolution": "C0", "fully connected": "C3"})
    ax.bar(np.arange(len(weighted)), weighted["parameters"], color=colours)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(weighted)))
    ax.set_xticklabels(weighted["layer"], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("trainable parameters (log scale)")
    ax.set_xlabel("weight layer, from input to output")
    ax.set_ylim(1e2, 5e8)
    ax.bar([0], [0], color="C0", label="convolutional base")
    ax.bar([0], [0], color="C3", label="fully connected head")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
