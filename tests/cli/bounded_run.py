"""Run kdsnn commands in one process whose address space is capped (``RLIMIT_AS``), for the tests of
sizes that come from users and files: a command that believed a huge size would allocate for it and
fail inside PyTorch or numpy (an exception, reported here), where kdsnn must refuse before allocating.

Usage: ``python -m tests.cli.bounded_run BYTES`` with a JSON object ``{case: argv}`` on stdin; prints
``{case: {"rc", "stderr", "seconds", "exception"}}``.
"""
from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import time


def main() -> None:
    cap = int(sys.argv[1])
    cases = json.load(sys.stdin)
    from kdsnn.cli import main as kdsnn  # imported before the cap: PyTorch maps its libraries first

    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    results = {}
    for name, argv in cases.items():
        err, out = io.StringIO(), io.StringIO()
        t0 = time.time()
        exc = None
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = kdsnn(argv)
            except BaseException as e:  # any escape (MemoryError, a traceback) is what the test reports
                rc, exc = None, f"{type(e).__name__}: {str(e)[:200]}"
        results[name] = {"rc": rc, "stderr": err.getvalue(), "seconds": round(time.time() - t0, 2), "exception": exc}
    json.dump(results, sys.__stdout__)


if __name__ == "__main__":
    main()
