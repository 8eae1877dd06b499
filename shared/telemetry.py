"""Structured logs and traces: JSON log lines carrying chat, institution and trace ids, and
W3C trace context carried in NATS message headers."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import SpanKind

_CONTEXT_FIELDS = ("chat_id", "institution", "operator", "subject", "code")
# Whether this process records spans (it has an exporter); see `recording`.
_recording = False
# Libraries whose debug output carries the data itself (a driver logs each command with its
# documents: a patron's question, their email): never below WARNING, whatever the level.
QUIET = ("pymongo", "nats", "websockets", "uvicorn.protocols", "httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


@dataclass(frozen=True)
class Tracing:
    """Where spans go: an OTLP/HTTP collector (`endpoint`, e.g. http://otel-collector:4318),
    a folder of JSON-lines files (one per process: for tests and for a look without a
    collector), the console. None of them: spans are not recorded at all."""

    endpoint: str | None = None
    folder: str | None = None
    console: bool = False


def setup(
    service: str, level: str = "INFO", as_json: bool = True, tracing: Tracing | None = None
) -> None:
    """Configure logging and tracing for one service process."""
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # Recording spans costs CPU on every request; without an exporter nobody reads them,
    # and the hot paths skip span work altogether (see `recording`).
    processors: list[SpanProcessor] = []
    tracing = tracing or Tracing()
    if tracing.endpoint:
        exporter = OTLPSpanExporter(endpoint=f"{tracing.endpoint.rstrip('/')}/v1/traces")
        processors.append(BatchSpanProcessor(exporter))
    if tracing.folder:
        folder = Path(tracing.folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = (folder / f"{service}-{os.getpid()}.jsonl").open("a", buffering=1)
        lines = ConsoleSpanExporter(
            out=out, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
        processors.append(SimpleSpanProcessor(lines))
    if tracing.console:
        processors.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    global _recording
    _recording = bool(processors)
    if processors:
        provider = TracerProvider(resource=Resource.create({"service.name": f"refdesk-{service}"}))
        for processor in processors:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)


def recording() -> bool:
    """Whether spans are recorded here. When they are not, every span would be a no-op
    without a valid trace (a trace starts only at a recorded frame span), so the message
    path starts none, extracts and injects no context: per message that was about 4% of
    the gateway's and routing's CPU for nothing."""
    return _recording


def span(
    tracer: trace.Tracer, name: str, headers: Mapping[str, str] | None, kind: SpanKind
) -> AbstractContextManager[object]:
    """A span continuing the trace that a NATS message's headers carry, made current; no
    span at all when this process records none."""
    if not _recording:
        return nullcontext()
    return tracer.start_as_current_span(name, context=extract_context(headers), kind=kind)


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (traceparent) to outgoing NATS headers."""
    if _recording:
        propagate.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    return propagate.extract(dict(headers or {}))
