"""{{name}}: an HTTP service for Skiff, built into a WebAssembly component by componentize-py.

Skiff runs one fresh instance of the component per request and calls
`IncomingHandler.handle`. Whatever is printed goes to the pod's log (`kubectl logs`).
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Other,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


def method_name(request: IncomingRequest) -> str:
    method = request.method()
    if isinstance(method, Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def respond(response_out: ResponseOutparam, status: int, body: bytes) -> None:
    """Sends `body` as a text/plain response with `status`."""
    headers = Fields.from_list([("content-type", b"text/plain")])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    try:
        with outgoing.write() as stream:
            for start in range(0, len(body), 4096):  # one write is at most 4096 bytes
                stream.blocking_write_and_flush(body[start : start + 4096])
    except Err:
        return  # the client went away before reading the whole body
    OutgoingBody.finish(outgoing, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?", 1)[0]
        print(f"{method_name(request)} {path}", flush=True)
        if path == "/healthz":
            respond(response_out, 200, b"ok")
        else:
            respond(response_out, 200, b"Hello from {{name}} (python)!\n")
