"""Hypothesis settings for the property tests: derandomized, so CI runs the same examples
every time (a failure reproduces), no example database written into the tree, no
per-example deadline (CI machines are slow and shared); each test sets its own
`max_examples` to stay within a few seconds.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "cronium",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("cronium")
