"""The reference simulator on a recurrent network: time against SynOps (does cost still follow events?).

An integer IF network: Bernoulli spike input (N_in channels) → Affine → IF population with an all-to-all
recurrent synapse (its spikes delivered at the next step, issue 15) → Affine → 10 IF outputs. Random integer
weights (seeded), no bias; the input rate sets the activity of every layer. For each rate: the simulator's
time per inference (``kdsnn.deploy.simulator.simulate``, plan built once beforehand, general path: the fast
path leaves recurrent graphs to it), its SynOps per inference (the recurrent synapse's share beside), and a
least-squares fit of time against SynOps (R²). The spikes are checked against the graph runtime at every rate.
``--delay D`` puts a NIR ``Delay`` of D steps on the recurrent edge (hidden → Delay → rec → hidden) and times
both networks side by side at every rate (its own section): the delayed events wait in a ring, cost ∝ events.

    .venv/bin/python bench/recurrent.py [--inputs 256] [--hidden 512] [--timesteps 16] [--batch 32]
        [--rates 0.01 0.02 0.05 0.1 0.2 0.3] [--repeats 5] [--delay D] [--write docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nir
import numpy as np
import torch

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._doc import replace_section  # noqa: E402
from bench._timing import fit_line, timed  # noqa: E402
from kdsnn.deploy.simulator import Plan, simulate  # noqa: E402
from kdsnn.export.graph import set_meta  # noqa: E402
from kdsnn.export.runtime import GraphSNN  # noqa: E402


def build_graph(n_in: int, hidden: int, timesteps: int, seed: int = 0, delay: int = 0) -> nir.NIRGraph:
    """The integer recurrent IF network (weights in [-7, 7], thresholds chosen for moderate activity); ``delay``:
    a Delay of that many steps on the recurrent edge."""
    rng = np.random.default_rng(seed)

    def if_(n: int, theta: float) -> nir.IF:
        return nir.IF(r=np.ones(n), v_threshold=np.full(n, theta), v_reset=np.zeros(n))

    nodes = {"input": nir.Input(np.array([n_in])), "fc1": nir.Linear(rng.integers(-3, 8, (hidden, n_in)).astype(float)),
             "hidden": if_(hidden, 40.0), "rec": nir.Linear(rng.integers(-7, 6, (hidden, hidden)).astype(float)),
             "fc2": nir.Linear(rng.integers(-5, 8, (10, hidden)).astype(float)), "out": if_(10, 60.0),
             "output": nir.Output(np.array([10]))}
    edges = [("input", "fc1"), ("fc1", "hidden"), ("hidden", "rec"), ("rec", "hidden"), ("hidden", "fc2"),
             ("fc2", "out"), ("out", "output")]
    if delay:
        nodes["wait"] = nir.Delay(np.full(hidden, float(delay)))
        edges = [e for e in edges if e != ("hidden", "rec")] + [("hidden", "wait"), ("wait", "rec")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    set_meta(g, {"integer": True, "timesteps": timesteps, "encoding": "bernoulli"})
    return g


def _measure(g: nir.NIRGraph, x: torch.Tensor, repeats: int, batch: int) -> tuple[float, float, float, list, bool]:
    """(SynOps, recurrent SynOps, seconds per inference, firing % of hidden and out, spikes equal the runtime's)."""
    plan = Plan(g)
    res = simulate(plan, x)
    ref = GraphSNN(g).run(x)
    same = all(torch.equal(res.spikes[n], ref.outputs[n].to(res.spikes[n].dtype)) for n in ("hidden", "out"))
    sec = timed(lambda: simulate(plan, x), repeats) / batch
    fire = [round(100 * res.neurons[n].firing_rate, 1) for n in ("hidden", "out")]
    return (sum(st.synops for st in res.layers.values()) / batch, res.layers["rec"].synops / batch, sec, fire, same)


def _command(a: argparse.Namespace) -> str:
    """The command line that reproduces this run (for the section it writes)."""
    rates = " ".join(f"{r:g}" for r in a.rates)
    delay = f" --delay {a.delay}" if a.delay else ""
    return (f".venv/bin/python bench/recurrent.py --inputs {a.inputs} --hidden {a.hidden} --timesteps {a.timesteps} "
            f"--batch {a.batch} --rates {rates} --repeats {a.repeats}{delay} --write {a.write}")


def delayed(a: argparse.Namespace) -> None:
    """The network without and with a Delay of ``a.delay`` steps on its recurrent edge, side by side."""
    plain, slow = build_graph(a.inputs, a.hidden, a.timesteps), build_graph(a.inputs, a.hidden, a.timesteps,
                                                                            delay=a.delay)
    assert Plan(slow).delays["rec"].max() == a.delay
    rows = []
    for rate in a.rates:
        x = (torch.rand((a.timesteps, a.batch, a.inputs), generator=torch.Generator().manual_seed(1)) < rate).double()
        got = [_measure(g, x, a.repeats, a.batch) for g in (plain, slow)]
        rows.append((rate, got))
        print(f"rate {rate:.2f}: " + "; ".join(f"{name}: {syn:,.0f} SynOps ({rec:,.0f} recurrent), {sec * 1e3:.3f} "
                                              f"ms/inf, runtime's spikes: {same}"
                                              for name, (syn, rec, sec, _, same) in zip(("plain", "delayed"), got,
                                                                                         strict=True)))
    icpt, slope, r2 = fit_line([g[1][0] for _, g in rows], [g[1][2] for _, g in rows])
    print(f"delayed: time ≈ {icpt * 1e3:.3f} ms + {slope * 1e9:.2f} ns × SynOps, R² = {r2:.4f}")
    if a.write:
        cmd = _command(a)
        lines = [f"Command: `{cmd}`", "",
                 f"The network of the section above, and the same with a NIR `Delay` of {a.delay} steps on its "
                 f"recurrent edge (hidden → Delay → rec: the feedback arrives {a.delay + 1} steps after the spike), "
                 f"timed side by side on the same inputs (best of {a.repeats} runs, batch {a.batch}, 2 threads at "
                 "most). Spikes equal the graph runtime's at every rate, for both.", "",
                 "| input rate | SynOps / inf. (plain) | SynOps / inf. (delayed) | of which recurrent (delayed) "
                 "| ms / inf. (plain) | ms / inf. (delayed) | ns / SynOp (plain, delayed) |",
                 "|---|---|---|---|---|---|---|"]
        for rate, ((s0, _, t0, _, _), (s1, r1, t1, _, _)) in rows:
            lines.append(f"| {rate * 100:g} % | {s0:,.0f} | {s1:,.0f} | {r1:,.0f} | {t0 * 1e3:.3f} | {t1 * 1e3:.3f} "
                         f"| {t0 / s0 * 1e9:.2f}, {t1 / s1 * 1e9:.2f} |")
        lines += ["", "The later feedback changes the network's activity, so the two do different work per inference; "
                      "the cost per SynOp (last column) is what the delay's ring of events adds.",
                  "", f"Least-squares fit for the delayed network: time ≈ {icpt * 1e3:.3f} ms + {slope * 1e9:.2f} ns "
                      f"× SynOps per inference, R² = {r2:.4f} (one machine, one run, shared with other jobs: load "
                      f"average {os.getloadavg()[0]:.1f} on its 2 cores at the end)."]
        replace_section(Path(a.write), "Simulator on a recurrent network with a delay", "\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=256)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--timesteps", type=int, default=16)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1, 0.2, 0.3])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--delay", type=int, default=0, help="a Delay of this many steps on the recurrent edge")
    p.add_argument("--write", default=None)
    a = p.parse_args()
    torch.set_num_threads(2)
    if a.delay:
        delayed(a)
        return
    g = build_graph(a.inputs, a.hidden, a.timesteps)
    plan = Plan(g)
    assert plan.fast is None and plan.delayed == {"rec"}
    rows = []
    for rate in a.rates:
        x = (torch.rand((a.timesteps, a.batch, a.inputs), generator=torch.Generator().manual_seed(1)) < rate).double()
        res = simulate(plan, x)
        ref = GraphSNN(g).run(x)
        same = all(torch.equal(res.spikes[n], ref.outputs[n].to(res.spikes[n].dtype)) for n in ("hidden", "out"))
        sec = timed(lambda x=x: simulate(plan, x), a.repeats) / a.batch
        syn = sum(st.synops for st in res.layers.values()) / a.batch
        rec = res.layers["rec"].synops / a.batch
        fire = [round(100 * res.neurons[n].firing_rate, 1) for n in ("hidden", "out")]
        rows.append((rate, fire, syn, rec, sec, same))
        print(f"rate {rate:.2f}: firing {fire} %, {syn:,.0f} SynOps ({rec:,.0f} recurrent), {sec * 1e3:.3f} ms/inf, "
              f"spikes equal the runtime's: {same}")
    icpt, slope, r2 = fit_line([r[2] for r in rows], [r[4] for r in rows])
    print(f"time ≈ {icpt * 1e3:.3f} ms + {slope * 1e9:.2f} ns × SynOps, R² = {r2:.4f}")
    if a.write:
        cmd = _command(a)
        lines = [f"Command: `{cmd}`", "",
                 f"Network: Bernoulli input ({a.inputs} channels) → Linear → {a.hidden} IF neurons with an all-to-all "
                 f"recurrent Linear ({a.hidden}×{a.hidden}, their spikes delivered at the next step) → Linear → 10 IF; "
                 f"integer weights (seed 0), no bias, T = {a.timesteps}, batch {a.batch}, best of {a.repeats} runs, "
                 "2 threads at most; the general path (the fast path leaves recurrent graphs to it). Spikes equal the "
                 "graph runtime's at every rate.", "",
                 "| input rate | firing % (hidden, out) | SynOps / inference | of which recurrent | ms / inference |",
                 "|---|---|---|---|---|"]
        for rate, fire, syn, rec, sec, _ in rows:
            lines.append(f"| {rate * 100:g} % | {fire[0]}, {fire[1]} | {syn:,.0f} | {rec:,.0f} | {sec * 1e3:.3f} |")
        lines += ["", f"Time follows SynOps: time ≈ {icpt * 1e3:.3f} ms + {slope * 1e9:.2f} ns × SynOps per inference, "
                      f"R² = {r2:.4f} (one machine, one run, shared with other jobs)."]
        replace_section(Path(a.write), "Simulator on a recurrent network", "\n".join(lines))


if __name__ == "__main__":
    main()
