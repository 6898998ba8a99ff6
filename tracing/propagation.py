"""W3C Trace Context propagation at the current spec's strict level (traceparent, tracestate, traceresponse).

Section names refer to W3C Trace Context Level 2 (https://www.w3.org/TR/trace-context-2/) and the current
editor's draft (https://w3c.github.io/trace-context/), "Trace Context HTTP Request Headers Format".
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context.context import Context
from opentelemetry.environment_variables import OTEL_PROPAGATORS
from opentelemetry.propagators import textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import SpanContext, TraceState

from tracing import attributes as keys

if TYPE_CHECKING:
    from tracing.config import TracingConfig

logger = logging.getLogger("flowexec.tracing")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACERESPONSE = "traceresponse"

# Version 00 is exactly version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex only (HEXDIGLC).
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# A higher version: the same first four fields, then end of string or "-" ("Versioning of traceparent").
_TRACEPARENT_FUTURE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?", re.S)
_OWS = " \t"
# Flags this version defines: sampled (0x01) and, in Level 2, random-trace-id (0x02). Other bits are reserved
# and "Vendors MUST set those to zero", so they are not carried forward.
_KNOWN_FLAGS = 0x03

# "Key": key = ( lcalpha / DIGIT ) 0*255 ( keychar ); keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
# "Value": value = 0*255(chr) nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E; chr = %x20 / nblk-chr
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
MAX_MEMBERS = 32
_REQUEST_ID = re.compile(keys.REQUEST_ID_PATTERN)
# "tracestate Limits": propagate at least 512 characters; beyond that truncate whole entries, entries longer
# than 128 characters first, then from the end.
MAX_TRACESTATE_LENGTH = 512
LONG_ENTRY_LENGTH = 128


def is_valid_member(key: str, value: str) -> bool:
    """True if key and value match the current "Key" and "Value" grammar."""
    return _KEY.fullmatch(key) is not None and _VALUE.fullmatch(value) is not None


class W3CTraceState(TraceState):
    """TraceState validated with the current tracestate grammar (OTel's predates it), order preserved.

    The OTel API's TraceState re-validates keys with the Level 1 grammar (simple-key / tenant@system), so it
    rejects current-draft keys such as ``1a``, ``foo@bar@baz`` or a 256-character key containing ``@``; this
    subclass keeps every mutation in the current grammar.
    """

    def __init__(self, entries: Sequence[tuple[str, str]] | None = None) -> None:
        super().__init__()
        for key, value in (entries or ())[:MAX_MEMBERS]:
            # "Combined Header Value": only one entry per key; the left-most is the latest position.
            if is_valid_member(key, value) and key not in self._dict:
                self._dict[key] = value

    def add(self, key: str, value: str) -> W3CTraceState:
        """New state with key added on the left ("Mutating the tracestate Field"); same if invalid/full."""
        if key in self._dict or not is_valid_member(key, value) or len(self._dict) >= MAX_MEMBERS:
            return self
        return W3CTraceState([(key, value), *self._dict.items()])

    def update(self, key: str, value: str) -> W3CTraceState:
        """New state with key set and moved to the left ("Modified keys MUST be moved to the beginning")."""
        if not is_valid_member(key, value) or (key not in self._dict and len(self._dict) >= MAX_MEMBERS):
            return self
        return W3CTraceState([(key, value), *((k, v) for k, v in self._dict.items() if k != key)])

    def delete(self, key: str) -> W3CTraceState:
        """New state without key."""
        if key not in self._dict:
            return self
        return W3CTraceState([(k, v) for k, v in self._dict.items() if k != key])

    @classmethod
    def from_header(cls, header_list: Iterable[str]) -> W3CTraceState:
        """Parse one or more tracestate field values at the spec's strict level.

        * Multiple header fields are combined with "," in order (RFC 7230 section 3.2.2, "tracestate Header
          Field Values").
        * OWS around members is ignored; empty and whitespace-only members are allowed and skipped ("list").
        * More than 32 list-members does not match ``list`` (``list-member 0*31( OWS "," OWS list-member )``):
          the header cannot be parsed and is discarded whole ("If the tracestate header cannot be parsed the
          vendor MAY discard the entire header").
        * Any member that does not match "Key"/"Value" (a key over 256 characters or starting with "@", a value
          containing "=", an empty value, no "=") or a repeated key ("Only one entry per key is allowed", W3C
          test suite "tracestate duplicated keys") makes the header invalid: it is discarded whole, at the
          strict level of the W3C test suite; the trace itself continues.
        * Over 512 characters: whole entries are removed, longer than 128 characters first, then from the end
          ("tracestate Limits").
        """
        members = [member.strip(_OWS) for member in ",".join(header_list).split(",")]
        members = [member for member in members if member]
        if len(members) > MAX_MEMBERS:
            return cls()
        entries: dict[str, str] = {}
        for member in members:
            key, sep, value = member.partition("=")
            if not sep or not is_valid_member(key, value) or key in entries:
                return cls()
            entries[key] = value
        return cls(_truncate(list(entries.items())))

    def to_header(self) -> str:
        """Members in order, comma-separated."""
        return ",".join(f"{key}={value}" for key, value in self._dict.items())


def _truncate(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop whole entries until the combined header fits MAX_TRACESTATE_LENGTH ("tracestate Limits")."""

    def length(items: list[tuple[str, str]]) -> int:
        return sum(len(k) + 1 + len(v) for k, v in items) + max(len(items) - 1, 0)

    while length(entries) > MAX_TRACESTATE_LENGTH:
        long_ones = [i for i, (k, v) in enumerate(entries) if len(k) + 1 + len(v) > LONG_ENTRY_LENGTH]
        del entries[long_ones[0] if long_ones else -1]
    return entries


def parse_traceparent(values: Sequence[str] | None) -> tuple[int, int, int] | None:
    """(trace_id, parent_id, trace_flags) from the carrier's traceparent values, or None if invalid.

    * Repeated traceparent header fields (more than one value, or a comma-combined value as WSGI produces)
      do not match the single-value grammar: the trace restarts (W3C test suite "traceparent duplicated";
      RFC 7230 section 3.2.2 only allows repeating list-valued fields).
    * Leading/trailing OWS is ignored.
    * "version": 2 lower-case hex digits followed by "-", and "Version ff is invalid".
    * Version 00 must be exactly ``00-{32 hex}-{16 hex}-{2 hex}`` (no extra fields: "Vendors MUST NOT parse
      or assume anything about unknown fields for this version" applies to higher versions only).
    * A higher version: at least 55 characters, then the same three fields, the flags followed by end of
      string or "-" ("Versioning of traceparent").
    * "trace-id"/"parent-id": all zeroes forbidden; upper-case hex is not HEXDIGLC, so invalid.
    """
    if not values or len(values) != 1:
        return None
    value = values[0].strip(_OWS)
    if "," in value:
        return None
    version = value[:2]
    if len(value) < 3 or value[2] != "-" or re.fullmatch("[0-9a-f]{2}", version) is None or version == "ff":
        return None
    if version == "00":
        match = _TRACEPARENT_00.fullmatch(value)
        groups = match.groups() if match else None
    else:
        match = _TRACEPARENT_FUTURE.fullmatch(value) if len(value) >= 55 else None
        groups = match.groups()[1:] if match else None
    if groups is None:
        return None
    trace_id, parent_id, flags = int(groups[0], 16), int(groups[1], 16), int(groups[2], 16)
    if trace_id == 0 or parent_id == 0:
        return None
    return trace_id, parent_id, flags & _KNOWN_FLAGS


class W3CTraceContextPropagator(TraceContextTextMapPropagator):
    """The OTel W3C propagator with the current Trace Context rules for extraction.

    Differences from the SDK's TraceContextTextMapPropagator: repeated or comma-combined traceparent values
    restart the trace (the SDK reads the first value); unknown trace-flags bits are cleared; tracestate uses
    the current key grammar (``foo@bar@baz``, digit-led and 256-character keys), discards the whole header
    when any member is invalid or repeated or there are more than 32, and truncates past 512 characters.
    Injection is inherited: traceparent version 00 and tracestate in order.
    """

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        """Context with the remote span from carrier, or `context` unchanged if traceparent is invalid."""
        if context is None:
            context = Context()
        parsed = parse_traceparent(getter.get(carrier, TRACEPARENT))
        if parsed is None:
            # "If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate."
            return context
        trace_id, span_id, flags = parsed
        tracestate_values = getter.get(carrier, TRACESTATE)
        span_context = SpanContext(
            trace_id=trace_id,
            span_id=span_id,
            is_remote=True,
            trace_flags=trace.TraceFlags(flags),
            trace_state=W3CTraceState.from_header(tracestate_values) if tracestate_values else None,
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)


def traceresponse_header(span_context: SpanContext) -> str:
    """Trace Context Level 2 ``traceresponse`` value: version 00, trace-id, this span's id, flags."""
    return (
        f"00-{trace.format_trace_id(span_context.trace_id)}-{trace.format_span_id(span_context.span_id)}"
        f"-{int(span_context.trace_flags) & _KNOWN_FLAGS:02x}"
    )


class RequestIdPropagator(textmap.TextMapPropagator):
    """Send the chain's request id (baggage ``request_id``) as X-Request-ID on every outgoing call.

    The rule, one home: the caller's id (X-Request-ID header, else baggage) wins at the server
    (tracing.middleware), and every outgoing request made in its context (an ``http`` step's urllib3 call,
    the CLI's) forwards it, so every span of the chain carries the same ``request_id``. Extraction is the
    middleware's job, so this propagator only injects.
    """

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        """Unchanged: the server reads X-Request-ID itself."""
        return context if context is not None else Context()

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        """Set X-Request-ID from the context's baggage when it holds a well-formed request id."""
        value = baggage.get_baggage(keys.REQUEST_ID, context)
        if isinstance(value, str) and is_request_id(value):
            setter.set(carrier, keys.REQUEST_ID_HEADER, value)

    @property
    def fields(self) -> set[str]:
        """The header this propagator sets."""
        return {keys.REQUEST_ID_HEADER}


def is_request_id(value: str) -> bool:
    """Whether value is a request id every client and the service accept (tracing.attributes.REQUEST_ID_PATTERN)."""
    return _REQUEST_ID.fullmatch(value) is not None


def build_propagator(config: TracingConfig) -> tuple[textmap.TextMapPropagator, tuple[str, ...]]:
    """config.propagators as a composite; tracecontext is our strict W3C one; unknown names warn, skipped.

    Unless propagation is off ("none"), the request id travels too (RequestIdPropagator).
    """
    if "none" in config.propagators:
        return CompositePropagator([]), ()
    propagators: list[textmap.TextMapPropagator] = []
    used: list[str] = []
    for name in config.propagators:
        if name == "tracecontext":
            propagators.append(W3CTraceContextPropagator())
        elif name == "baggage":
            propagators.append(W3CBaggagePropagator())
        elif found := list(_entry_points(name)):
            propagators.append(found[0].load()())
        else:
            logger.warning("unknown propagator %r in OTEL_PROPAGATORS; skipped", name)
            continue
        used.append(name)
    return CompositePropagator([*propagators, RequestIdPropagator()]), tuple(used)


def _entry_points(name: str) -> Iterable[object]:
    """Installed propagators of this name (the `opentelemetry_propagator` entry point group)."""
    # Lazy: reading the installed distributions' entry points is needed only for a name not built in.
    from opentelemetry.util._importlib_metadata import entry_points

    return entry_points(group="opentelemetry_propagator", name=name)


def install_propagators(config: TracingConfig) -> tuple[str, ...]:
    """Set the global textmap from config; returns the names in use. Needs no SDK (tracing disabled too)."""
    propagator, used = build_propagator(config)
    if "opentelemetry.propagate" not in sys.modules and [n for n in config.propagators if n not in used]:
        # opentelemetry.propagate parses OTEL_PROPAGATORS at import and raises on an unknown name; keep only
        # the names we accepted so that import (here or in an instrumentation) warns-and-falls-back instead.
        os.environ[OTEL_PROPAGATORS] = ",".join(used) or "none"
    # Lazy: importing it reads OTEL_PROPAGATORS, which the line above may have just corrected.
    from opentelemetry import propagate

    propagate.set_global_textmap(propagator)
    return used
