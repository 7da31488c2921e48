"""Which DDP rank this process is, from the environment its launcher set.

Lightning starts ranks 1..N-1 as copies of the command that started rank 0 (``LOCAL_RANK`` set),
torchrun and SLURM set ``RANK``. The environment says so before the process group exists, which
is when the pipeline must decide that a copy only joins the fit: rank 0 alone writes the data,
the artifact, the reports and the deployment.
"""

from __future__ import annotations

import os


def launch_rank() -> int:
    """The global rank the launcher gave this process (0 outside DDP)."""
    value = os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or "0"
    try:
        return int(value)
    except ValueError:
        return 0


def is_rank_zero() -> bool:
    """True in the process that writes results (the only process outside DDP)."""
    return launch_rank() == 0
