"""The shared store's batched connection (simulator/store/lane.py) against a real ``redis-server``: many
callers' commands on one connection, each caller given its own replies, error replies kept in their place,
a connection lost or stalled failing only the calls on it, and the next call on a fresh connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from simulator.store.lane import Lane
from tests.conftest import RedisServer


@pytest.fixture
async def lane(redis_server: RedisServer) -> AsyncIterator[tuple[Lane, aioredis.Redis]]:
    client = aioredis.Redis.from_url(redis_server.url(), decode_responses=True)
    lane = Lane(client.connection_pool, timeout=5.0)
    try:
        yield lane, client
    finally:
        await lane.close()
        await client.aclose()


async def test_concurrent_callers_each_get_their_own_replies_in_order(lane: tuple[Lane, aioredis.Redis]) -> None:
    one, client = lane
    names = [f"lane:order:{i}" for i in range(300)]

    async def caller(i: int) -> list[object]:
        name = names[i]
        return await one.call(
            [("SET", name, f"v{i}"), ("INCRBY", name + ":n", i), ("GET", name), ("MGET", name, "none")]
        )

    replies = await asyncio.gather(*(caller(i) for i in range(300)))
    assert replies == [["OK", i, f"v{i}", [f"v{i}", None]] for i in range(300)]
    # every one of them went over the lane's single connection: Redis saw one client doing it all
    clients = await client.client_list()
    assert sum(1 for c in clients if c["cmd"] in ("mget", "get", "set", "incrby")) <= 1


async def test_an_error_reply_stays_in_its_place(lane: tuple[Lane, aioredis.Redis]) -> None:
    one, _ = lane
    first, second = await asyncio.gather(
        one.call([("SET", "lane:e", "text"), ("INCR", "lane:e"), ("GET", "lane:e")]),
        one.call([("ECHO", "after")]),
    )
    assert first[0] == "OK" and first[2] == "text"
    assert isinstance(first[1], ResponseError) and "not an integer" in str(first[1])
    assert second == ["after"]
    with pytest.raises(ResponseError, match="not an integer"):  # execute: the error reply raises
        await one.execute([("GET", "lane:e"), ("INCR", "lane:e")])


async def test_a_restarted_redis_costs_the_next_call_nothing(own_redis: RedisServer) -> None:
    client = aioredis.Redis.from_url(own_redis.url(), decode_responses=True)
    one = Lane(client.connection_pool, timeout=5.0)
    try:
        assert await one.call([("SET", "k", "1")]) == ["OK"]
        own_redis.stop()
        with pytest.raises(ConnectionError):  # Redis away: the call fails at once, nothing hangs
            await one.call([("GET", "k")])
        own_redis.start()
        replies = await asyncio.gather(*(one.call([("SET", f"k{i}", i)]) for i in range(50)))
        assert replies == [["OK"]] * 50
    finally:
        await one.close()
        await client.aclose()


async def test_a_stalled_redis_times_the_calls_out_and_the_lane_recovers(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url(), decode_responses=True)
    one = Lane(client.connection_pool, timeout=0.3)
    try:
        assert await one.call([("PING",)]) == ["PONG"]
        await client.execute_command("CLIENT", "PAUSE", 1000, "ALL")  # every other client waits a second
        with pytest.raises(RedisTimeoutError):
            await one.call([("SET", "lane:stall", "1")])
        await asyncio.sleep(1.0)
        assert await one.call([("GET", "lane:stall")]) in (["1"], [None])  # answered, on a fresh connection
    finally:
        await one.close()
        await client.aclose()


async def test_a_loop_busy_before_the_write_does_not_count_against_redis(redis_server: RedisServer) -> None:
    """The timeout runs from when the commands were written: a loop kept busy longer than the timeout
    between a call and its write (a stall of this process) is not a Redis that did not answer."""
    client = aioredis.Redis.from_url(redis_server.url(), decode_responses=True)
    one = Lane(client.connection_pool, timeout=0.2)
    try:
        assert await one.call([("PING",)]) == ["PONG"]  # the connection is open
        call = asyncio.ensure_future(one.call([("ECHO", "late")]))
        await asyncio.sleep(0)  # the call is queued and its write scheduled...
        time.sleep(0.3)  # noqa: ASYNC251 (on purpose: the loop is busy longer than the timeout before it writes)
        assert await call == ["late"]
    finally:
        await one.close()
        await client.aclose()


async def test_a_caller_that_gives_up_leaves_the_others_their_replies(lane: tuple[Lane, aioredis.Redis]) -> None:
    one, _ = lane
    gone = asyncio.ensure_future(one.call([("ECHO", "cancelled")]))
    kept = asyncio.ensure_future(one.call([("ECHO", "kept")]))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == ["kept"]
    assert await one.call([("ECHO", "next")]) == ["next"]


async def test_a_command_that_cannot_be_sent_shifts_no_reply(lane: tuple[Lane, aioredis.Redis]) -> None:
    one, _ = lane
    with pytest.raises(TypeError):
        await one.call([("SET", "lane:bad", None)])  # type: ignore[list-item]
    assert await one.call([("ECHO", "mine")]) == ["mine"]
