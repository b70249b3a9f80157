"""What every benchmark does: pin threads, report the machine's load, end with RESULT."""

from __future__ import annotations

import json
import os
import platform


def pin_threads(n: int = 2) -> int:
    """Set BLAS/OpenMP/torch threads explicitly (call before importing numpy-heavy modules)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    return n


def machine() -> str:
    load = os.getloadavg()
    return f"{platform.machine()} cpus={os.cpu_count()} loadavg={load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def report(result: dict) -> None:
    print(f"machine: {machine()}")
    print("RESULT " + json.dumps(result, sort_keys=True))
