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


@pytest.fixture(scope="session")
def reference_variant():
    """Start a reference variant (a broken twin made of the real servers): call it with the arguments
    of ``fixtures.reference.variant`` (name, address, postfix_main=..., postfix_services=...,
    dovecot=..., listeners=..., dns_address=...); it returns the started ``Reference``. Each
    variant is stopped at the end of the session. Calling it again with the same name returns at
    once if nothing changed, or reconfigures that variant."""
    from fixtures import reference

    started: dict[str, reference.Reference] = {}

    def start(name: str, address: str, **overrides) -> reference.Reference:
        instance = reference.variant(name, address, **overrides)
        started[name] = instance
        try:
            instance.start()
        except reference.ReferenceServerError as error:
            pytest.fail(f"the reference variant {name!r} could not start: {error}", pytrace=False)
        return instance

    yield start
    for instance in started.values():
        instance.stop()
