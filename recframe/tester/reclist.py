"""``tester=reclist``, the default tester: the RecList suite (:mod:`recframe.tester.reclist_suite`) when
the ``reclist`` package is installed, else metrics only.

``reclist`` cannot be a dependency of recframe (its declared pins break numpy 2), so it is installed
separately with ``pip install --no-deps reclist==2.1.0`` (the Makefile does). A plain
``pip install recframe`` lacks it; rather than failing the default run, the suite falls back to the
full-ranking ``metrics`` tester with the same cut-offs and gates, and says so in a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from recframe.interfaces import Tester

log = logging.getLogger("recframe")


def reclist_or_metrics(
    k: int = 20,
    ks: Iterable[int] = (1, 5, 10, 20),
    gates: Mapping[str, str] | None = None,
    batch_size: int = 512,
    html: bool = True,
    serving: Mapping[str, Any] | None = None,
    **suite_options: Any,
) -> Tester:
    """A :class:`ReclistTester` if ``reclist`` imports, else a :class:`MetricsTester` (logged)."""
    try:
        from recframe.tester.reclist_suite import ReclistTester
    except ImportError as e:
        from recframe.tester.metrics import MetricsTester

        log.warning(
            "reclist is not installed (%s): running the metrics tester instead of the behavioural suite; "
            "install it with `pip install --no-deps reclist==2.1.0`",
            e,
        )
        return MetricsTester(k=k, ks=ks, gates=gates, batch_size=batch_size, html=html, serving=serving)
    return ReclistTester(k=k, ks=ks, gates=gates, batch_size=batch_size, html=html, serving=serving, **suite_options)
