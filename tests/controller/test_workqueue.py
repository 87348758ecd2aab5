from __future__ import annotations

import asyncio

from controller.workqueue import WorkQueue


def test_a_key_waits_once_however_often_it_is_added() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        for key in ("a", "b", "a", "a"):
            queue.add(key)
        assert [await queue.get(), await queue.get()] == ["a", "b"]
        assert len(queue) == 0

    asyncio.run(scenario())


def test_a_key_being_processed_is_not_handed_out_again_until_done() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        queue.add("a")
        assert await queue.get() == "a"
        queue.add("a")  # changed while a worker holds it
        second = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not second.done()
        queue.done("a")
        assert await asyncio.wait_for(second, 1) == "a"

    asyncio.run(scenario())


def test_retry_backs_off_then_gives_up() -> None:
    async def scenario() -> None:
        queue = WorkQueue(base_delay=0.001, max_retries=2)
        queue.add("a")
        for _ in range(2):
            key = await asyncio.wait_for(queue.get(), 1)
            assert queue.retry(key)
            queue.done(key)
        key = await asyncio.wait_for(queue.get(), 1)
        assert not queue.retry(key)
        queue.done(key)
        assert len(queue) == 0
        queue.forget(key)
        assert queue.retry(key), "a key that succeeded starts its back-off afresh"
        queue.close()

    asyncio.run(scenario())
