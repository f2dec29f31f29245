"""Connections Redis closed while they sat idle in a pool (a Redis restart, an idle timeout,
CLIENT KILL) are replaced when next taken, never handed to a consumer.

redis-py 8.1.0 under RESP3 hands them out (redis/redis-py#4252): the next join then failed in
group_add with "Connection closed by server" and the WebSocket closed with 1011, for as long as
dead connections were left in the channel layer's and presence's pools.
"""

import asyncio

import pytest
import redis

pytestmark = pytest.mark.django_db(transaction=True)


def close_every_other_connection(redis_server) -> int:
    """What a Redis restart does to the app's idle connections, without losing the data."""
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    try:
        return client.client_kill_filter(_type="normal", skipme=True)
    finally:
        client.close()


async def test_joining_after_redis_closed_the_pooled_connections(chat, room, redis_server):
    # Fill the channel layer's and presence's pools with connections, then leave them idle.
    earlier = [await chat.join(room, f"early{n}") for n in range(3)]
    for socket in earlier:
        await socket.close()

    assert close_every_other_connection(redis_server) > 0
    await asyncio.sleep(0.2)  # the app's event loop reads the servers' end of each connection

    alice = await chat.join(room, "alice")
    bob = await chat.join(room, "bob")
    await alice.presence_becomes(["alice", "bob"])
    sent = await bob.say("after the restart")
    assert (await alice.receive_type("message"))["id"] == sent["id"]
