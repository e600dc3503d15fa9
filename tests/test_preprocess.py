import numpy as np
import pytest
from PIL import Image

from mura_lib.dataset import load_mura
from mura_lib.preprocess import build_cache, load_grayscale, resize_image


def test_rgb_with_equal_channels_becomes_grayscale(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(gray).convert("RGB").save(tmp_path / "rgb.png")
    result = load_grayscale(tmp_path / "rgb.png")
    assert result.shape == (20, 30) and result.dtype == np.uint8
    np.testing.assert_array_equal(result, gray)


def test_synthetic_copy_contains_rgb_files_that_read_as_gray(synthetic_root):
    modes = {Image.open(p).mode for p in list(synthetic_root.rglob("image*.png"))}
    assert modes == {"L", "RGB"}


@pytest.mark.parametrize("policy", ["pad", "stretch", "crop"])
def test_resize_policies_give_square_images(policy):
    image = np.full((100, 50), 200, dtype=np.uint8)
    result = resize_image(image, 32, policy)
    assert result.shape == (32, 32)
    if policy == "pad":
        # Aspect kept: the 50-px-wide image fills half the width, centred, with black padding.
        assert (result[:, :7] == 0).all() and (result[:, 9:23] == 200).all()
    else:
        assert (result == 200).all()
    with pytest.raises(ValueError, match="policy"):
        resize_image(image, 32, "squash")


def test_cache_reports_undecodable_images_and_is_reused(mura_copy, tmp_path):
    dataset = load_mura(mura_copy)
    victim = dataset.images.iloc[5]
    data = open(victim["path"], "rb").read()
    open(victim["path"], "wb").write(data[: len(data) // 3])  # truncated, as some MURA files are
    dataset = load_mura(mura_copy)
    cache = build_cache(dataset, 16, cache_dir=tmp_path, workers=2, progress=False)
    assert cache.images.shape == (len(dataset.images), 16, 16)
    failures = cache.failures
    assert failures["relpath"].tolist() == [victim["relpath"]]
    assert failures["error"].iloc[0]
    # Decoded images are real pixels, not zeros.
    assert cache.images[cache.index["ok"].to_numpy()].max() > 0
    # A second request reuses the cache folder; another size builds another one.
    again = build_cache(dataset, 16, cache_dir=tmp_path, progress=False)
    assert again.directory == cache.directory
    other = build_cache(dataset, 24, cache_dir=tmp_path, progress=False)
    assert other.directory != cache.directory
    # Changing the data invalidates the cache.
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(victim["path"])
    rebuilt = build_cache(load_mura(mura_copy), 16, cache_dir=tmp_path, progress=False)
    assert rebuilt.directory != cache.directory and rebuilt.failures.empty


def test_cache_same_result_with_one_or_two_workers(synthetic_root, tmp_path):
    dataset = load_mura(synthetic_root)
    one = build_cache(dataset, 16, cache_dir=tmp_path / "a", workers=1, progress=False)
    two = build_cache(dataset, 16, cache_dir=tmp_path / "b", workers=2, progress=False)
    np.testing.assert_array_equal(one.images, two.images)
