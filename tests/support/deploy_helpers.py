"""Helpers shared by the deployment tests: start an Argo CD timeline once the waiter is really watching.

Starting a scripted rollout only after the client has opened its watch stream (or, with streaming off,
after its stream attempt was refused) makes the tests deterministic: the client sees the rollout happen
instead of finding it already finished at its first look.
"""

import threading
import time

from tests.support.emulators.argocd import ArgoCDEmulator, Timeline


def play_when_watched(
    emulator: ArgoCDEmulator, app: str, timeline: Timeline, *, wait_s: float = 10.0
) -> threading.Thread:
    """Play ``timeline`` on ``app`` once a watch stream is open (or was refused); returns the helper thread."""
    streams_before = len(emulator.calls_to("GET", "/api/v1/stream/applications"))

    def watching() -> bool:
        if emulator.stream_unavailable:
            return len(emulator.calls_to("GET", "/api/v1/stream/applications")) > streams_before
        return emulator.active_streams > 0

    def run() -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if watching():
                emulator.play(app, timeline).join()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=run, name=f"play-when-watched-{app}", daemon=True)
    thread.start()
    return thread


__all__ = ["play_when_watched"]
