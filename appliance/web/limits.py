"""Flood limits that refuse at once instead of slowing a web thread down.

A limit never sleeps: a request over its limit is refused with 429 and a Retry-After,
so a flood costs the flooder its answers and nobody else a thread. State lives in the
web process's memory (one gunicorn process, see server.WORKERS), keyed by the client's
address; a restart forgets it, which only ever errs towards letting a person in.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class TokenBucket:
    """At most `burst` actions at once per key, refilled at one per `every` seconds."""

    burst: int
    every: float
    clock: Clock = time.monotonic
    max_keys: int = 10000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float:
        """Spend one token: 0 when allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= self.max_keys:
                    self._forget_full(now)
                b = self._buckets[key] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.at) / self.every)
            b.at = now
            if b.tokens >= 1:
                b.tokens -= 1
                return 0.0
            return (1 - b.tokens) * self.every

    def _forget_full(self, now: float) -> None:
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.at) / self.every >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:  # still full: forget the oldest
            for k in sorted(self._buckets, key=lambda k: self._buckets[k].at)[:len(full) or 1]:
                del self._buckets[k]


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass
class Backoff:
    """Failed attempts per key: `free` tries, then a lock that doubles with each failure.

    The `free`-th failure locks for `base` seconds, each further one for twice as long, capped
    at `cap`; a key quiet for `forget` seconds starts afresh, a success clears it.
    """

    free: int
    base: float = 30.0
    cap: float = 3600.0
    forget: float = 24 * 3600.0
    clock: Clock = time.monotonic
    _keys: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, key: str) -> float:
        """Seconds this key must still wait before its next attempt (0: may try now)."""
        now = self.clock()
        with self._lock:
            f = self._keys.get(key)
            if f is None:
                return 0.0
            if now - f.last > self.forget:
                del self._keys[key]
                return 0.0
            return max(0.0, f.locked_until - now)

    def fail(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            f = self._keys.setdefault(key, _Failures())
            if now - f.last > self.forget:
                f.count = 0
            f.count += 1
            f.last = now
            over = f.count - self.free  # 0 on the last free try: that one locks already
            if over >= 0:
                f.locked_until = now + min(self.cap, self.base * 2 ** min(over, 32))

    def succeed(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def failures(self, key: str) -> int:
        f = self._keys.get(key)
        return f.count if f is not None else 0


def retry_after(seconds: float) -> int:
    """A Retry-After value: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))


@dataclass
class _Lease:
    client: str
    seen: float


@dataclass
class Leases:
    """Which client opened each open dossier, and when its session was last seen.

    An open dossier whose session has not been seen for the lease time is abandoned
    (the kiosk's own idle reset would have cancelled it long before): the flood limits
    may cancel it to make room. Wall-clock seconds, to compare with `created_at`.
    """

    clock: Clock = time.time
    started: float = field(default_factory=time.time)
    _leases: dict[int, _Lease] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def bind(self, dossier_id: int, client: str) -> None:
        with self._lock:
            self._leases[dossier_id] = _Lease(client, self.clock())

    def touch(self, dossier_id: int) -> None:
        with self._lock:
            lease = self._leases.get(dossier_id)
            if lease is not None:
                lease.seen = self.clock()

    def client(self, dossier_id: int) -> str | None:
        lease = self._leases.get(dossier_id)
        return lease.client if lease else None

    def seen(self, dossier_id: int, created_at: float) -> float:
        """Last sign of life: the session's last request, else creation (or this
        process's start, for a dossier opened before it)."""
        lease = self._leases.get(dossier_id)
        return lease.seen if lease else max(created_at, self.started)

    def forget(self, keep: set[int]) -> None:
        with self._lock:
            for dossier_id in set(self._leases) - keep:
                del self._leases[dossier_id]
