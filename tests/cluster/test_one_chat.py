"""One chat across the nodes: whichever node a client reaches, it joins the same rooms, sees the
same messages in the same order, the same members online, and the same accounts."""

from __future__ import annotations

import time

from helpers import Stack, logged_in_session, sign_up, unique

# Within the app's default limits: 10 messages per 10 s per socket, 30 anonymous ones per 10 s per
# address (every client here has this machine's).
PER_SPEAKER = 9


def test_messages_posted_through_one_node_reach_a_client_of_another_in_order(
    nodes: list[Stack], room: str
):
    speakers_nodes, last = nodes[:-1], nodes[-1]
    speakers = [stack.chat(room, nick=f"s{index}") for index, stack in enumerate(speakers_nodes)]
    try:
        with last.chat(room, nick="ben") as listener:
            started = time.perf_counter()
            sent = [
                speaker.say(unique(f"m{turn}"))
                for turn in range(PER_SPEAKER)
                for speaker in speakers
            ]
            received = [listener.wait_for_message(m["text"], timeout=10) for m in sent]
            elapsed = time.perf_counter() - started
            assert sorted(m["id"] for m in received) == sorted(m["id"] for m in sent)
            assert listener.gaps == [], f"ids skipped: {listener.gaps}"
            assert listener.out_of_order == 0, f"{listener.out_of_order} out of order"
            # And back the other way, to a client of the first node.
            reply = listener.say(unique("reply"))
            assert speakers[0].wait_for_message(reply["text"], timeout=10)["id"] == reply["id"]
            served = sorted({speaker.served_by for speaker in speakers} | {listener.served_by})
    finally:
        for speaker in speakers:
            speaker.close()
    print(
        f"\n{len(sent)} messages through {', '.join(s.base_url for s in speakers_nodes)} reached "
        f"{last.base_url} in id order, none lost, in {elapsed:.2f} s (asgi tasks {served})"
    )
    history = [m["id"] for m in nodes[1].get(f"/api/rooms/{room}/messages").json()]
    assert [*sorted(m["id"] for m in sent), reply["id"]] == history[-(len(sent) + 1) :]


def test_presence_lists_members_connected_through_every_node(nodes: list[Stack], room: str):
    nicks = [f"n{index}" for index in range(len(nodes))]
    clients = [stack.chat(room, nick=nick) for stack, nick in zip(nodes, nicks, strict=True)]
    try:
        for client in clients:
            client.wait_for_presence(nicks, timeout=15)
        served_by = sorted({client.served_by for client in clients})
    finally:
        for client in clients:
            client.close()
    print(f"\npresence {sorted(nicks)} the same through all {len(nodes)} nodes (asgi {served_by})")


def test_a_login_made_through_one_node_is_valid_through_the_others(nodes: list[Stack], room: str):
    username, password = sign_up(nodes[1])
    session = logged_in_session(nodes[1], username, password)
    with session:
        for stack in nodes:
            page = session.get(stack.url("/"), timeout=15)
            assert page.status_code == 200, f"{stack.base_url} answered {page.status_code}"
            assert username in page.text, (
                f"{stack.base_url} does not know the session made through {nodes[1].base_url}"
            )
        with nodes[0].chat(room, nick="impostor", cookies=session.cookies) as client:
            assert client.say(unique("signed"))["nick"] == username
    print(
        f"\naccount {username} made and logged in through {nodes[1].base_url}, known to every node"
    )
