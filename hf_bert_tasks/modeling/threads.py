"""Torch's threads in a process that predicts, written once: the command line, `accelerate launch` corpus runs, the
Space and the Inference Endpoints handler all call these. Workers that each run torch's default threads (every core)
on the same cores spin against each other: two such processes on two cores predicted at a third to a half of one
alone, two with one thread each at 1.5x (benchmarks/README.md, "Threads").

Torch and the standard library only: the Inference Endpoints handler ships this file next to the weights and loads it
by path.
"""

import os


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def share_threads(threads: int | None = None, workers: int = 1) -> int:
    """Set torch's intra-op threads for this process and return them: ``threads``; else, for ``workers`` > 1
    predicting at once on the same cores, the usable cores divided among them (at least one), unless
    ``OMP_NUM_THREADS`` says otherwise; else torch's own default stands."""
    import torch  # imported here: the command line reads its arguments before it pays for torch

    if threads is None:
        if workers <= 1 or os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = max(1, usable_cores() // workers)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    return threads


def whole_number(value: str) -> int | None:
    """``value`` as a whole number of at least 1 (a thread or worker count), None where it is not one. Decimal digits
    only: ``"²"`` is a digit to ``str.isdigit`` but no number to ``int``."""
    value = value.strip()
    return int(value) if value.isdecimal() and int(value) >= 1 else None


def whole_number_variable(name: str, owner: str) -> int | None:
    """The environment variable ``name`` as a :func:`whole_number`, None where it is unset or blank; ``ValueError``
    naming ``owner`` ("the Space", "the endpoint") and the value otherwise."""
    value = os.environ.get(name, "").strip()
    if value and whole_number(value) is None:
        raise ValueError(f"{owner} variable {name} must be a whole number of at least 1, got {value!r}")
    return int(value) if value else None
