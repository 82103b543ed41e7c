"""From a student checkpoint to its deployable graphs: the shared first step of verify,
report, map and demo (the type itself, :class:`~kdsnn.export.student.Deployable`, lives with
the exporter that builds it)."""
from __future__ import annotations



from kdsnn.export.student import Deployable, load_student_graphs


def prepare(path: str, bits: int = 8, dataset: str | None = None, data_root: str | None = None) -> Deployable:
    """Load a ``kdsnn distill`` checkpoint and build its float and integer graphs."""
    return load_student_graphs(path, bits, integer=True, quantized=True, dataset=dataset, data_root=data_root)
