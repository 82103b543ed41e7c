"""Training augmentation: the spec syntax, what each transform does to an image (worked out by
hand), and that only training splits are augmented."""
import pytest
import torch

from kdsnn import augment, data
from kdsnn.errors import KdsnnError


def _dot(h: int = 12, w: int = 12, at: tuple[int, int] = (6, 5)) -> torch.Tensor:
    x = torch.zeros(1, h, w)
    x[0, at[0], at[1]] = 1.0
    return x


def test_spec_syntax_fills_defaults_and_reads_overrides():
    assert augment.parse("affine") == ("affine", {"degrees": 10.0, "translate": 0.1, "scale": 0.1})
    assert augment.parse("affine:degrees=5, scale=0") == ("affine", {"degrees": 5.0, "translate": 0.1, "scale": 0.0})
    assert augment.parse("shift:pad=2") == ("shift", {"pad": 2.0})
    assert augment.parse("none") == ("none", {})
    assert augment.build("none", (8, 8)) is None and augment.build(None, (8, 8)) is None


@pytest.mark.parametrize("spec, message", [
    ("rotate", "unknown augmentation 'rotate'"),
    ("affine:degree=5", "cannot read 'degree=5'"),
    ("affine:degrees", "cannot read 'degrees'"),
    ("affine:degrees=ten", "degrees must be a number"),
    ("affine:translate=2", "outside [0, 1]"),
    ("shift:pad=1.5", "whole number of pixels"),
])
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(KdsnnError, match=message.replace("[", r"\[").replace("]", r"\]")):
        augment.build(spec, (8, 8))


def test_crop_flip_is_refused_for_digits():
    with pytest.raises(KdsnnError, match="mirrors images"):
        data.load("digits", "train", augment="crop-flip")


def test_shift_moves_the_image_by_at_most_pad_pixels():
    torch.manual_seed(0)
    shift = augment.build("shift:pad=2", (12, 12))
    moves = set()
    for _ in range(200):
        y = shift(_dot())
        assert float(y.sum()) == 1.0  # the dot lies 5+ pixels from every border: it is never cropped away
        r, c = (int(v) for v in torch.nonzero(y[0])[0])
        moves.add((r - 6, c - 5))
    # a random crop of the image padded by 2 is a shift by −2..2 in each direction: all 25 occur in 200 draws
    assert moves == {(dr, dc) for dr in range(-2, 3) for dc in range(-2, 3)}


def test_affine_translation_alone_is_a_whole_pixel_roll():
    torch.manual_seed(1)
    move = augment.build("affine:degrees=0,translate=0.25,scale=0", (12, 12))
    x = _dot()
    seen = set()
    for _ in range(100):
        y = move(x)
        # torchvision rounds the translation to whole pixels (≤ 0.25 · 12 = 3): the image rolled, values exact
        matches = [(dr, dc) for dr in range(-3, 4) for dc in range(-3, 4)
                   if torch.equal(y, torch.roll(x, (dr, dc), (1, 2)))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 10


def test_affine_with_no_motion_is_the_identity_and_rotation_keeps_the_centre():
    x = torch.rand(1, 9, 9)
    assert torch.allclose(augment.build("affine:degrees=0,translate=0,scale=0", (9, 9))(x), x)
    torch.manual_seed(2)
    rotate = augment.build("affine:degrees=45,translate=0,scale=0", (9, 9))
    centre = _dot(9, 9, (4, 4))
    for _ in range(10):  # rotation about the image centre leaves the centre pixel where it is
        assert float(rotate(centre)[0, 4, 4]) == pytest.approx(1.0)


def test_only_training_splits_are_augmented():
    torch.manual_seed(0)
    train = data.load("digits", "train", augment="affine")
    assert not torch.equal(train[0][0], train[0][0])  # two draws of one training image differ
    for split in ("test", "val"):
        held_out = data.load("digits", split, augment="affine")
        assert held_out.augment is None
        assert torch.equal(held_out[0][0], held_out[0][0])
        assert torch.equal(held_out[0][0], held_out.base[0][0])  # normalization is the identity for digits
    fit = data.load("digits", "fit", augment="affine")
    assert fit.augment is not None and not torch.equal(fit[0][0], fit[0][0])


def test_a_transform_runs_on_one_thread_and_restores_the_count():
    threads = torch.get_num_threads()
    seen = []
    wrapped = augment._SingleThreaded(lambda x: seen.append(torch.get_num_threads()) or x)
    wrapped(torch.zeros(1))
    assert seen == [1] and torch.get_num_threads() == threads
