#!/usr/bin/env python3
"""A TCP proxy that limits the bytes sent towards the upstream (uploads) to a shared
rate, to see what a slow link does to the staging sink's memory (BENCHMARKS.md).
Listens on 127.0.0.1 only; prints its URL, then runs until killed.

    scripts/throttle_proxy.py --upstream 127.0.0.1:9000 --mbps 4      # 4 MB/s up
    # under scripts/with-emulators.sh:
    #   url=$(scripts/throttle_proxy.py --upstream ${FLOWCTL_TEST_S3_ENDPOINT#http://} \
    #         --mbps 4 --print-url-and-fork)
    #   FLOWCTL_TEST_S3_ENDPOINT=$url BENCH_WAREHOUSE=snowflake cargo bench --bench e2e
"""
import argparse
import asyncio
import os
import sys
import time

CHUNK = 16 * 1024


class Bucket:
    """One token bucket for every connection: the link's upload bandwidth."""

    def __init__(self, rate):
        self.rate = rate
        self.tokens = 0.0
        self.last = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, n):
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.rate * 0.05, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= n:
                    self.tokens -= n
                    return
                await asyncio.sleep((n - self.tokens) / self.rate)


async def pipe(reader, writer, bucket):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if bucket is not None:
                await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main(args):
    host, port = args.upstream.rsplit(":", 1)
    bucket = Bucket(args.mbps * 1e6)

    async def handle(c_reader, c_writer):
        try:
            u_reader, u_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            c_writer.close()
            return
        await asyncio.gather(
            pipe(c_reader, u_writer, bucket), pipe(u_reader, c_writer, None)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = "http://127.0.0.1:%d" % server.sockets[0].getsockname()[1]
    print(url, flush=True)
    if args.print_url_and_fork:
        sys.stdout.close()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="host:port of the real server")
    p.add_argument("--mbps", type=float, required=True, help="upload rate, MB/s")
    p.add_argument(
        "--print-url-and-fork",
        action="store_true",
        help="print the URL, then keep serving in the background",
    )
    a = p.parse_args()
    if a.print_url_and_fork:
        r, w = os.pipe()
        if os.fork() > 0:
            os.close(w)
            print(os.read(r, 200).decode().strip())
            sys.exit(0)
        os.close(r)
        os.dup2(w, 1)
        os.setsid()
    asyncio.run(main(a))
