from pydantic import Field

from shared.settings import CommonSettings

DEV_SECRET = "refdesk-local-development-secret-change-me"


class GatewaySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    jwt_secret: str = Field(default=DEV_SECRET, min_length=32)
    operator_token_ttl_s: int = 12 * 3600
    guest_token_ttl_s: int = 24 * 3600
    max_frame_bytes: int = 16 * 1024
    max_body_bytes: int = 4 * 1024
    frames_per_second: float = 20.0
    frame_burst: int = 40
    login_attempts_per_minute: int = 10
    heartbeat_s: float = 10.0
    outbox_limit: int = 1000
    # Frames this replica handles at once, all sockets together; past it a frame is
    # refused `busy` with a retry hint instead of waiting in a queue.
    max_frames_in_flight: int = 512
    # Frames read from one socket and not yet handled, and how long one may wait so: past
    # either, a frame is refused `busy` unhandled (a client cannot queue work without end).
    frame_inbox: int = 32
    max_frame_wait_s: float = 0.5
    # A guest seen on one of an institution's widgets this recently may be invited to chat.
    proactive_window_s: int = 24 * 3600
