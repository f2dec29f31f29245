"""The per-connection token bucket, on a clock the test controls."""

from chat.ratelimit import TokenBucket


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_full_burst_then_refuses():
    bucket = TokenBucket(3, per_seconds=10, clock=Clock())

    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_capacity_per_period():
    clock = Clock()
    bucket = TokenBucket(3, per_seconds=9, clock=clock)
    for _ in range(3):
        bucket.allow()

    clock.now += 2.9
    refused_early = bucket.allow()
    clock.now += 0.2  # 3.1 s: one token (9 s / 3)
    allowed_after_one_interval = bucket.allow()

    assert (refused_early, allowed_after_one_interval) == (False, True)


def test_bucket_never_saves_up_more_than_its_capacity():
    clock = Clock()
    bucket = TokenBucket(2, per_seconds=1, clock=clock)

    clock.now += 3600
    results = [bucket.allow() for _ in range(3)]

    assert results == [True, True, False]
