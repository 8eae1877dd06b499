"""How a refusal reaches a REST caller: its code as an HTTP status, its message in the body."""

from fastapi.responses import JSONResponse

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
