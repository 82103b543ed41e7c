"""N-MNIST and DVS128 Gesture read from --data-root in their own layouts, binned to T frames (kdsnn/event_data.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kdsnn import data
from kdsnn.errors import KdsnnError
from tests.helpers import aedat31_file, aedat31_packet, nmnist_bytes, polarity_events


def _nmnist(root, files):
    for (split, digit, name), events in files.items():
        folder = root / "NMNIST" / split / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(nmnist_bytes(events))


def test_nmnist_samples_are_binned_by_hand(tmp_path):
    # digit 3's recording spans t 1000..1399 (t1 = last + 1 = 1400): 2 bins of 200 µs
    _nmnist(tmp_path, {("Test", 3, "00001.bin"): [(4, 5, 1, 1000), (4, 5, 1, 1199), (33, 0, 0, 1200), (0, 33, 1, 1399)],
                       ("Test", 7, "00002.bin"): [(1, 1, 0, 0)],
                       ("Train", 0, "00003.bin"): [(2, 2, 1, 5)]})
    test = data.load("nmnist", "test", str(tmp_path), timesteps=2)
    assert len(test) == 2 and [test[i][1] for i in range(2)] == [3, 7]
    x, y = test[0]
    assert x.shape == (2, 2, 34, 34) and x.dtype == torch.float32 and y == 3
    assert sorted(map(tuple, np.argwhere(x.numpy()))) == [(0, 1, 5, 4), (1, 0, 0, 33), (1, 1, 33, 0)]
    # a batch is time-major, as the student takes it; sample_batch stacks the same way
    xb, yb = next(iter(data.loader(test, 2)))
    assert xb.shape == (2, 2, 2, 34, 34) and yb.tolist() == [3, 7]
    torch.testing.assert_close(xb[:, 0], x)
    xs, ys = data.sample_batch("nmnist", 5, str(tmp_path), timesteps=2)
    torch.testing.assert_close(xs, xb)
    assert data.spec("nmnist").input_shape == (2, 34, 34) and data.spec("nmnist").classes == 10


def test_nmnist_in_the_unpacked_layout_and_its_validation_split(tmp_path):
    for i in range(10):  # Train/<digit>/*.bin directly under the root, as the data set's zip unpacks
        folder = tmp_path / "Train" / str(i % 2)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.bin").write_bytes(nmnist_bytes([(i, i, 1, 10 * i)]))
    fit = data.load("nmnist", "fit", str(tmp_path), timesteps=3)
    val = data.load("nmnist", "val", str(tmp_path), timesteps=3)
    assert len(fit) == 8 and len(val) == 2 and data.is_time_major(fit)


def _gesture(root, trials, split="test"):
    folder = root / "DvsGesture"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"trials_to_{split}.txt").write_text("".join(f"{name}\n" for name in trials))
    for name, (events, labels) in trials.items():
        (folder / name).write_bytes(aedat31_file([aedat31_packet(0, 8, bytes(8), 1),
                                                  aedat31_packet(1, 8, polarity_events(events), len(events))]))
        rows = "".join(f"{c},{s},{e}\n" for c, s, e in labels)
        (folder / name.replace(".aedat", "_labels.csv")).write_text("class,startTime_usec,endTime_usec\n" + rows)


def test_dvsgesture_gestures_are_the_labelled_windows(tmp_path):
    events = [(127, 127, 1, 100), (5, 6, 0, 149), (64, 0, 1, 150), (9, 9, 1, 199), (1, 2, 0, 200), (3, 3, 1, 320)]
    _gesture(tmp_path, {"user24_led.aedat": (events, [(2, 100, 200), (11, 200, 400)])})
    test = data.load("dvsgesture", "test", str(tmp_path), timesteps=2)
    assert len(test) == 2
    (a, la), (b, lb) = test[0], test[1]
    assert (la, lb) == (1, 10) and a.shape == (2, 2, 128, 128)  # classes 1-11 become 0-10
    # gesture 1: [100, 200) in bins of 50 µs; gesture 2: [200, 400) in bins of 100 µs
    assert sorted(map(tuple, np.argwhere(a.numpy()))) == [(0, 0, 6, 5), (0, 1, 127, 127), (1, 1, 0, 64), (1, 1, 9, 9)]
    assert sorted(map(tuple, np.argwhere(b.numpy()))) == [(0, 0, 2, 1), (1, 1, 3, 3)]
    pooled = data.load("dvsgesture:32", "test", str(tmp_path), timesteps=2)[0][0]
    assert pooled.shape == (2, 2, 32, 32)  # Speck's DVS pooling 4: x // 4, y // 4
    assert sorted(map(tuple, np.argwhere(pooled.numpy()))) == [(0, 0, 1, 1), (0, 1, 31, 31), (1, 1, 0, 16),
                                                               (1, 1, 2, 2)]
    assert data.spec("dvsgesture:32").input_shape == (2, 32, 32) and data.spec("dvsgesture").classes == 11


@pytest.mark.parametrize("case, message", [
    ("no root", "needs --data-root"),
    ("empty root", "not found under"),
    ("no T", "number of steps is needed"),
    ("noise", "drop --noise"),
    ("no labels", "has no label file"),
    ("bad class", "classes are 1-11"),
    ("missing trial", "which is not in"),
])
def test_event_data_refusals(tmp_path, case, message):
    name, root, kwargs = "dvsgesture", str(tmp_path), {"timesteps": 2}
    if case == "no root":
        root = None
    elif case == "no T":
        kwargs = {}
    elif case == "noise":
        kwargs["noise"] = "gaussian:0.1"
    if case in ("no labels", "bad class", "missing trial", "noise", "no T"):
        _gesture(tmp_path, {"user01_natural.aedat": ([(1, 1, 1, 5)], [(12 if case == "bad class" else 1, 0, 10)])})
        if case == "no labels":
            (tmp_path / "DvsGesture" / "user01_natural_labels.csv").unlink()
        if case == "missing trial":
            (tmp_path / "DvsGesture" / "user01_natural.aedat").unlink()
    with pytest.raises(KdsnnError, match=message):
        data.load(name, "test", root, **kwargs)
