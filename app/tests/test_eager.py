"""chat.services.eager: a coroutine runs at once, and becomes a task only if it has to wait."""

import asyncio

import pytest

from chat.services import eager


async def test_a_coroutine_that_does_not_wait_finishes_in_the_call():
    done = []

    async def write():
        done.append("written")

    assert eager.start(write()) is None
    assert done == ["written"]


async def test_a_coroutine_that_waits_finishes_in_a_task_in_order():
    drained = asyncio.Event()
    steps = []

    async def write():
        steps.append("started")
        await drained.wait()
        steps.append("after the wait")
        await asyncio.sleep(0)  # a bare yield, too
        return "written"

    task = eager.start(write())
    assert steps == ["started"]  # ran up to its wait in the call
    assert task is not None
    await asyncio.sleep(0.01)
    assert steps == ["started"]
    drained.set()
    assert await task == "written"
    assert steps == ["started", "after the wait"]


async def test_an_error_before_the_wait_is_raised_by_the_call():
    async def write():
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        eager.start(write())


async def test_an_error_after_the_wait_is_raised_by_the_task():
    failing = asyncio.get_running_loop().create_future()

    async def write():
        await failing

    task = eager.start(write())
    failing.set_exception(ConnectionResetError("gone"))
    with pytest.raises(ConnectionResetError):
        await task


async def test_cancelling_the_task_ends_the_coroutine_where_it_waits():
    ended = []

    async def write():
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(True)

    task = eager.start(write())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == [True]
