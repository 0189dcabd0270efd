"""pytest fixture ``argo_server_emulator``: a running Argo Workflows server emulator for one test.

The emulator (tests/support/emulators/argo_server.py) models the Argo Server REST API
(https://argo-workflows.readthedocs.io/en/latest/rest-api/) on 127.0.0.1; loaded as a plugin by
tests/conftest.py.
"""

from collections.abc import Iterator

import pytest

from tests.support.emulators.argo_server import ArgoServerEmulator

#: The Bearer token the fixture's emulator accepts (a fixed test value, not a credential).
ARGO_TEST_TOKEN = "argo-test-token"
#: The namespace the fixture's emulator manages.
ARGO_NAMESPACE = "argo"


@pytest.fixture
def argo_server_emulator() -> Iterator[ArgoServerEmulator]:
    """Yield a started ``ArgoServerEmulator`` for namespace ``argo`` accepting ``ARGO_TEST_TOKEN``; stop it after.

    Teardown fails the test if the emulator sent anything its swagger subset does not allow (an emulator bug).
    Tests assert ``invalid_requests`` themselves, since some send invalid requests on purpose.
    """
    emulator = ArgoServerEmulator(namespace=ARGO_NAMESPACE)
    emulator.add_token(ARGO_TEST_TOKEN)
    with emulator:
        yield emulator
    problems = [str(p) for p in emulator.invalid_responses]
    assert not problems, f"the Argo Server emulator sent responses outside its swagger subset: {problems}"


__all__ = ["ARGO_NAMESPACE", "ARGO_TEST_TOKEN", "argo_server_emulator"]
