"""How a refusal or a request that does not validate reaches a REST caller: the code as an
HTTP status, and a body of the same shape as a socket's `error` frame."""

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.bus import describe_errors
from shared.errors import Refusal

STATUS = {
    "invalid": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "gone": 410,
    "unavailable": 503,
    "rate_limited": 429,
    "too_large": 413,
    "busy": 503,
    "internal": 500,
}


def refusal_response(refusal: Refusal) -> JSONResponse:
    body: dict[str, str | int] = {"code": refusal.code, "message": refusal.message}
    if refusal.owner:
        body["owner"] = refusal.owner
    headers: dict[str, str] = {}
    if refusal.retry_after_ms is not None:
        body["retry_after_ms"] = refusal.retry_after_ms
        headers["Retry-After"] = str(max(1, -(-refusal.retry_after_ms // 1000)))
    return JSONResponse(body, status_code=STATUS[refusal.code], headers=headers)


async def on_refusal(_: Request, exc: Refusal) -> JSONResponse:
    return refusal_response(exc)


async def on_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the fields (`fields`, and the message), without the input: a body
    is never sent back, however large or whatever it holds."""
    # Only the first part says where (body, query, path): a field may be named `body`.
    errors = [
        {
            **e,
            "loc": list(
                e["loc"][1:] if e["loc"][:1] in (("body",), ("query",), ("path",)) else e["loc"]
            ),
        }
        for e in exc.errors()
    ]
    fields = sorted({str(e["loc"][0]) for e in errors if e["loc"]})
    body = {"code": "invalid", "message": describe_errors(errors), "fields": fields}
    return JSONResponse(body, status_code=422)
