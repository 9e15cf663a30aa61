"""The baseline: a bare aiohttp handler answering a fixed small JSON, served like the simulator is."""

from __future__ import annotations

import sys

from aiohttp import web

BODY = b'{"code":0,"message":"No error.","data":{"balance":100}}'


async def handler(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/bare", handler)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
