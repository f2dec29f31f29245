"""Per-connection rate limit: a token bucket, so short bursts pass and floods do not."""

import time
from collections.abc import Callable


class TokenBucket:
    """Allows `capacity` messages at once, refilled at `capacity` per `per_seconds`.

    Lives in the consumer, so it limits one connection; that is the unit a misbehaving client
    controls, and it needs no shared state between processes.
    """

    def __init__(
        self, capacity: int, per_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self.capacity = capacity
        self.refill_per_second = capacity / per_seconds
        self.clock = clock
        self.tokens = float(capacity)
        self.updated_at = clock()

    def allow(self) -> bool:
        now = self.clock()
        elapsed = max(0.0, now - self.updated_at)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_second)
        self.updated_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
