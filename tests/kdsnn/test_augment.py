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
    plain = {"width": 0.0, "gain": 0.0}
    assert augment.parse("affine") == ("affine", {"degrees": 10.0, "translate": 0.1, "scale": 0.1} | plain)
    assert augment.parse("affine:degrees=5, scale=0") == ("affine", {"degrees": 5.0, "translate": 0.1, "scale": 0.0}
                                                          | plain)
    assert augment.parse("affine:width=0.5,gain=0.2")[1] == {"degrees": 10.0, "translate": 0.1, "scale": 0.1,
                                                              "width": 0.5, "gain": 0.2}
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
    # an 8×8 digit often comes back unchanged from one small nearest-pixel affine: among 10 draws some differ
    draws = [fit[0][0] for _ in range(10)]
    assert fit.augment is not None and any(not torch.equal(draws[0], d) for d in draws[1:])


def test_a_transform_runs_on_one_thread_and_restores_the_count():
    threads = torch.get_num_threads()
    seen = []
    wrapped = augment._SingleThreaded(lambda x: seen.append(torch.get_num_threads()) or x)
    wrapped(torch.zeros(1))
    assert seen == [1] and torch.get_num_threads() == threads


@pytest.mark.parametrize("angle, tx, ty, scale", [
    (0.0, 0, 0, 1.0), (-10.0, -3, 2, 0.9), (7.2, 2, -2, 1.07), (45.0, -3, 0, 0.9), (90.0, 0, 3, 0.9),
    (0.0, 0, 0, 0.9),  # every other sample point falls exactly between two pixels: nearest must break ties alike
    (-3.7, 1, 1, 1.1),
])
def test_batched_affine_is_torchvisions_affine_on_the_same_parameters(angle, tx, ty, scale):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tvf

    torch.manual_seed(3)
    for shape in [(1, 28, 28), (3, 20, 32)]:  # MNIST, and a non-square colour image
        x = torch.rand(2, *shape)
        want = torch.stack([tvf.affine(img, angle, [tx, ty], scale, [0.0, 0.0], interpolation=InterpolationMode.NEAREST,
                                       fill=[0.0] * shape[0]) for img in x])
        f64 = torch.float64
        got = augment.apply_affine(x, torch.tensor([angle] * 2, dtype=f64), torch.tensor([[tx, ty]] * 2, dtype=f64),
                                   torch.tensor([scale] * 2, dtype=f64))
        assert torch.equal(got, want)


def test_each_image_of_a_batch_gets_its_own_parameters():
    x = _dot(12, 12, (6, 5)).expand(64, 1, 12, 12).contiguous()
    torch.manual_seed(4)
    angle, shift, scale = augment.BatchAffine(0, 0.25, 0).draw(64, (12, 12))
    torch.manual_seed(4)
    y = augment.build("affine:degrees=0,translate=0.25,scale=0", (12, 12))(x)
    for img, (dx, dy) in zip(y, shift.long().tolist(), strict=True):  # a pure shift: the dot moved by (dx, dy)
        assert torch.equal(img, torch.roll(x[0], (dy, dx), (1, 2)))
    assert len({tuple(s) for s in shift.tolist()}) > 20 and torch.all(angle == 0) and torch.all(scale == 1)


def test_batched_affine_draws_torchvisions_distribution():
    torch.manual_seed(5)
    angle, shift, scale = augment.BatchAffine(10, 0.1, 0.1).draw(40_000, (28, 28))
    # RandomAffine.get_params: angle ~ U(-10, 10), scale ~ U(0.9, 1.1), shift = round(U(-2.8, 2.8)) in whole pixels
    assert angle.abs().max() <= 10 and angle.abs().mean() == pytest.approx(5.0, abs=0.1)
    assert (scale - 1).abs().max() <= 0.1 and (scale - 1).abs().mean() == pytest.approx(0.05, abs=0.002)
    assert torch.equal(shift, shift.round())
    for k in range(-3, 4):  # P(round(u) = k) for u ~ U(-2.8, 2.8): 1/5.6 for |k| ≤ 2, 0.3/5.6 for |k| = 3
        want = (0.3 if abs(k) == 3 else 1.0) / 5.6
        for axis in (0, 1):
            assert float((shift[:, axis] == k).double().mean()) == pytest.approx(want, abs=0.01)


def test_a_batch_from_the_loader_is_the_batch_warped_once_then_normalized():
    ds = data.load("fake:1x12x12:3", "train", augment="affine:degrees=30")
    raw = torch.stack([ds.base[i][0] for i in (4, 1, 7)])
    torch.manual_seed(6)
    params = ds.augment.draw(3, (12, 12))
    torch.manual_seed(6)
    batch = ds.__getitems__([4, 1, 7])
    want = (augment.apply_affine(raw, *params) - ds.mean) / ds.std
    assert torch.equal(torch.stack([x for x, _ in batch]), want)
    assert [y for _, y in batch] == [int(ds.base[i][1]) for i in (4, 1, 7)]


def test_stroke_width_dilates_and_erodes_by_hand():
    # a dot of 1 on 0: s = 1 grows it to its 3×3 block, s = 0.5 to a block of 0.5 around a 1; a 3×3 block
    # of 1 eroded with s = 1 keeps only its centre, with s = 0.5 its border drops to 0.5; s = 0 changes nothing
    dot = _dot(7, 7, (3, 3)).unsqueeze(0)
    block = torch.zeros(1, 1, 7, 7)
    block[..., 2:5, 2:5] = 1.0
    grown = augment.apply_stroke(torch.cat([dot, dot, dot]), torch.tensor([1.0, 0.5, 0.0]))
    want = torch.zeros(3, 1, 7, 7)
    want[0, 0, 2:5, 2:5] = 1.0
    want[1, 0, 2:5, 2:5] = 0.5
    want[1:, 0, 3, 3] = 1.0
    assert torch.equal(grown, want)
    thin = augment.apply_stroke(torch.cat([block, block]), torch.tensor([-1.0, -0.5]))
    want = torch.zeros(2, 1, 7, 7)
    want[0, 0, 3, 3] = 1.0
    want[1, 0, 2:5, 2:5] = 0.5
    want[1, 0, 3, 3] = 1.0
    assert torch.equal(thin, want)


def test_width_and_gain_off_draw_nothing_and_on_stay_in_range():
    # with width = gain = 0 the affine transform draws exactly what it drew before they existed (seeded
    # runs and resumed runs see the same images); on, the images stay in [0, 1] and change
    x = torch.rand(16, 1, 28, 28)
    torch.manual_seed(3)
    a = augment.BatchAffine(10, 0.1, 0.1)(x)
    after_a = torch.rand(1)
    torch.manual_seed(3)
    b = augment.build("affine", (28, 28))(x)
    assert torch.equal(a, b) and torch.equal(torch.rand(1), after_a)
    torch.manual_seed(3)
    c = augment.build("affine:width=0.5,gain=0.3", (28, 28))(x)
    assert c.min() >= 0 and c.max() <= 1 and not torch.equal(c, a)
    torch.manual_seed(3)
    d = augment.build("affine:degrees=0,translate=0,scale=0,gain=0.5", (28, 28))(x)
    ratio = d / x.clamp(min=1e-6)
    unclipped = d < 1
    per_image = [ratio[i][unclipped[i]] for i in range(len(x))]  # one gain per image, within 1 ± 0.5
    assert all(torch.allclose(r, r[0], rtol=1e-4) and 0.5 <= float(r[0]) <= 1.5 for r in per_image)
