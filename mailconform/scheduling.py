"""Where checks run.  ``--shard K/N`` splits a class's targets between machines; under
``pytest -n N`` (pytest-xdist), every check of one target runs on the same worker, in the order
the plugin sorted them, while different targets run in parallel.

pytest-xdist's own ``--dist loadgroup`` would do this through item marks, but it relabels items by
an attribute pytest 9 no longer reads; grouping by the target in the test ID needs no marks.  The
target is the first parameter of every check, so its ID opens the brackets: ``test_x[alumno07]``,
``test_y[alumno07-percent-hack]``.

One case stays ambiguous: targets named ``a`` and ``a-b`` in one run, and a check of ``a`` with a
variant or endpoint ``b``: ``test[a-b]`` is taken for ``a-b``.  That check then runs on the other
target's worker — its verdict is the same, only the one-worker-per-target budget is not kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from xdist.scheduler import LoadScopeScheduling

T = TypeVar("T")


def _as_id(name: str) -> str:
    """The target name as pytest writes it in a test ID (non-ASCII escaped)."""
    return name.encode("unicode_escape").decode("ascii")


def target_of(nodeid: str, targets: list[str]) -> str | None:
    """The name of the target a test ID belongs to; None for a test that is not a check."""
    function_end = nodeid.find("::")
    bracket = nodeid.find("[", function_end)
    if function_end < 0 or bracket < 0:
        return None
    params = nodeid[bracket + 1:-1]
    ids = {_as_id(name): name for name in targets}
    if params in ids:
        return ids[params]
    # Longest first: with targets "a" and "a-b", "test[a-b-x]" belongs to "a-b".
    return next((ids[i] for i in sorted(ids, key=len, reverse=True) if params.startswith(i + "-")), None)


def target_scope(nodeid: str, targets: list[str]) -> str:
    """The unit of work of a test: ``target NAME`` for a check, the test itself otherwise."""
    target = target_of(nodeid, targets)
    return nodeid if target is None else f"target {target}"


@dataclass(frozen=True)
class Shard:
    """``--shard K/N``: the K-th of N shares of a run's targets, for a class too big for one machine.

    Round robin over the targets in the order given: the shares differ in size by at most one, and
    the same command on every machine (or CI job) splits the class the same way."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
            raise ValueError(f"--shard {text}: expected K/N with 1 <= K <= N, e.g. --shard 2/4")
        return cls(int(match.group(1)), int(match.group(2)))

    def of(self, targets: list[T]) -> list[T]:
        return targets[self.index - 1::self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class TargetScheduling(LoadScopeScheduling):
    """Load-balances whole targets across workers: a target's checks are one unit of work."""

    def __init__(self, config, log=None, targets: list[str] = ()):
        super().__init__(config, log)
        self.targets = list(targets)

    def _split_scope(self, nodeid: str) -> str:
        return target_scope(nodeid, self.targets)
