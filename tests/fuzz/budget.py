"""How many examples a fuzz target runs: few and always the same in the suite, many on demand.

    @fuzz_settings(40)          # 40 derandomized examples in the suite
    @given(...)
    def test_...

In the suite (no environment variable, any profile but `fuzz`): `default` examples,
derandomized (the same examples on every run and every machine) and without the example
database, so CI is reproducible.  Long mode -- `MAILD_FUZZ_EXAMPLES=N`, or the hypothesis
profile `fuzz` (`pytest tests/fuzz --hypothesis-profile=fuzz`, N = 10,000 unless the
variable says otherwise) -- runs N random examples per target and keeps failures in
`.hypothesis/examples`, replayed first on the next run.  `MAILD_FUZZ_DEADLINE_MS=T` adds
a per-example deadline, to hunt for inputs that nearly hang a step (long mode only: the
suite has no timed assertions).
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

EXAMPLES_VARIABLE = "MAILD_FUZZ_EXAMPLES"
DEADLINE_VARIABLE = "MAILD_FUZZ_DEADLINE_MS"
PROFILE = "fuzz"
LONG_EXAMPLES = 10_000           # per target, for the profile without the variable
DATABASE = ".hypothesis/examples"

# Big corpus mails and generated data are the point here, not a problem.
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]


def long_examples() -> int | None:
    """Examples per target in long mode, None in the suite."""
    value = os.environ.get(EXAMPLES_VARIABLE, "").strip()
    if value:
        return int(value)
    if settings.get_current_profile_name() == PROFILE:
        return settings.default.max_examples
    return None


def fuzz_settings(default: int) -> settings:
    """The settings of one fuzz target (see the module doc)."""
    count = long_examples()
    if count is None:
        return settings(max_examples=default, derandomize=True, database=None, deadline=None,
                        print_blob=True, suppress_health_check=_HEALTH)
    deadline = os.environ.get(DEADLINE_VARIABLE, "").strip()
    return settings(max_examples=count, derandomize=False,
                    database=DirectoryBasedExampleDatabase(DATABASE),
                    deadline=int(deadline) if deadline else None,
                    print_blob=True, suppress_health_check=_HEALTH)


def register_profile() -> None:
    settings.register_profile(PROFILE, max_examples=LONG_EXAMPLES, derandomize=False,
                              deadline=None, suppress_health_check=_HEALTH)
