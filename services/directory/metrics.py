"""The directory's Prometheus metrics."""

from prometheus_client import Counter

CHANGES = Counter(
    "refdesk_config_changes_total", "Configuration records saved or deleted", ["kind"]
)
SIGN_INS = Counter("refdesk_sign_ins_total", "Staff sign-in checks by outcome", ["outcome"])
