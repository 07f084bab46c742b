"""Under ``pytest -n N`` (pytest-xdist): every check of one target runs on the same worker, in the
order the plugin sorted them, while different targets run in parallel.

pytest-xdist's own ``--dist loadgroup`` would do this through item marks, but it relabels items by
an attribute pytest 9 no longer reads; grouping by the target in the test ID needs no marks.  The
target is the first parameter of every check, so its ID opens the brackets: ``test_x[alumno07]``,
``test_y[alumno07-percent-hack]``.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling


def _as_id(name: str) -> str:
    """The target name as pytest writes it in a test ID (non-ASCII escaped)."""
    return name.encode("unicode_escape").decode("ascii")


class TargetScheduling(LoadScopeScheduling):
    """Load-balances whole targets across workers: a target's checks are one unit of work."""

    def __init__(self, config, log=None, targets: list[str] = ()):
        super().__init__(config, log)
        # Longest first, so that a target named "a-b" is not taken for a target "a" with a variant "b".
        self.target_ids = sorted((_as_id(name) for name in targets), key=len, reverse=True)

    def _split_scope(self, nodeid: str) -> str:
        function_end = nodeid.find("::")
        bracket = nodeid.find("[", function_end)
        if function_end < 0 or bracket < 0:
            return nodeid
        params = nodeid[bracket + 1:-1]
        for target in self.target_ids:
            if params == target or params.startswith(target + "-"):
                return f"target {target}"
        return nodeid
