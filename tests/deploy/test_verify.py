"""verify's comparison rule: integer graphs exactly, float readouts within a stated tolerance."""
import nir
import numpy as np
import torch

from kdsnn.deploy.verify import FLOAT_ATOL, _logit_check, comparison_rule, verify_graph


def test_float_readouts_agree_within_the_stated_tolerance():
    ref = torch.tensor([[2.0, -1.0], [0.5, 0.25]], dtype=torch.float64)
    close = ref.numpy() + 1.4e-7  # onnxruntime's float32 sums in another order
    check = _logit_check("ONNX", "runtime", close, ref, exact=False, meta={})
    assert check.status == "agree"
    assert check.detail == f"max |Δ logits| = 1.4e-07 (within the float tolerance {FLOAT_ATOL * 2:.3g})"
    far = ref.numpy() + 1e-3
    assert _logit_check("ONNX", "runtime", far, ref, exact=False, meta={}).status == "DIFFER"


def test_integer_graphs_are_exact():
    ref = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    meta = {"integer": True, "readout": "spike", "output_scale": 1.0}
    assert _logit_check("x", "y", ref.numpy(), ref, exact=True, meta=meta).status == "agree"
    assert _logit_check("x", "y", ref.numpy() + [[1.0, 0.0]], ref, exact=True, meta=meta).status == "DIFFER"


def test_a_float_li_readout_verifies(tmp_path):
    rng = np.random.default_rng(0)
    nodes = {"input": nir.Input(input_type={"input": np.array([16])}),
             "fc1": nir.Affine(weight=rng.normal(0, 0.7, (12, 16)), bias=rng.normal(0, 0.1, 12)),
             "n1": nir.LIF(tau=np.full(12, 8.0), r=np.full(12, 8.0), v_leak=np.zeros(12),
                           v_threshold=np.ones(12), v_reset=np.zeros(12)),
             "fc2": nir.Affine(weight=rng.normal(0, 0.37, (6, 12)), bias=rng.normal(0, 0.13, 6)),
             "li": nir.LI(tau=np.full(6, 3.0), r=np.full(6, 3.0), v_leak=np.zeros(6)),
             "output": nir.Output(output_type={"output": np.array([6])})}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "fc1"), ("fc1", "n1"), ("n1", "fc2"), ("fc2", "li"),
                                             ("li", "output")], type_check=False)
    x = torch.bernoulli(torch.full((8, 16, 16), 0.3), generator=torch.Generator().manual_seed(0))
    checks = {c.backend: c for c in verify_graph(graph, x, tmp_path)}
    for name in ("reference simulator", "ONNX (onnxruntime)"):
        c = checks[name]
        assert c.status == "agree", c  # float32/float64 rounding of the readout is not a disagreement
        assert "within the float tolerance" in c.detail or "identical logits" in c.detail
    assert "float readouts agree within 0.0001" in comparison_rule(False)
