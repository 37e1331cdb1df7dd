#!/usr/bin/env python3
"""An echo server written with python-websockets (a peer implementation, for the client's
tests): listens on 127.0.0.1 on a free port, prints "ws://127.0.0.1:PORT/" on one line, echoes
every message (permessage-deflate as the library negotiates it), and exits when its standard
input closes or after 120 seconds, whichever comes first.
"""

import asyncio
import sys

import websockets


async def echo(websocket, *_path):
    async for message in websocket:
        await websocket.send(message)


async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=2**24) as server:
        port = server.sockets[0].getsockname()[1]
        print("ws://127.0.0.1:%d/" % port, flush=True)
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        await asyncio.wait_for(stdin_closed, timeout=120)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except asyncio.TimeoutError:
        pass
