import pytest

from test_plugin import TARGETS


@pytest.fixture
def lab(pytester):
    """A pytester directory with the loopback targets file (targets lab and twin) in its rootdir."""
    pytester.makefile(".toml", targets=TARGETS)
    return pytester
