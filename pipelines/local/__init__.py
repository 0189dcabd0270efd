"""Run a rendered Argo WorkflowTemplate on this machine, each script step a subprocess as in a pod.

The input is the same resource Argo CD syncs (``manifests/workflows/workflowtemplate-*.yaml`` or the
in-memory result of ``pipelines.render``), not a parallel Python path: this package interprets the Argo
spec (https://argo-workflows.readthedocs.io/en/latest/fields/) the way the workflow controller does:

- ``dag`` templates (https://argo-workflows.readthedocs.io/en/latest/walk-through/dag/): ``depends`` /
  ``dependencies`` with Argo's expansion of a bare task name to ``(T.Succeeded || T.Skipped ||
  T.Daemoned)`` plus ``T.Failed`` / ``T.Errored`` when T has ``continueOn``; unmet dependencies mark a
  task Omitted; ``failFast`` (default true) stops scheduling new tasks after a failure; the DAG phase
  follows its target (leaf) tasks as ``assessDAGPhase`` does;
- ``steps`` templates: groups run in order, the steps of a group in parallel;
- ``withParam`` / ``withItems`` fan-out with ``{{item}}`` / ``{{item.key}}`` rendered as Argo's ``Item``
  does (strings JSON-escaped, numbers as written, lists and maps as JSON) and node names
  ``task(0:key:value)``, an empty list giving a Skipped node; a template's ``parallelism``
  bounds its running children (a thread pool per DAG/Steps node, so ``parallelism: 1`` runs in order);
- ``when`` (govaluate: bare words are strings, ``==``, ``!=``, ``&&``, ``||``, parentheses) and
  ``{{=expr}}`` tags (expr-lang: variables, ``+``, comparisons, ``asInt``, ``asFloat``, ``string``,
  ``sprig.replace|trunc|lower|upper|trim``);
- script templates in Hera's runner mode: ``command + args + [file holding the rendered source]`` runs
  in a per-pod working directory with the container ``env``; stdout (trimmed) is ``outputs.result``; a
  non-zero exit is Failed with the termination message (``terminationMessagePath``, default
  ``/dev/termination-log``, redirected to a file) or ``failed with exit code N``; a command that cannot
  start is Error;
- ``retryStrategy`` exactly as ``processNodeRetries``: ``retryPolicy`` (Always, OnFailure, OnError),
  ``limit``, ``expression`` over ``lastRetry.exitCode|status|duration|message``, ``{{retries}}`` (the
  attempt number) in the script, ``backoff`` (with
  ``fast_retries`` every wait is capped at ``max_backoff`` seconds, 0.2 by default);
- ``onExit`` with ``{{workflow.status}}`` (Succeeded, Failed, Error) and ``{{workflow.failures}}``, the
  Go-quoted JSON list of failed nodes (``displayName, message, templateName, phase, podName,
  finishedAt``; https://argo-workflows.readthedocs.io/en/latest/variables/#exit-handler);
- ``activeDeadlineSeconds`` of the workflow (running pods are killed, the exit handler still runs) and of
  a template; ``synchronization.mutexes`` as in-process locks; ``spec.parallelism`` as a pod limit.

Local stand-ins, never secrets from the YAML: a ``secretKeyRef`` env var takes the value of the local
stand-in of the same name (``RunOptions.secrets``, the process environment by default) or is omitted;
Secret volumes are not mounted, and an env var whose value points into one is likewise replaced by its
same-named stand-in (``GITHUB_APP_PRIVATE_KEY_PATH``, ``ARGOCD_TOKEN_FILE``) or omitted; ConfigMap
volumes are written from ``RunOptions.config_maps`` to the run directory and env paths into them are
rewritten. ``RunOptions.env`` is applied last (local stores, record files). A ``python`` command runs
``RunOptions.python``.

Everything else is refused before anything runs, naming the field (see ``check_supported``); fields that
do not change results locally (images, resources, security contexts, pod GC, TTL, labels, ...) are on an
explicit allow-list and ignored.

The modules, each named for what it models (names with a leading underscore are shared inside this package
only):

- ``executor``: ``LocalRun`` (start, wait, stop, terminate, the exit handler, the result) and ``run_workflow``;
- ``scheduler``: a template on a node: inputs, DAG tasks, step groups, ``when``, fan-outs, mutexes;
- ``pods``: script steps as subprocesses, retries, secret stand-ins, ConfigMap files;
- ``state``: the run's state, arguments, global variables and node bookkeeping;
- ``model``: ``RunOptions``, ``Node``, ``RunResult``, phases and stop messages;
- ``plan``: ``Row`` and ``plan_rows``, the static plan for progress views;
- ``support``: ``check_supported``, the allow-lists and ``LocalRunRefused``;
- ``depends``: ``depends`` / ``dependencies`` and the DAG phase;
- ``items``: ``withItems`` / ``withParam`` items and aggregated results;
- ``variables``: ``substitute`` for ``{{var}}`` and ``{{=expr}}`` tags;
- ``expressions``: govaluate ``when``, expr-lang expressions, Go durations;
- ``goformat``: Go's formatting of values, FNV-1a, ``generateName``.

``pipelines.local_run`` re-exports the public names; the project imports the runner from there.
"""

__all__: list[str] = []
