"""Data: the fixed digits split, normalization, augmentation and the evaluation corruptions."""
import pytest
import torch

from kdsnn import corruptions, data
from kdsnn.errors import KdsnnError


def test_digits_split_is_fixed_and_stratified():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert (len(train), len(test)) == (1347, 450)
    x, y = data.sample_batch("digits", 450)
    assert x.shape == (450, 1, 8, 8) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.bincount(y).min() >= 43  # stratified: every class keeps about 10 %
    x2, y2 = data.sample_batch("digits", 450)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert torch.equal(x * 16, (x * 16).round())  # digits are integers 0..16 at the source


def test_validation_split_holds_out_a_fixed_fifth_of_train_never_test():
    fit, val = data.load("digits", "fit", augment="shift"), data.load("digits", "val", augment="shift")
    assert (len(fit), len(val)) == (1347 - 269, 269)  # round(0.2 · 1347) = 269
    fit_idx, val_idx = fit.base.indices, val.base.indices
    assert set(fit_idx).isdisjoint(val_idx) and set(fit_idx) | set(val_idx) == set(range(1347))
    assert fit.augment is not None and val.augment is None
    train = data.load("digits", "train")
    assert torch.equal(val[0][0], train.base[val_idx[0]][0] * 1.0)  # the same image, not augmented
    assert data.validation_indices(1347)[1].tolist() == val_idx  # fixed: the same on every call
    test_images = data.load("digits", "test").base.tensors[0]
    val_images = torch.stack([train.base[i][0] for i in val_idx])
    # no held-out image is a test image (digits has no duplicates across its split)
    assert not (val_images.flatten(1)[:, None, :] == test_images.flatten(1)[None, :, :]).all(-1).any()
    with pytest.raises(KdsnnError, match="split"):
        data.load("digits", "holdout")


def test_training_shift_keeps_the_image():
    torch.manual_seed(0)
    train = data.load("digits", "train", augment="shift:pad=1")
    base = train.base[0][0]
    for _ in range(5):
        shifted = train[0][0]
        assert shifted.shape == base.shape
        assert float(shifted.sum()) <= float(base.sum()) + 1e-6  # a crop of a zero-padded shift loses, never adds
    assert torch.equal(data.load("digits", "test")[0][0], data.load("digits", "test").base[0][0])


def test_gaussian_noise_has_the_given_sigma():
    g = torch.Generator().manual_seed(0)
    x = torch.full((64, 1, 16, 16), 0.5)
    y = corruptions.apply(x, "gaussian", 0.05, g)
    assert float((y - x).std()) == pytest.approx(0.05, rel=0.05)


def test_random_noise_replaces_the_given_fraction():
    g = torch.Generator().manual_seed(0)
    x = torch.full((64, 1, 16, 16), 2.0)  # outside [0,1], so replaced pixels are recognizable
    y = corruptions.apply(x, "noise", 0.2, g)
    assert float((y != x).float().mean()) == pytest.approx(0.2, abs=0.01)


def test_background_fills_only_dark_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 8, 8)
    x[:, :, 2:6, 3:5] = 1.0
    y = corruptions.apply(x, "background", 1.0, g)
    assert torch.equal(y[:, :, 2:6, 3:5], x[:, :, 2:6, 3:5])
    assert float(y[:, :, :2].mean()) == pytest.approx(0.5, abs=0.1)


def test_rotation_preserves_mass_of_a_centred_blob():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # the centre pixel is fixed by every rotation about the centre
    y = corruptions.apply(x, "rotation", 1.0, g)
    assert torch.allclose(y[:, :, 4, 4], torch.ones(4, 1))


def test_noisy_evaluation_is_repeatable():
    a = data.load("digits", "test", noise="gaussian:0.1")[3][0]
    b = data.load("digits", "test", noise="gaussian:0.1")[3][0]
    assert torch.equal(a, b)


@pytest.mark.parametrize("spec,msg", [("speckle:0.1", "unknown noise"), ("gaussian:abc", "not a number"),
                                      ("gaussian:-1", ">= 0")])
def test_bad_noise_specs(spec, msg):
    with pytest.raises(KdsnnError, match=msg):
        corruptions.parse(spec)


def test_unknown_dataset():
    with pytest.raises(KdsnnError, match="unknown dataset"):
        data.load("imagenet", "train")


def test_image_bytes_match_to_tensor_for_colour_images():
    """CIFAR keeps [N, H, W, C] numpy bytes: each image comes back as ToTensor gives it."""
    import numpy as np
    from PIL import Image
    from torchvision.transforms import ToTensor

    rgb = np.random.default_rng(0).integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    images = data.ImageBytes(rgb, [2, 0, 1])
    assert len(images) == 3
    for i in range(3):
        x, y = images[i]
        assert x.shape == (3, 5, 4) and torch.equal(x, ToTensor()(Image.fromarray(rgb[i]))) and y == [2, 0, 1][i]
