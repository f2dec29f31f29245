"""Run a coroutine at once, and hand it to a task only if it has to wait.

The hub writes each broadcast to every local member in turn (chat.services.fanout). A server's
WebSocket send usually finishes without waiting: daphne's always does (it buffers in the process),
uvicorn's does while the client keeps up, and waits for the socket to drain when the client reads
slower than the room talks (its flow control). Awaiting that send would hold the whole room behind
its slowest member; a task per member and message would cost more than the write itself.

start() runs the coroutine until it finishes or first waits, as Python 3.12's eager tasks do
(asyncio.eager_task_factory; the image's Python is 3.11): None when it finished, else a task that
finishes it. The coroutine's exceptions are raised by start() while it runs in the caller, by the
task after that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def start(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task | None:
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    except BaseException:
        coroutine.close()
        raise
    return asyncio.get_running_loop().create_task(_finish(coroutine, waiting_on))


async def _finish(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Drive the started coroutine as a task would: wait for what it yielded, then resume it."""
    try:
        while True:
            if waiting_on is None:  # a bare yield (asyncio.sleep(0)): give the loop one turn
                await asyncio.sleep(0)
            else:
                # An asyncio future; its result or exception reaches the coroutine when resumed.
                await asyncio.wait([waiting_on])
            try:
                waiting_on = coroutine.send(None)
            except StopIteration as finished:
                return finished.value
    except asyncio.CancelledError:
        # This task was cancelled while the coroutine waited: it ends where it waits.
        coroutine.close()
        raise
