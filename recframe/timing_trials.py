"""The faster of interchangeable ways to do one job, chosen by timing the first calls on this machine.

Why: which GEMM or which scoring path wins depends on the CPU (OpenBLAS beats torch's GEMM on a
2-core AMD EPYC and loses on an Intel Xeon; a bf16 product wins only where the CPU has a bf16
matrix unit), so each candidate is timed on the first real calls and the one with the lower best
time is kept. The candidates give the same results, so the choice changes only the time.
"""

from __future__ import annotations

from collections.abc import Sequence


class FasterOf:
    """Hands out ``(name, on_trial)``; call :meth:`record` with each trial call's time per unit of work.

    Each name is tried ``trials`` times, alternately (concurrent callers too: a list append is
    atomic, so there is no lock, which would make the owner unpicklable). The first ``warmup`` times
    of each (fresh buffers, cold caches) are not counted, and the best of the rest is what the way
    can do where other threads slowed a trial by chance.
    """

    def __init__(self, names: Sequence[str], trials: int = 10, warmup: int = 3) -> None:
        self.times: dict[str, list[float]] = {name: [] for name in names}
        self.chosen: str | None = names[0] if len(names) == 1 else None
        self._trials, self._warmup = max(int(trials), int(warmup) + 1), int(warmup)

    def pick(self) -> tuple[str, bool]:
        """The name to use now, and whether this call is a trial to :meth:`record`."""
        if self.chosen is not None:
            return self.chosen, False
        name = min(self.times, key=lambda n: len(self.times[n]))
        if len(self.times[name]) < self._trials:
            return name, True
        best = {n: min(t[self._warmup :]) for n, t in self.times.items()}
        self.chosen = min(best, key=best.__getitem__)
        return self.chosen, False

    def record(self, name: str, seconds: float) -> None:
        """One trial's time (per row, per item: any unit the same for every name)."""
        self.times[name].append(seconds)
