"""Event-camera recordings as Speck users have them, read into one event array and binned into frames.

Two documented binary formats, read here rather than through ``tonic`` (1.7.0 pulls librosa,
importRosbag and expelliarmus into the environment for two short readers, and its AEDAT 3.1 reader
takes every packet as 8-byte polarity events without looking at the packet's event type or size):

- **N-MNIST** (Orchard et al. 2015, the data set's README): 5 bytes per event, big-endian bit fields:
  byte 0 x, byte 1 y, byte 2 bit 7 polarity (1 = ON), bits 6-0 timestamp bits 22-16, bytes 3-4
  timestamp bits 15-0, in microseconds. The ATIS sensor crop is 34×34.
- **AEDAT 3.1** (iniVation's format, libcaer's ``caer_event_packet_header``; DVS128 Gesture): ASCII
  header lines from ``#!AER-DAT3.1`` to ``#!END-HEADER``, then packets. A packet is a 28-byte
  little-endian header (int16 eventType, int16 eventSource, int32 eventSize, eventTSOffset,
  eventTSOverflow, eventCapacity, eventNumber, eventValid) followed by eventCapacity × eventSize
  bytes. Polarity events (type 1, 8 bytes): uint32 data (bit 0 valid, bit 1 polarity, bits 2-16 y,
  bits 17-31 x) and int32 timestamp (µs; the full time is ``eventTSOverflow << 31 | timestamp``).
  Packets of other types (special events, frames, IMU samples) are skipped by their own size.

Events are a structured array with fields ``t`` (int64 µs), ``x``, ``y`` and ``p`` (0 = OFF, 1 = ON).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import KdsnnError

EVENT = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])
NMNIST_BYTES = 5
AEDAT31_MAGIC = b"#!AER-DAT3.1"
AEDAT_END = b"#!END-HEADER"
PACKET = np.dtype([("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("ts_offset", "<i4"),
                   ("ts_overflow", "<i4"), ("capacity", "<i4"), ("number", "<i4"), ("valid", "<i4")])
POLARITY_TYPE = 1
POLARITY_EVENT = np.dtype([("data", "<u4"), ("ts", "<i4")])


def read_nmnist(path: str | Path) -> np.ndarray:
    """The events of one N-MNIST ``.bin`` file."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % NMNIST_BYTES:
        raise KdsnnError(f"N-MNIST file {path} is {raw.size} bytes, not a multiple of {NMNIST_BYTES} (5 bytes per "
                         "event): it is truncated or not an N-MNIST .bin file; replace it with the original")
    b = raw.reshape(-1, NMNIST_BYTES).astype(np.int64)
    ev = np.empty(len(b), EVENT)
    ev["x"], ev["y"] = b[:, 0], b[:, 1]
    ev["p"] = b[:, 2] >> 7
    ev["t"] = ((b[:, 2] & 0x7F) << 16) | (b[:, 3] << 8) | b[:, 4]
    return ev


def read_aedat31(path: str | Path) -> np.ndarray:
    """The valid polarity events of one AEDAT 3.1 file, in file order."""
    buf = Path(path).read_bytes()
    fix = "replace it with the original recording (AEDAT 3.1, as DVS128 Gesture ships it)"
    if not buf.startswith(AEDAT31_MAGIC):
        first = buf[:20].split(b"\n")[0].decode("ascii", "replace").strip()
        raise KdsnnError(f"{path} is not an AEDAT 3.1 file (it starts with {first!r}, not '#!AER-DAT3.1'); {fix}")
    end = buf.find(AEDAT_END)
    if end < 0:
        raise KdsnnError(f"{path}: its AEDAT header never ends ('#!END-HEADER' is missing); {fix}")
    pos = buf.index(b"\n", end) + 1
    chunks = []
    while pos < len(buf):
        if pos + PACKET.itemsize > len(buf):
            raise KdsnnError(f"{path} is truncated: a packet header at byte {pos} is cut off; {fix}")
        head = np.frombuffer(buf, PACKET, 1, pos)[0]
        size, capacity, number = int(head["size"]), int(head["capacity"]), int(head["number"])
        if size <= 0 or capacity < 0 or not 0 <= number <= capacity:
            raise KdsnnError(f"{path}: the packet at byte {pos} has event size {size}, capacity {capacity} and "
                             f"{number} events, which no AEDAT 3.1 writer produces; {fix}")
        body = pos + PACKET.itemsize
        pos = body + capacity * size
        if pos > len(buf):
            raise KdsnnError(f"{path} is truncated: the packet at byte {body - PACKET.itemsize} promises "
                             f"{capacity * size} bytes of events, {len(buf) - body} remain; {fix}")
        if int(head["type"]) != POLARITY_TYPE:
            continue
        if size != POLARITY_EVENT.itemsize:
            raise KdsnnError(f"{path}: polarity events of {size} bytes at byte {body}; AEDAT 3.1 polarity events "
                             f"are {POLARITY_EVENT.itemsize}; {fix}")
        raw = np.frombuffer(buf, POLARITY_EVENT, number, body)
        raw = raw[(raw["data"] & 1) == 1]
        ev = np.empty(len(raw), EVENT)
        data = raw["data"].astype(np.int64)
        ev["p"] = (data >> 1) & 1
        ev["y"] = (data >> 2) & 0x7FFF
        ev["x"] = (data >> 17) & 0x7FFF
        ev["t"] = (int(head["ts_overflow"]) << 31) | raw["ts"].astype(np.int64)
        chunks.append(ev)
    return np.concatenate(chunks) if chunks else np.empty(0, EVENT)


def bin_events(events: np.ndarray, timesteps: int, size: tuple[int, int], window: tuple[int, int] | None = None,
               pool: int = 1, source: str = "recording") -> np.ndarray:
    """``[T, 2, H, W]`` uint8 frames of ``events``: the time window ``[t0, t1)`` (default: first event to
    last event + 1 µs) cut into ``timesteps`` equal bins, event at ``t`` into bin ``(t − t0)·T // (t1 − t0)``;
    pixel ``(x // pool, y // pool)`` of channel ``p`` is 1 in a bin that holds at least one of its events
    (a spike per step, as kdsnn's spiking input is: several events of one pixel and polarity in one bin
    merge). ``size`` is the sensor's (H, W) before ``pool``; events outside it are refused."""
    h, w = size[0] // pool, size[1] // pool
    frames = np.zeros((timesteps, 2, h, w), np.uint8)
    if window is not None:
        events = events[(events["t"] >= window[0]) & (events["t"] < window[1])]
    if len(events) == 0:
        return frames
    t0, t1 = window if window is not None else (int(events["t"].min()), int(events["t"].max()) + 1)
    outside = (events["x"] < 0) | (events["x"] >= size[1]) | (events["y"] < 0) | (events["y"] >= size[0])
    if outside.any():
        e = events[np.argmax(outside)]
        raise KdsnnError(f"{source} holds an event at x={e['x']}, y={e['y']}, outside the {size[1]}×{size[0]} sensor "
                         "this data set was recorded with: it is damaged or from another data set")
    k = ((events["t"] - t0) * timesteps) // max(t1 - t0, 1)
    frames[k, events["p"].astype(np.int64), events["y"] // pool, events["x"] // pool] = 1
    return frames
