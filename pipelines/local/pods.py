"""Script steps run as pods would: one subprocess per attempt, with the container's command and env, and retries."""

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipelines.local.expressions import ExpressionError, _parse_duration, evaluate, parse_expression
from pipelines.local.goformat import go_format
from pipelines.local.model import DEADLINE_MESSAGE, DEADLINE_POD_MESSAGE, FAILED, STOP_MESSAGE, Node, _Ctx
from pipelines.local.state import RunState, _signal_group

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
_PASSTHROUGH_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)  # fmt: skip


def node_message(code: int, termination: str) -> str:
    """The message Argo 3.7 writes on a Failed pod node, e.g. ``main: Error (exit code 75): GitHub 503``.

    ``inferFailedReason`` in workflow/controller/operator.go: the container name, the kubelet's reason and
    exit code, then the termination message when the step left one (3.6 writes the same without ``main: ``).
    """
    head = f"main: Error (exit code {code})"
    return f"{head}: {termination}" if termination else head


class PodRunner(RunState):
    """Runs script templates as subprocesses, with retries, local secret stand-ins and ConfigMap files."""

    def _run_retries(
        self,
        node: Node,
        tmpl: Mapping[str, Any],
        ctx: _Ctx,
        attempt_template: Callable[[int], Mapping[str, Any]],
    ) -> None:
        """Argo's ``processNodeRetries``; ``attempt_template(n)`` renders the template with retries = n."""
        strategy = tmpl["retryStrategy"]
        limit = int(strategy["limit"]) if "limit" in strategy else None
        policy = strategy.get("retryPolicy") or "OnFailure"
        backoff = strategy.get("backoff") or {}
        expression = parse_expression(str(strategy["expression"])) if strategy.get("expression") else None
        self._set(node, phase="Running")
        first_start = time.time()
        attempt = 0
        while True:
            child = self._new(
                f"{node.name}({attempt})",
                f"{node.display_name}({attempt})",
                "Pod",
                node.template_name,
                node.row,
                ctx,
                attempt=attempt,
                item=node.item,
            )
            try:
                self._run_pod(child, tmpl if attempt == 0 else attempt_template(attempt), ctx)
            except ExpressionError as exc:
                self._set(child, phase="Error", message=str(exc))
            if child.phase == "Succeeded":
                self._set(node, phase="Succeeded", result=child.result, message="")
                return
            count = attempt + 1
            stop = None
            if self._halted(ctx) or child.message == DEADLINE_MESSAGE:  # nothing new starts past a deadline
                stop = child.message
            wait = 0.0
            if stop is None and backoff:
                wait = _parse_duration(backoff.get("duration", "0")) * int(backoff.get("factor") or 1) ** (count - 1)
                if "cap" in backoff:
                    wait = min(wait, _parse_duration(backoff["cap"]))
                if "maxDuration" in backoff:
                    deadline = first_start + _parse_duration(backoff["maxDuration"])
                    if time.time() > deadline:
                        stop = "Max duration limit exceeded"
                    elif (child.finished_at or time.time()) + wait > deadline:
                        stop = "Backoff would exceed max duration limit"
            retry_on = {"Always": FAILED, "OnFailure": {"Failed"}, "OnError": {"Error"}}[policy]
            if stop is None and child.phase not in retry_on:
                stop = child.message
            if stop is None and limit is not None and count > limit:
                stop = "No more retries left"
            if stop is None and expression is not None:
                last = {
                    "exitCode": str(child.exit_code if child.exit_code is not None else -1),
                    "status": child.phase,
                    "duration": go_format(child.duration or 0.0),
                    "message": child.message,
                }
                try:
                    again = evaluate(expression, {"lastRetry": last})
                except ExpressionError as exc:
                    self._set(node, phase="Error", message=f"retryStrategy.expression: {exc}")
                    return
                if again is not True:
                    stop = "retryStrategy.expression evaluated to false"
            if stop is not None:
                self._set(node, phase=child.phase, message=stop)
                return
            delay = min(wait, self.options.max_backoff) if self.options.fast_retries else wait
            self._set(node, message=f"Backoff for {delay:.1f}s" if delay else "")
            (self._kill_all if ctx.on_exit else self._halt).wait(delay)
            attempt += 1

    def _run_pod(self, node: Node, tmpl: Mapping[str, Any], ctx: _Ctx) -> None:
        script = tmpl["script"]
        pod_dir = self.run_dir / "pods" / self._pod_name(node)
        pod_dir.mkdir(parents=True, exist_ok=True)
        source = pod_dir / "script"
        source.write_text(str(script.get("source", "")), encoding="utf-8")
        termination = pod_dir / "termination-log"
        termination.unlink(missing_ok=True)
        log_path = self.run_dir / "logs" / f"{_file_name(_short_name(node.name, self.name))}.log"
        blocked = self._missing_secret(tmpl)
        if blocked:
            self._wait_blocked(node, tmpl, ctx, blocked)
            return
        env = self._pod_env(tmpl, node, termination, pod_dir)
        command = [str(c) for c in [*script["command"], *(script.get("args") or [])]] + [str(source)]
        if command[0] in ("python", "python3"):
            command[0] = self.options.python
        deadline = float(tmpl["activeDeadlineSeconds"]) if tmpl.get("activeDeadlineSeconds") else None
        slots = self._pod_slots or contextlib.nullcontext()
        with slots, (pod_dir / "stdout").open("wb") as out, log_path.open("wb") as err:
            if self._halted(ctx):
                self._set(node, phase="Failed", message=self._pod_message or STOP_MESSAGE)
                return
            self._set(node, phase="Running", log_path=log_path, pod_dir=pod_dir, message="")
            try:
                proc = subprocess.Popen(
                    command,
                    cwd=pod_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as exc:
                err.write(f"cannot start {command[0]!r}: {exc}\n".encode())
                self._set(
                    node,
                    phase="Error",
                    message=f"cannot start container command {command[0]!r}: {exc.strerror or exc}",
                )
                return
            with self._lock:
                self._procs[proc.pid] = (proc, node)
                if self._halted(ctx):
                    self._kill(lambda n: n is node)
            try:
                code = proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                with self._lock:
                    self._killed[node.id] = DEADLINE_POD_MESSAGE
                _signal_group(proc, signal.SIGKILL)
                code = proc.wait()
            finally:
                with self._lock:
                    self._procs.pop(proc.pid, None)
        stdout = (pod_dir / "stdout").read_text(encoding="utf-8", errors="replace")
        code = 128 - code if code < 0 else code
        killed = self._killed.get(node.id)
        if killed:
            self._set(node, phase="Failed", message=killed, exit_code=code)
        elif code == 0:
            self._set(node, phase="Succeeded", result=stdout.strip(), exit_code=0)
        else:
            message = termination.read_text(encoding="utf-8", errors="replace").strip() if termination.exists() else ""
            self._set(node, phase="Failed", message=node_message(code, message), exit_code=code)

    def _missing(self, name: str, key: str | None) -> bool:
        gone = self.options.missing_secrets
        return name in gone or (key is not None and f"{name}/{key}" in gone)

    def _missing_secret(self, tmpl: Mapping[str, Any]) -> str:
        """The kubelet's complaint about a required Secret this pod references that does not exist, or ''."""
        for item in tmpl["script"].get("env") or []:
            ref = (item.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not ref.get("optional") and self._missing(ref.get("name", ""), ref.get("key")):
                if ref.get("name", "") in self.options.missing_secrets:
                    return f'CreateContainerConfigError: secret "{ref.get("name")}" not found'
                return f"CreateContainerConfigError: couldn't find key {ref.get('key')} in Secret {ref.get('name')}"
        for volume in tmpl.get("volumes") or []:
            secret = volume.get("secret")
            keys = [i.get("key") for i in (secret or {}).get("items") or []] or [None]
            if secret and not secret.get("optional") and any(self._missing(secret["secretName"], k) for k in keys):
                return (
                    f'MountVolume.SetUp failed for volume "{volume["name"]}": secret "{secret["secretName"]}" not found'
                )
        return ""

    def _wait_blocked(self, node: Node, tmpl: Mapping[str, Any], ctx: _Ctx, reason: str) -> None:
        """A pod that cannot start stays Pending, showing why, until the run stops it or a deadline passes.

        An exit-handler pod waits at most until the workflow's own deadline; once that has passed the controller
        fails Pending exit-handler pods at once (argo-workflows #13060, #13252).
        """
        self._set(node, phase="Pending", message=reason)
        limits = [float(tmpl["activeDeadlineSeconds"])] if tmpl.get("activeDeadlineSeconds") else []
        if ctx.on_exit and self.spec.get("activeDeadlineSeconds"):
            limits.append(max(0.0, self.started_at + float(self.spec["activeDeadlineSeconds"]) - time.time()))
        stopped = (self._kill_all if ctx.on_exit else self._halt).wait(min(limits) if limits else None)
        # Pending nodes past a deadline: "Step exceeded its deadline" (operator.go, exec_control.go).
        message = DEADLINE_MESSAGE if not stopped or self._stop_message == DEADLINE_MESSAGE else self._pod_message
        self._set(node, phase="Failed", message=message or STOP_MESSAGE)

    def _pod_env(self, tmpl: Mapping[str, Any], node: Node, termination: Path, pod_dir: Path) -> dict[str, str]:
        script = tmpl["script"]
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        paths = [
            *(self.options.pythonpath or [str(Path.cwd())]),
            *filter(None, [os.environ.get("PYTHONPATH")]),
        ]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        volumes = {v["name"]: v for v in tmpl.get("volumes") or []}
        mounts = [(m["mountPath"].rstrip("/"), volumes[m["name"]]) for m in script.get("volumeMounts") or []]
        termination_path = script.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        for path, volume in mounts:
            if "emptyDir" in volume and path == "/tmp":
                env["TMPDIR"] = str(self._empty_dir(pod_dir, volume))
        for item in script.get("env") or []:
            name = item["name"]
            if "valueFrom" in item:
                ref = item["valueFrom"]["secretKeyRef"]
                if not self._missing(ref.get("name", ""), ref.get("key")):
                    self._stand_in(env, name, f"secretKeyRef {ref.get('name')}/{ref.get('key')}", node)
                continue
            value = str(item.get("value", ""))
            if value == termination_path:
                env[name] = str(termination)
                continue
            mount = next(((p, v) for p, v in mounts if value == p or value.startswith(p + "/")), None)
            if mount is None:
                env[name] = value
            elif "secret" in mount[1]:
                secret = mount[1]["secret"]
                if not self._missing(secret.get("secretName", ""), None):
                    self._stand_in(env, name, f"Secret volume {secret.get('secretName')} at {mount[0]}", node)
            elif "emptyDir" in mount[1]:
                env[name] = str(self._empty_dir(pod_dir, mount[1]) / value[len(mount[0]) :].lstrip("/"))
            else:
                env[name] = str(self._config_map_dir(mount[1]) / value[len(mount[0]) :].lstrip("/"))
        env.update(self.options.env)
        return env

    def _stand_in(self, env: dict[str, str], name: str, source: str, node: Node) -> None:
        if name in self._secrets:
            env[name] = self._secrets[name]
            return
        with self._lock:
            users = self._omitted.setdefault(f"{name} ({source}) is not set locally; omitted for", [])
            if node.template_name not in users:
                users.append(node.template_name)

    def _empty_dir(self, pod_dir: Path, volume: Mapping[str, Any]) -> Path:
        target = pod_dir / "volumes" / f"emptydir-{volume['name']}"
        target.mkdir(parents=True, exist_ok=True)
        return target

    def _config_map_dir(self, volume: Mapping[str, Any]) -> Path:
        config_map = volume["configMap"]
        name = config_map.get("name") or volume["name"]
        with self._lock:
            if name not in self._config_dirs:
                target = self.run_dir / "volumes" / f"configmap-{name}"
                target.mkdir(parents=True, exist_ok=True)
                data = self.options.config_maps.get(name, {})
                items = config_map.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] in data:
                        path = target / item.get("path", item["key"])
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(data[item["key"]], encoding="utf-8")
                self._config_dirs[name] = target
            return self._config_dirs[name]


def _file_name(text: str) -> str:
    """A node name as a file name: anything outside word characters and ``.:,()[]=+-`` becomes ``_``."""
    return re.sub(r"[^\w.:,()\[\]=+-]", "_", text)


def _short_name(name: str, workflow: str) -> str:
    """A node name without the workflow name, for file names (``fetch``, ``onExit[0].report-final``)."""
    return name[len(workflow) :].lstrip(".") if name.startswith(workflow) and name != workflow else name


__all__ = ["DEFAULT_TERMINATION_PATH", "PodRunner"]
