"""Step functions that run in the pods of the release-data-prep workflow.

Each module holds a small client or a pure decision function, plus the plain, typed step functions that
Argo calls through Hera's runner (``python -m hera.workflows.runner -e steps.<module>:<function>``), that
tests call directly, and that the local runner executes as subprocesses.
See https://hera.readthedocs.io/en/stable/user-guides/script-runner-io/ for the runner contract.
"""

__all__: list[str] = []
