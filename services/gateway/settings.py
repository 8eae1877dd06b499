from shared.settings import CommonSettings

MIN_SECRET = 32
# Signs tokens only in a development run (REFDESK_DEV=1) that was given no secret.
DEV_SECRET = "refdesk-local-development-secret-change-me"


class GatewaySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    # /healthz, /readyz and /metrics: on a port of their own, never the public one.
    ops_port: int = 9100
    public_url: str = "http://127.0.0.1:8000"
    # Required in production: 32+ random characters, the same on every gateway replica.
    jwt_secret: str = ""
    # The key before the last rotation (`refdesk-admin rotate`): tokens it signed are
    # honoured until they expire; set it empty once the longest token lifetime has passed.
    jwt_previous_secret: str = ""
    # A development run (`make run`, the tests): a missing secret is then allowed.
    dev: bool = False
    operator_token_ttl_s: int = 12 * 3600
    guest_token_ttl_s: int = 24 * 3600
    max_frame_bytes: int = 16 * 1024
    max_body_bytes: int = 4 * 1024
    frames_per_second: float = 20.0
    frame_burst: int = 40
    login_attempts_per_minute: int = 10
    # Failed sign-ins a minute from one address across names (spraying one password), and
    # for one name from any address (a guesser with many addresses; also what could shut
    # the real person out, so high).
    login_failures_per_address: int = 50
    login_failures_per_name: int = 100
    # A socket that has not said `hello` (patron) or `auth` (operator) by then is closed.
    hello_timeout_s: float = 10.0
    # Patron sockets open at once from one address, and chats started from one address a
    # minute (a library's public computers share an address: generous, but bounded).
    patron_sockets_per_address: int = 20
    chat_starts_per_minute: int = 30
    # Addresses of the ingress or load balancer whose X-Forwarded-For is believed
    # (comma-separated); empty: the connecting address is the client's.
    trusted_proxies: str = ""
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
    # Page views each widget may report to one replica: a second on average, and at once.
    page_views_per_second: float = 50.0
    page_view_burst: int = 500
    # How long a cache (the browser's, an ingress, a CDN) may keep a widget's status.
    status_max_age_s: int = 5


def previous_secrets(settings: GatewaySettings) -> list[str]:
    """Keys whose tokens are still honoured after a rotation: a weak one never (anyone who
    knew it could sign themselves in)."""
    old = settings.jwt_previous_secret
    return [old] if len(old) >= MIN_SECRET and old != DEV_SECRET else []


def signing_secret(settings: GatewaySettings) -> str:
    """The secret that signs tokens. Without a real one the gateway does not start (anyone
    who knows the default could sign themselves a consortium admin), unless this is a
    development run."""
    secret = settings.jwt_secret
    if len(secret) >= MIN_SECRET and secret != DEV_SECRET:
        return secret
    if settings.dev:
        return secret if len(secret) >= MIN_SECRET else DEV_SECRET
    raise SystemExit(
        f"REFDESK_JWT_SECRET must be set to {MIN_SECRET} or more random characters, the same "
        "on every gateway replica (or REFDESK_DEV=1 for a development run)"
    )
