"""python-hello: a small JSON service for Skiff, built into a WebAssembly component with
componentize-py. Skiff runs a fresh instance per request and calls `IncomingHandler.handle`.

Routes: `GET /` (who answers, with the greeting), `GET /hello/<name>` (a greeting for
`name`), `GET /healthz` (the readiness probe); other paths get a JSON 404, other methods 405.
The greeting comes from the `GREETING` environment variable, which deploy.yaml sets from a
ConfigMap.
"""

import json
from urllib.parse import unquote

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import environment
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

SERVICE = "python-hello"


def env() -> dict:
    """The instance's environment (the container's env), read when a request comes in."""
    return dict(environment.get_environment())


def respond(out: ResponseOutparam, status: int, body: bytes, content_type: str) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", content_type.encode())]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    try:
        with outgoing.write() as stream:
            for start in range(0, len(body), 4096):  # one write is at most 4096 bytes
                stream.blocking_write_and_flush(body[start : start + 4096])
    except Err:
        return  # the client went away before reading the whole body
    OutgoingBody.finish(outgoing, None)


def respond_json(out: ResponseOutparam, status: int, value: dict) -> None:
    body = (json.dumps(value, sort_keys=True) + "\n").encode()
    respond(out, status, body, "application/json")


def route(method_is_get: bool, path: str, env: dict) -> tuple[int, dict]:
    """The status and JSON answer for a request."""
    greeting = env.get("GREETING", "Hello")
    if not method_is_get:
        return 405, {"error": "only GET is served"}
    if path == "/":
        return 200, {
            "service": SERVICE,
            "language": "python",
            "greeting": greeting,
            "namespace": env.get("POD_NAMESPACE", ""),
        }
    if path.startswith("/hello/") and len(path) > len("/hello/"):
        name = unquote(path[len("/hello/") :])
        return 200, {"message": f"{greeting}, {name}!", "service": SERVICE}
    return 404, {"error": f"no route for {path}"}


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?", 1)[0]
        is_get = isinstance(request.method(), Method_Get)
        if path == "/healthz":
            respond(response_out, 200, b"ok", "text/plain")
            return
        status, value = route(is_get, path, env())
        print(json.dumps({"path": path, "status": status}), flush=True)
        respond_json(response_out, status, value)
