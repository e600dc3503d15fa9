"""The background's illustrations on small inputs: each number checked against an independent
computation (scikit-learn, SciPy, NumPy's own fitting), each figure for its panels, lines and labels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import signal, stats
from sklearn import linear_model, metrics

from mura_thesis import background as il


def _texts(ax) -> list[str]:
    return [text.get_text() for text in ax.texts]


# ----------------------------------------------------------------------------------------------
# networks


@pytest.mark.parametrize("sizes", [(4, 5, 3, 1), (2, 3, 2)])
def test_network_diagram_draws_every_unit_and_weight(sizes):
    fig = il.network_diagram(sizes)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert not ax.axison
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    assert len(ax.lines) == weights
    assert len(ax.collections) == sum(sizes)  # one scatter per unit
    texts = _texts(ax)
    assert texts.count("input layer\n$a_0$") == 1
    assert f"output layer\n$a_{len(sizes) - 1}$" in texts
    assert sum("hidden layer" in t for t in texts) == len(sizes) - 2
    assert [t for t in texts if t.startswith("$\\mathbf{W}")] == [
        f"$\\mathbf{{W}}_{i}, b_{i}$" for i in range(1, len(sizes))
    ]
    # every unit lies inside the drawn area, and the labels too
    low, high = ax.get_ylim()
    assert low < -(max(sizes) - 1) / 2 and high > (max(sizes) - 1) / 2


def test_network_diagram_refuses_a_single_layer():
    with pytest.raises(ValueError, match="at least two layers"):
        il.network_diagram([3])


def test_identity_network_collapses_to_one_linear_layer_and_relu_does_not():
    rng = np.random.default_rng(0)
    weights, biases = il.random_network([5, 7, 4, 2], rng)
    assert [W.shape for W in weights] == [(5, 7), (7, 4), (4, 2)]
    assert [b.shape for b in biases] == [(7,), (4,), (2,)]
    inputs = rng.normal(size=(50, 5))
    W, b = il.collapse(weights, biases)
    assert W.shape == (5, 2) and b.shape == (2,)
    linear = il.forward(inputs, weights, biases)
    np.testing.assert_allclose(linear, inputs @ W + b, atol=1e-12)
    # layer by layer by hand, with the ReLU only between layers
    hidden = np.maximum(inputs @ weights[0] + biases[0], 0)
    hidden = np.maximum(hidden @ weights[1] + biases[1], 0)
    relu_output = il.forward(inputs, weights, biases, activation=il.relu)
    np.testing.assert_allclose(relu_output, hidden @ weights[2] + biases[2])
    assert np.abs(relu_output - linear).max() > 0.1


def test_unexplained_variance_agrees_with_one_minus_r_squared():
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(200, 3))
    affine = inputs @ np.array([1.0, -2.0, 0.5]) + 3.0
    assert il.unexplained_variance(inputs, affine) == pytest.approx(0.0, abs=1e-20)
    nonlinear = np.abs(inputs[:, 0]) + 0.3 * inputs[:, 1]
    fit = linear_model.LinearRegression().fit(inputs, nonlinear)
    expected = 1 - metrics.r2_score(nonlinear, fit.predict(inputs))
    assert il.unexplained_variance(inputs, nonlinear) == pytest.approx(expected, rel=1e-9)
    assert 0.3 < expected < 1


def test_activation_functions_figure():
    fig = il.activation_functions(other_logits=[0.0, 1.0])
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["(a) ReLU", "(b) sigmoid and tanh", "(c) softmax, $v = (x, 0, 1)$"]
    assert all(ax.get_xlabel() == "pre-activation $x$" for ax in axes)
    (relu_line,) = axes[0].lines
    x = relu_line.get_xdata()
    np.testing.assert_array_equal(relu_line.get_ydata(), np.maximum(x, 0))
    sigmoid, tanh = axes[1].lines[:2]
    np.testing.assert_allclose(sigmoid.get_ydata(), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(tanh.get_ydata(), np.tanh(x))
    softmax = np.array([line.get_ydata() for line in axes[2].lines])
    assert softmax.shape == (3, x.size)
    np.testing.assert_allclose(softmax.sum(axis=0), 1.0)
    np.testing.assert_allclose(softmax[1] / softmax[2], np.exp(-1.0))  # fixed components 0 and 1
    assert [t.get_text() for t in axes[2].get_legend().get_texts()] == ["$w_1$", "$w_2$", "$w_3$"]


# ----------------------------------------------------------------------------------------------
# training


def test_numerical_gradient_of_a_known_function():
    parameters = [np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([0.3])]

    def loss(p):
        return float(np.sum((p[0] - 1) ** 2) + 3 * np.sum(p[1] ** 3))

    gradient = il.numerical_gradient(loss, parameters)
    np.testing.assert_allclose(gradient[0], 2 * (parameters[0] - 1), atol=1e-7)
    np.testing.assert_allclose(gradient[1], 9 * parameters[1] ** 2, atol=1e-7)
    assert parameters[0][0, 0] == 0.5  # the parameters are left as they were


@pytest.fixture(scope="module")
def moons():
    return il.train_two_moons(0, n_samples=40, hidden=4, n_iterations=40)


def test_two_moons_backward_pass_matches_finite_differences(moons):
    analytic = np.concatenate([g.ravel() for g in moons.analytic_gradient])
    numerical = np.concatenate([g.ravel() for g in moons.numerical_gradient])
    assert analytic.size == 2 * 4 + 4 + 4 + 1
    np.testing.assert_allclose(analytic, numerical, rtol=1e-5, atol=1e-9)
    numbers = il.training_numbers(moons)
    assert numbers["gradcheck-n-parameters"] == 17
    assert numbers["gradcheck-max-abs"] == np.abs(analytic - numerical).max()
    assert numbers["gradcheck-relative"] < 1e-6
    assert numbers["gradcheck-gradient-norm"] == pytest.approx(np.linalg.norm(analytic))


def test_two_moons_training_numbers(moons):
    assert list(moons.loss_curves) == list(il.OPTIMISERS)
    assert all(curve.shape == (40,) for curve in moons.loss_curves.values())
    numbers = il.training_numbers(moons)
    initial = metrics.log_loss(moons.labels, il.moons_network(moons.initial_parameters, moons.inputs))
    assert numbers["train-initial-loss"] == pytest.approx(initial)
    gd, sgd, adam = moons.loss_curves.values()
    assert (numbers["train-final-loss-gd"], numbers["train-final-loss-sgd"], numbers["train-final-loss-adam"]) == (
        gd[-1],
        sgd[-1],
        adam[-1],
    )
    assert numbers["train-final-loss-gd"] < numbers["train-initial-loss"]
    assert numbers["train-iterations"] == 40
    trained = il.moons_network(moons.trained_parameters["Adam, batches of 16"], moons.inputs)
    assert numbers["train-accuracy-adam"] == metrics.accuracy_score(moons.labels, trained > 0.5)


def test_training_figure(moons):
    fig = il.training_figure(moons)
    curves, boundary = fig.axes
    assert curves.get_xscale() == "log"
    assert [line.get_label() for line in curves.lines] == list(il.OPTIMISERS)
    assert curves.get_ylabel() == "training loss (cross-entropy)"
    assert boundary.get_xlabel() == "input $x_1$" and boundary.get_ylabel() == "input $x_2$"
    labels = [t.get_text() for t in boundary.get_legend().get_texts()]
    assert labels == ["class 0", "class 1"]


# ----------------------------------------------------------------------------------------------
# convolution


def test_gaussian_kernel_and_max_pool():
    kernel = il.gaussian_kernel(9, 2.0)
    assert kernel.shape == (9, 9)
    assert kernel.sum() == pytest.approx(1.0)
    assert kernel.argmax() == 40 and np.allclose(kernel, kernel.T) and np.allclose(kernel, kernel[::-1])
    assert kernel[4, 4] / kernel[4, 6] == pytest.approx(np.exp(0.5))  # two pixels = one sigma
    pooled = il.max_pool(np.arange(30).reshape(5, 6), 2)
    np.testing.assert_array_equal(pooled, [[7, 9, 11], [19, 21, 23]])


@pytest.fixture(scope="module")
def square():
    image = np.zeros((21, 26), dtype=np.uint8)
    image[5:15, 8:20] = 200
    return image


def test_convolve_radiograph(square):
    example = il.convolve_radiograph(square, pool=4)
    assert example.image.max() == pytest.approx(200 / 255)
    expected_x = signal.convolve2d(example.image, il.SOBEL_X, mode="same")
    np.testing.assert_allclose(example.edges_x[1:-1, 1:-1], expected_x[1:-1, 1:-1], atol=1e-12)
    expected_y = signal.convolve2d(example.image, il.SOBEL_X.T, mode="same")
    np.testing.assert_allclose(example.edges_y[1:-1, 1:-1], expected_y[1:-1, 1:-1], atol=1e-12)
    np.testing.assert_allclose(example.magnitude, np.sqrt(example.edges_x**2 + example.edges_y**2))
    assert example.edges_x[10, 2] == 0 and example.edges_x[10, 8] != 0  # flat region against the square's edge
    assert example.pooled.shape == (5, 6)
    assert example.pooled[2, 2] == example.magnitude[8:12, 8:12].max()
    assert example.blurred.mean() == pytest.approx(example.image.mean(), rel=0.05)


def test_convolution_numbers(square):
    example = il.convolve_radiograph(square, pool=4)
    numbers = il.convolution_numbers(example, shift=(3, -5), kernels=8)
    assert (numbers["conv-image-height"], numbers["conv-image-width"]) == (21, 26)
    assert (numbers["conv-pooled-height"], numbers["conv-pooled-width"]) == (5, 6)
    assert numbers["conv-equivariance-max-diff"] < 1e-12
    assert numbers["dense-layer-parameters"] == 546 * 546 + 546
    assert numbers["conv-layer-parameters"] == 8 * 9 + 8


def test_convolution_figure(square):
    fig = il.convolution_figure(il.convolve_radiograph(square, pool=3))
    assert len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "(a) synthetic radiograph" and titles[-1] == "(f) 3×3 max pooling of (e)"
    assert all(len(ax.images) == 1 for ax in fig.axes)
    low, high = fig.axes[2].images[0].get_clim()
    assert low == -high and high > 0  # the Sobel panels are centred on zero


# ----------------------------------------------------------------------------------------------
# prediction and performance measures


def test_study_example():
    numbers = il.study_example([0.81, 0.34, 0.47])
    assert [numbers[f"study-example-p{i}"] for i in (1, 2, 3)] == [0.81, 0.34, 0.47]
    assert numbers["study-example-mean"] == pytest.approx(0.54)
    assert numbers["study-example-votes"] == 1


@pytest.fixture(scope="module")
def simulated():
    return il.simulated_scores(3, n_normal=70, n_abnormal=50)


def test_simulated_scores(simulated):
    assert simulated.labels.tolist() == [0] * 70 + [1] * 50
    assert ((simulated.scores > 0) & (simulated.scores < 1)).all()
    assert simulated.scores[simulated.labels == 1].mean() > simulated.scores[simulated.labels == 0].mean()
    np.testing.assert_array_equal(simulated.scores, il.simulated_scores(3, n_normal=70, n_abnormal=50).scores)


def test_performance_numbers_agree_with_scikit_learn(simulated):
    numbers = il.performance_numbers(simulated)
    y, score = simulated.labels, simulated.scores
    predicted = score > 0.5
    assert (numbers["pm-n-normal"], numbers["pm-n-abnormal"], numbers["pm-n-total"]) == (70, 50, 120)
    assert numbers["pm-tp"] + numbers["pm-fn"] == 50 and numbers["pm-tn"] + numbers["pm-fp"] == 70
    assert numbers["pm-sensitivity"] == pytest.approx(metrics.recall_score(y, predicted))
    assert numbers["pm-specificity"] == pytest.approx(metrics.recall_score(y, predicted, pos_label=0))
    assert numbers["pm-accuracy"] == pytest.approx(metrics.accuracy_score(y, predicted))
    assert numbers["pm-kappa"] == pytest.approx(metrics.cohen_kappa_score(y, predicted))
    assert numbers["pm-kappa-diff"] < 1e-12
    assert numbers["pm-p-expected"] == pytest.approx(_chance_agreement(y, predicted))
    assert numbers["pm-auroc"] == pytest.approx(metrics.roc_auc_score(y, score))
    mann_whitney = stats.mannwhitneyu(score[y == 1], score[y == 0]).statistic / (50 * 70)
    assert numbers["pm-auroc"] == pytest.approx(mann_whitney)
    assert numbers["pm-auroc-pairs-diff"] < 1e-12 and numbers["pm-n-pairs"] == 3500
    assert numbers["pm-auroc-theory"] == pytest.approx(stats.norm.cdf(2 / np.sqrt(2 * 1.2**2)))


def _chance_agreement(labels, predicted) -> float:
    return labels.mean() * predicted.mean() + (1 - labels.mean()) * (1 - predicted.mean())


def test_bootstrap_numbers_agree_with_resampling_by_hand(simulated):
    numbers = il.bootstrap_numbers(simulated, n_resamples=60, seed=3, small=40)
    y, score, predicted = simulated.labels, simulated.scores, simulated.predicted
    rng = np.random.default_rng([3, 6])
    resamples = rng.integers(0, y.size, size=(60, y.size))
    aurocs = [metrics.roc_auc_score(y[r], score[r]) for r in resamples]
    kappas = [metrics.cohen_kappa_score(y[r], predicted[r]) for r in resamples]
    assert numbers["pm-n-bootstrap"] == 60
    assert numbers["pm-auroc-low"] == pytest.approx(np.percentile(aurocs, 2.5))
    assert numbers["pm-auroc-high"] == pytest.approx(np.percentile(aurocs, 97.5))
    assert numbers["pm-kappa-low"] == pytest.approx(np.percentile(kappas, 2.5))
    assert numbers["pm-kappa-high"] == pytest.approx(np.percentile(kappas, 97.5))
    subset = np.random.default_rng([3, 7]).choice(y.size, size=40, replace=False)
    small = subset[rng.integers(0, 40, size=(60, 40))]
    small_kappas = [metrics.cohen_kappa_score(y[r], predicted[r]) for r in small]
    halfwidth = (np.percentile(small_kappas, 97.5) - np.percentile(small_kappas, 2.5)) / 2
    assert numbers["pm-small-kappa-halfwidth"] == pytest.approx(halfwidth)


def test_scores_and_roc_figure(simulated):
    fig = il.scores_and_roc(simulated)
    histogram, roc = fig.axes
    assert len(histogram.patches) == 2 * 25
    labels = [t.get_text() for t in histogram.get_legend().get_texts()]
    assert labels == ["normal (70)", "abnormal (50)", "threshold 0.5"]
    auroc = metrics.roc_auc_score(simulated.labels, simulated.scores)
    assert roc.lines[0].get_label() == f"ROC curve, AUROC = {auroc:.3f}"
    numbers = il.performance_numbers(simulated)
    (point,) = roc.collections[0].get_offsets()
    np.testing.assert_allclose(point, [1 - numbers["pm-specificity"], numbers["pm-sensitivity"]])
    assert roc.get_xlabel().startswith("false positive rate") and roc.get_ylabel().startswith("true positive rate")


# ----------------------------------------------------------------------------------------------
# over-fitting


@pytest.fixture(scope="module")
def polynomials():
    return il.polynomial_fits(2, n_train=20, n_valid=200, noise_sd=0.2, max_degree=9, penalty=1e-3)


def test_polynomial_fits(polynomials):
    assert polynomials.degrees.tolist() == list(range(10))
    # more coefficients never fit the training points worse
    assert (np.diff(polynomials.rmse_train) < 1e-9).all()
    slope, intercept = np.polyfit(polynomials.x_train, polynomials.y_train, 1)
    linear = slope * polynomials.x_train + intercept
    assert polynomials.rmse_train[1] == pytest.approx(np.sqrt(np.mean((linear - polynomials.y_train) ** 2)))
    assert polynomials.best_degree == int(np.argmin(polynomials.rmse_valid))
    assert polynomials.rmse_valid[1] > polynomials.rmse_valid[polynomials.best_degree]
    design = np.polynomial.legendre.legvander(2 * polynomials.x_train - 1, 9)
    ridge = linear_model.Ridge(alpha=1e-3 * 20, fit_intercept=False, solver="cholesky").fit(design, polynomials.y_train)
    np.testing.assert_allclose(polynomials.ridge_coefficients, ridge.coef_, rtol=1e-6, atol=1e-9)
    assert polynomials.ridge_rmse_train == pytest.approx(
        np.sqrt(np.mean((polynomials.ridge(polynomials.x_train) - polynomials.y_train) ** 2))
    )


def test_polynomial_numbers(polynomials):
    numbers = il.polynomial_numbers(polynomials)
    best = polynomials.best_degree
    assert (numbers["poly-n-train"], numbers["poly-n-valid"], numbers["poly-noise-sd"]) == (20, 200, 0.2)
    assert numbers["poly-best-degree"] == best and numbers["poly-high-degree"] == 9
    assert numbers["poly-best-valid"] == polynomials.rmse_valid.min()
    assert numbers["poly-best-train"] == polynomials.rmse_train[best]
    assert (numbers["poly-high-train"], numbers["poly-high-valid"]) == (
        polynomials.rmse_train[9],
        polynomials.rmse_valid[9],
    )
    assert (numbers["poly-linear-train"], numbers["poly-linear-valid"]) == (
        polynomials.rmse_train[1],
        polynomials.rmse_valid[1],
    )
    assert numbers["poly-ridge-valid"] == polynomials.ridge_rmse_valid


def test_overfitting_figure(polynomials):
    fig = il.overfitting_figure(polynomials)
    errors, curves = fig.axes
    assert errors.get_yscale() == "log"
    assert errors.lines[0].get_ydata().tolist() == polynomials.rmse_train.tolist()
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [
        "training points",
        r"true function $\sin 2\pi x$",
        "degree 1 (under-fits)",
        f"degree {polynomials.best_degree} (best on validation)",
        "degree 9 (over-fits)",
        "degree 9 with L2 penalty",
    ]
    assert curves.get_ylim() == (-2, 2)


# ----------------------------------------------------------------------------------------------
# VGG16


def test_vgg16_layers_of_a_tiny_configuration():
    layers = il.vgg16_layers(blocks=[(1, 2), (2, 4)], dense=[("out", 3)], size=8, channels=1)
    assert layers["layer"].tolist() == [
        "block1_conv1",
        "block1_pool",
        "block2_conv1",
        "block2_conv2",
        "block2_pool",
        "out",
    ]
    assert layers["output shape"].tolist() == ["8×8×2", "4×4×2", "4×4×4", "4×4×4", "2×2×4", "3"]
    assert layers["parameters"].tolist() == [9 * 1 * 2 + 2, 0, 9 * 2 * 4 + 4, 9 * 4 * 4 + 4, 0, 16 * 3 + 3]


def test_vgg16_numbers():
    layers = il.vgg16_layers()
    numbers = il.vgg16_numbers(layers)
    # the total that Keras reports for VGG16 with its ImageNet head
    assert numbers["vgg16-total"] == 138_357_544
    assert numbers["vgg16-conv"] + numbers["vgg16-dense"] == numbers["vgg16-total"]
    assert numbers["vgg16-fc1"] == 7 * 7 * 512 * 4096 + 4096
    assert (numbers["vgg16-n-conv"], numbers["vgg16-n-dense"]) == (13, 3)
    assert (numbers["vgg16-flatten"], numbers["vgg16-new-head"]) == (25088, 513)
    assert numbers["vgg16-dense-share"] == pytest.approx(numbers["vgg16-dense"] / numbers["vgg16-total"])
    assert (numbers["stack-3x3-vs-5x5"], numbers["stack-3x3-vs-7x7"]) == (18 / 25, 27 / 49)
    assert il.stacked_kernel_share(1) == 1.0


def test_vgg16_parameters_figure():
    layers = il.vgg16_layers()
    fig = il.vgg16_parameters_figure(layers)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == layers.loc[layers["parameters"] > 0, "layer"].tolist()
    heights = [bar.get_height() for bar in ax.patches[: len(ticks)]]
    assert heights == layers.loc[layers["parameters"] > 0, "parameters"].tolist()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["convolutional base", "fully connected head"]
