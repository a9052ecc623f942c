"""A fast loopback HTTP/1.1 origin for the live benchmark (asyncio Protocol, keep-alive, no framework).

    python bench/upstream.py POOL.json PORT     # prints "ready PORT" once listening

Listens on 127.0.0.1-127.0.0.4 (loopback only) at the same port; see traffic.py for what it answers.
`python -m http.server` manages a few hundred requests/s; this answers tens of thousands.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from traffic import HOSTS, Answers, load_pool


class Origin(asyncio.Protocol):
    def __init__(self, answers: Answers):
        self.answers = answers
        self.buf = b""
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            clen = 0
            low = head.lower()
            i = low.find(b"\r\ncontent-length:")
            if i >= 0:
                j = low.find(b"\r\n", i + 2)
                clen = int(low[i + 17: j if j >= 0 else len(low)].strip())
            total = end + 4 + clen
            if len(buf) < total:
                break
            line = head[:head.find(b"\r\n")] if b"\r\n" in head else head
            method, target, _ = line.split(b" ", 2)
            out.append(self.answers.answer(method, target))
            buf = buf[total:]
        self.buf = buf
        if out:
            self.transport.write(b"".join(out))


async def main(pool_file: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    answers = Answers(load_pool(pool_file), port)
    servers = [await loop.create_server(lambda: Origin(answers), host, port, reuse_address=True, backlog=512)
               for host in HOSTS]
    stop = asyncio.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    print(f"ready {port}", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
