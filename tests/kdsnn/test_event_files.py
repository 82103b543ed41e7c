"""The event readers and the binning, against events worked out by hand from the formats' specs."""
from __future__ import annotations

import numpy as np
import pytest

from kdsnn.errors import KdsnnError
from kdsnn.event_files import EVENT, bin_events, read_aedat31, read_nmnist
from tests.helpers import aedat31_file, aedat31_packet, nmnist_bytes, polarity_events


def _rows(ev: np.ndarray) -> list[tuple[int, int, int, int]]:
    return [(int(e["x"]), int(e["y"]), int(e["p"]), int(e["t"])) for e in ev]


def test_nmnist_bit_fields_read_by_hand(tmp_path):
    # byte 0 x = 5, byte 1 y = 7, byte 2 = ON bit (0x80) | t bits 22-16 (0x01), bytes 3-4 t bits 15-0 (0x0203)
    # second event: x 33, y 0, OFF, t = 0x7FFFFF (the largest 23-bit time) = 8388607 µs
    (tmp_path / "a.bin").write_bytes(bytes([5, 7, 0x81, 0x02, 0x03, 33, 0, 0x7F, 0xFF, 0xFF]))
    assert _rows(read_nmnist(tmp_path / "a.bin")) == [(5, 7, 1, 0x010203), (33, 0, 0, 8388607)]
    assert 0x010203 == 66051


def test_nmnist_writer_and_reader_agree(tmp_path):
    events = [(0, 0, 1, 0), (33, 33, 0, 123456), (17, 2, 1, 300000)]
    (tmp_path / "b.bin").write_bytes(nmnist_bytes(events))
    assert _rows(read_nmnist(tmp_path / "b.bin")) == events


def test_nmnist_truncated_file_is_refused(tmp_path):
    (tmp_path / "c.bin").write_bytes(bytes(7))
    with pytest.raises(KdsnnError, match="7 bytes, not a multiple of 5"):
        read_nmnist(tmp_path / "c.bin")


def test_aedat31_reads_polarity_packets_only(tmp_path):
    # a special-event packet (type 0) and an IMU6 packet (type 3, 36-byte events) whose bytes would read as
    # polarity events if taken as 8-byte events; then two polarity packets, the second after a timestamp overflow
    special = aedat31_packet(0, 8, bytes([0xFF] * 8), 1)
    imu = aedat31_packet(3, 36, bytes(range(36)) * 2, 2)
    first = aedat31_packet(1, 8, polarity_events([(127, 0, 1, 10), (3, 4, 0, 20), (9, 9, 1, 25)],
                                                 valid=[True, True, False]), 3, capacity=5)
    second = aedat31_packet(1, 8, polarity_events([(0, 127, 0, 5)]), 1, overflow=1)
    (tmp_path / "g.aedat").write_bytes(aedat31_file([special, imu, first, second]))
    # x in bits 17-31, y in bits 2-16, polarity bit 1; the invalid event (bit 0 clear) is dropped; unused capacity
    # (2 slots of the first packet) is skipped; after the overflow, t = 1 << 31 | 5
    assert _rows(read_aedat31(tmp_path / "g.aedat")) == [(127, 0, 1, 10), (3, 4, 0, 20), (0, 127, 0, 2 ** 31 + 5)]


def test_aedat31_data_word_by_hand(tmp_path):
    # data word 127 << 17 | 0x0207: bit 0 valid, bit 1 polarity (1), bits 2-16 = 0x0206 >> 2 = 129, bits 17-31 = 127
    word = (127 << 17) | 0x0206 | 1
    packet = aedat31_packet(1, 8, word.to_bytes(4, "little") + (1000).to_bytes(4, "little"), 1)
    (tmp_path / "w.aedat").write_bytes(aedat31_file([packet]))
    assert _rows(read_aedat31(tmp_path / "w.aedat")) == [(127, 129, 1, 1000)]


@pytest.mark.parametrize("content, message", [
    (b"#!AER-DAT2.0\r\n", "not an AEDAT 3.1 file"),
    (b"#!AER-DAT3.1\r\n#no end\r\n", "never ends"),
    (aedat31_file([b"\x01\x00\x08\x00"]), "packet header at byte .* is cut off"),
    (aedat31_file([aedat31_packet(1, 8, polarity_events([(1, 1, 1, 1)]), 1)[:-3]]), "truncated: the packet"),
    (aedat31_file([aedat31_packet(1, 12, bytes(12), 1)]), "polarity events of 12 bytes"),
])
def test_aedat31_damaged_files_are_refused(tmp_path, content, message):
    (tmp_path / "bad.aedat").write_bytes(content)
    with pytest.raises(KdsnnError, match=message):
        read_aedat31(tmp_path / "bad.aedat")


def _events(rows):
    ev = np.empty(len(rows), EVENT)
    for i, (x, y, p, t) in enumerate(rows):
        ev[i] = (t, x, y, p)
    return ev


def test_binning_by_hand():
    # window [0, 400) in 4 bins of 100 µs: t 0 and 99 → bin 0, 100 → 1, 299 → 2, 399 → 3 (the last event ends it)
    ev = _events([(1, 2, 1, 0), (1, 2, 1, 99), (3, 0, 0, 100), (0, 3, 1, 299), (2, 2, 0, 399)])
    frames = bin_events(ev, 4, (4, 4))
    assert frames.shape == (4, 2, 4, 4) and frames.dtype == np.uint8
    expected = np.zeros((4, 2, 4, 4), np.uint8)
    expected[0, 1, 2, 1] = 1  # two ON events of pixel (x 1, y 2) in bin 0: one spike
    expected[1, 0, 0, 3] = 1
    expected[2, 1, 3, 0] = 1
    expected[3, 0, 2, 2] = 1
    np.testing.assert_array_equal(frames, expected)


def test_binning_window_and_pooling():
    # window [1000, 1200) in 2 bins; an event before and one at the window's end are left out;
    # pooling 4 maps x 127 → 31, y 5 → 1
    ev = _events([(127, 5, 1, 999), (127, 5, 1, 1000), (8, 8, 0, 1199), (0, 0, 1, 1200)])
    frames = bin_events(ev, 2, (128, 128), window=(1000, 1200), pool=4)
    assert frames.shape == (2, 2, 32, 32)
    assert sorted(map(tuple, np.argwhere(frames))) == [(0, 1, 1, 31), (1, 0, 2, 2)]


def test_binning_refuses_events_outside_the_sensor():
    with pytest.raises(KdsnnError, match="x=34, y=0, outside the 34×34 sensor"):
        bin_events(_events([(34, 0, 1, 0)]), 2, (34, 34), source="N-MNIST file f.bin")
