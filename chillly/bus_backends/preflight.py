"""`python -m chillly.bus_backends.preflight`: can the configured bus backend carry a whole
system? `scripts/run` asks before starting supervisord, so a missing Redis server is one line
now instead of every program failing its start three times.

Exit 0: go (zmq: the broker program provides it). 1: Redis does not answer at REDIS_URL.
2: BUS_BACKEND=memory (it joins the clients of one process; programs are processes).
"""

from __future__ import annotations

import asyncio
import sys

from chillly.settings import Settings, load_settings


async def _ping(url: str) -> str | None:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
        return None
    except (RedisError, OSError) as exc:
        return str(exc) or exc.__class__.__name__
    finally:
        await client.aclose()


def main() -> int:
    settings: Settings = load_settings(Settings)
    if settings.bus_backend == "memory":
        print("run: BUS_BACKEND=memory joins only the bus clients of one process; the system "
              "runs on zmq (default) or redis", file=sys.stderr)
        return 2
    if settings.bus_backend == "redis":
        from chillly.bus_backends.redis_pubsub import RedisBackend

        where = RedisBackend(settings.redis_url, "preflight").describe()
        problem = asyncio.run(_ping(settings.redis_url))
        if problem is not None:
            print(f"run: BUS_BACKEND=redis but {where} does not answer ({problem}): start "
                  "redis-server, or uncomment [program:redis] in supervisord.conf "
                  "(docs/operations.md)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
