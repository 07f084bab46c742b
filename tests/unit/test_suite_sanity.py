"""The suite's own bookkeeping: check ids are unique, documented, and every name a check is
"blocked by" is a real check."""

import importlib.util
import re
from pathlib import Path

import pytest

from mailconform.checks import check_info

REPO = Path(__file__).resolve().parents[2]
SUITE_FILES = sorted((REPO / "suites").rglob("test_*.py"))


def _checks():
    found = []
    for path in SUITE_FILES:
        spec = importlib.util.spec_from_file_location(f"sanity_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found += [info for info in map(check_info, vars(module).values()) if info is not None]
    return found


CHECKS = _checks()
IDS = [info.id for info in CHECKS]


def test_check_ids_are_unique():
    assert len(IDS) == len(set(IDS)), sorted(i for i in IDS if IDS.count(i) > 1)


@pytest.mark.parametrize("info", CHECKS, ids=IDS)
def test_every_check_quotes_its_rfc(info):
    assert f"RFC {info.rfc_label.split()[1]}" in info.doc, f"{info.id}: the docstring should quote {info.rfc_label}"


def test_every_blocking_reference_names_a_real_check():
    sources = [REPO / "mailconform" / "sessions.py", *SUITE_FILES]
    pattern = re.compile(r'(?:by=|Blocked\(|_CHECK = )"([a-z0-9]+\.[a-z0-9.-]+)"')
    named = {name for path in sources for name in pattern.findall(path.read_text())}
    assert named, "the pattern found nothing: it is out of date"
    assert named <= set(IDS), f"blocked by checks that do not exist: {sorted(named - set(IDS))}"
