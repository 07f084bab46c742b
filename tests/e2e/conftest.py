import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # suite_runner


@pytest.fixture(scope="session")
def reference_server():
    """The bundled Postfix + Dovecot + dnsmasq, started for the self-tests (needs root and the packages)."""
    from fixtures import reference

    was_running = reference.status().running
    try:
        reference.start()
    except reference.ReferenceServerError as error:
        pytest.fail(f"the reference server could not start: {error}", pytrace=False)
    yield
    if not was_running:
        reference.stop()
