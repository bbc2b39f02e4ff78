"""The aiohttp peer: the hello answer, byte for byte what the webframe server sends.

``python -m bench.servers.aiohttp_app --scenario hello --port N``
"""

from __future__ import annotations

import argparse
import sys

from bench.servers.common import HELLO, TEXT_TYPE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aiohttp_app")
    p.add_argument("--scenario", choices=("hello",), required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    from aiohttp import web

    body = HELLO.encode()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": TEXT_TYPE})

    app = web.Application()
    app.router.add_get("/", hello)
    print(f"aiohttp: serving on http://127.0.0.1:{args.port}/", flush=True)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
