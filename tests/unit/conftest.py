"""Fixtures shared by the unit tests."""

import pytest

from fixtures.twins import MailTwin


@pytest.fixture
def twin_factory():
    """Start mail twins with the given faults (``twin_factory("fault", accounts=...)``); all stopped after the test."""
    twins = []

    def start(*faults, **kwargs):
        twin = MailTwin(faults=faults, **kwargs)
        twin.start()
        twins.append(twin)
        return twin

    yield start
    for twin in twins:
        twin.stop()
