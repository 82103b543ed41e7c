"""Model sizes measured on the meta device equal the real model's, and absurd ones are refused unbuilt."""
import pytest
import torch

from kdsnn.errors import KdsnnError
from kdsnn.models import build_model
from kdsnn.models.sizing import FLOAT_BYTES, ModelSize, measure, require_fits


def _real_counts(arch: str, shape, classes: int, **kw) -> tuple[int, int]:
    """Parameters + buffers, and the elements every leaf module outputs for one sample, on the CPU."""
    model = build_model(arch, shape, classes, **({**kw, "timesteps": 1} if kw else {})).eval()
    seen = [0]
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda _m, _i, o: seen.__setitem__(0, seen[0] + o.numel())) for m in leaves]
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers()), seen[0]


@pytest.mark.parametrize("arch, shape, kw", [("mnist_cnn", (1, 8, 8), {}),
                                             ("snn_2conv", (1, 8, 8), {"timesteps": 4, "width": 0.25}),
                                             ("snn_resnet14", (3, 16, 16), {"timesteps": 2, "width": 0.25})])
def test_meta_measure_equals_the_real_model(arch, shape, kw):
    size = measure(arch, shape, 10, **kw)
    assert (size.parameters, size.activations) == _real_counts(arch, shape, 10, **kw)


def test_bytes_scale_with_batch_and_steps():
    s = ModelSize(parameters=1000, activations=50)
    assert s.bytes(1, 1, False) == (1000 + 50) * FLOAT_BYTES
    assert s.bytes(8, 4, False) - s.bytes(0, 4, False) == 8 * 4 * 50 * FLOAT_BYTES
    assert s.bytes(2, 3, True) == 1000 * FLOAT_BYTES * 4 + 2 * 3 * 50 * FLOAT_BYTES * 2


def test_too_small_an_input_is_refused_unbuilt():
    with pytest.raises(KdsnnError, match="mnist_cnn cannot take 1×1×1 inputs .*Output size is too small"):
        measure("mnist_cnn", (1, 1, 1), 10)


def test_absurd_sizes_are_refused_unbuilt(monkeypatch):
    monkeypatch.setenv("KDSNN_MEMORY_LIMIT", "1G")
    with pytest.raises(KdsnnError, match=r"99999999999999999999 classes cannot be built"):
        measure("snn_2conv", (1, 8, 8), 99999999999999999999, timesteps=4)
    # 20,490 activations per sample and step (the real model's count, above) × 4 bytes × 256 × 10^8 = 1.86 PB
    with pytest.raises(KdsnnError, match=r"at batch 256 and T = 100000000 would need 1\.86 PB"):
        require_fits("snn_2conv", (1, 8, 8), 10, 256, 10 ** 8, False, "evaluate", timesteps=4, width=1.0)
    require_fits("snn_2conv", (1, 8, 8), 10, 256, 4, False, "evaluate", timesteps=4)  # a real size passes
