"""pytest fixture ``argocd_emulator``: a running Argo CD API server emulator for one test.

The emulator (tests/support/emulators/argocd.py) models the Argo CD API server
(https://argo-cd.readthedocs.io/en/stable/developer-guide/api-docs/) on 127.0.0.1; loaded as a plugin by
tests/conftest.py.
"""

from collections.abc import Iterator

import pytest

from tests.support.emulators.argocd import ArgoCDEmulator

#: The Bearer token the fixture's emulator accepts (a fixed test value, not a credential).
ARGOCD_TEST_TOKEN = "argocd-test-token"


@pytest.fixture
def argocd_emulator() -> Iterator[ArgoCDEmulator]:
    """Yield a started ``ArgoCDEmulator`` accepting ``ARGOCD_TEST_TOKEN``; stop it afterwards.

    Teardown fails the test if the emulator sent anything its swagger subset does not allow (an emulator bug).
    Tests assert ``invalid_requests`` themselves, since some send invalid requests on purpose.
    """
    emulator = ArgoCDEmulator()
    emulator.add_token(ARGOCD_TEST_TOKEN)
    with emulator:
        yield emulator
    problems = [str(p) for p in emulator.invalid_responses]
    assert not problems, f"the Argo CD emulator sent responses outside its swagger subset: {problems}"


__all__ = ["ARGOCD_TEST_TOKEN", "argocd_emulator"]
