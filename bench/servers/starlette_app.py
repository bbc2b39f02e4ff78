"""The Starlette + uvicorn peer (httptools parser, asyncio loop): the hello answer.

``python -m bench.servers.starlette_app --scenario hello --port N``
"""

from __future__ import annotations

import argparse
import sys

from bench.servers.common import HELLO, TEXT_TYPE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="starlette_app")
    p.add_argument("--scenario", choices=("hello",), required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = HELLO.encode()

    async def hello(request: Request) -> Response:
        return Response(body, headers={"Content-Type": TEXT_TYPE})

    app = Starlette(routes=[Route("/", hello)])
    print(f"starlette: serving on http://127.0.0.1:{args.port}/", flush=True)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, loop="asyncio", http="httptools",
        access_log=False, log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
