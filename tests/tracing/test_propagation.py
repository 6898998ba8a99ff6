"""W3CTraceContextPropagator against the W3C Trace Context rules (Level 2 / current editor's draft)."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracing.propagation import RequestIdPropagator, W3CTraceContextPropagator, W3CTraceState, traceresponse_header

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"

propagator = W3CTraceContextPropagator()


def remote(carrier: dict[str, list[str] | str]) -> trace.SpanContext:
    """The span context extracted from carrier (INVALID_SPAN_CONTEXT if none)."""
    return trace.get_current_span(propagator.extract(carrier)).get_span_context()


def inject(span_context: trace.SpanContext) -> dict[str, str]:
    """Headers injected for a context whose current span is span_context."""
    carrier: dict[str, str] = {}
    propagator.inject(carrier, trace.set_span_in_context(trace.NonRecordingSpan(span_context)))
    return carrier


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(f"ff-{TRACE_ID}-{PARENT_ID}-01", id="version-ff"),
        pytest.param(f"0-{TRACE_ID}-{PARENT_ID}-01", id="version-short"),
        pytest.param(f"0g-{TRACE_ID}-{PARENT_ID}-01", id="version-non-hex"),
        pytest.param(f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01", id="trace-id-short"),
        pytest.param(f"00-{TRACE_ID}0-{PARENT_ID}-01", id="trace-id-long"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID[:-1]}-01", id="parent-id-short"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}-1", id="flags-short"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}-001", id="flags-long"),
        pytest.param(f"00-{'0' * 32}-{PARENT_ID}-01", id="trace-id-zero"),
        pytest.param(f"00-{TRACE_ID}-{'0' * 16}-01", id="parent-id-zero"),
        pytest.param(f"00-{TRACE_ID[:-1]}g-{PARENT_ID}-01", id="trace-id-non-hex"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}-0.", id="flags-non-hex"),
        pytest.param(f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", id="trace-id-upper"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID.upper()}-01", id="parent-id-upper"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}-0A", id="flags-upper"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}-01-extra", id="version-00-extra-field"),
        pytest.param(f"00_{TRACE_ID}_{PARENT_ID}_01", id="wrong-delimiter"),
        pytest.param(f"cc-{TRACE_ID}-{PARENT_ID}-01.x", id="future-flags-not-followed-by-dash"),
        pytest.param(f"{VALID},{VALID}", id="comma-joined-repeat"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_traceparent_is_ignored_so_a_new_trace_starts(value):
    """Section "traceparent Header Field Values": HEXDIGLC only, version ff forbidden, exact field lengths,
    all-zero trace-id / parent-id invalid ("vendors MUST ignore the traceparent"); version 00 has exactly four
    fields; "Versioning of traceparent": a higher version's flags must be followed by end of string or "-".
    A comma-joined value (how WSGI merges repeated header lines) matches none of this."""
    assert remote({"traceparent": value, "tracestate": "a=1"}) == trace.INVALID_SPAN_CONTEXT


def test_repeated_traceparent_headers_start_a_new_trace():
    """traceparent is not a list-valued field (RFC 7230 section 3.2.2), so two header fields are invalid,
    even when equal (W3C test suite "test_traceparent_duplicated"); the SDK propagator uses the first one."""
    carrier = {"traceparent": [VALID, VALID]}
    assert remote(carrier) == trace.INVALID_SPAN_CONTEXT
    stock = TraceContextTextMapPropagator().extract(carrier)
    assert trace.get_current_span(stock).get_span_context().is_valid


@pytest.mark.parametrize(("flags", "sampled"), [("01", True), ("00", False), ("09", True), ("02", False)])
def test_valid_traceparent_extracts_ids_and_sampled_flag(flags, sampled):
    """Section "trace-flags": the sampled flag is bit 0, read with a mask, not by value."""
    span_context = remote({"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{flags}"})
    assert span_context.is_remote
    assert trace.format_trace_id(span_context.trace_id) == TRACE_ID
    assert trace.format_span_id(span_context.span_id) == PARENT_ID
    assert span_context.trace_flags.sampled is sampled


def test_unknown_flag_bits_are_not_propagated():
    """ "Other Flags": reserved bits "Vendors MUST set those to zero"; Level 2 defines sampled and random."""
    span_context = remote({"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-ff"})
    assert int(span_context.trace_flags) == 0x03
    assert inject(span_context)["traceparent"] == f"00-{TRACE_ID}-{PARENT_ID}-03"


def test_surrounding_whitespace_is_ignored():
    """OWS around the header value is not part of it (W3C test suite "test_traceparent_ows_handling")."""
    assert remote({"traceparent": f" \t{VALID}\t "}).is_valid


@pytest.mark.parametrize(
    "value",
    [f"cc-{TRACE_ID}-{PARENT_ID}-01", f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like"],
    ids=["no-extra", "extra-fields"],
)
def test_future_version_parses_the_first_four_fields(value):
    """ "Versioning of traceparent": for a higher version parse trace-id, parent-id and flags at their
    positions, checking each is followed by "-" (flags: or end of string); unknown fields are not parsed, and
    the outgoing header is downgraded to version 00."""
    span_context = remote({"traceparent": value})
    assert trace.format_trace_id(span_context.trace_id) == TRACE_ID
    assert inject(span_context)["traceparent"] == VALID


def test_tracestate_is_not_parsed_when_traceparent_is_invalid():
    """ "If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate"."""
    context = propagator.extract({"traceparent": "garbage", "tracestate": "a=1"})
    assert trace.get_current_span(context).get_span_context().trace_state == W3CTraceState()


def tracestate_of(*values: str) -> W3CTraceState:
    """The tracestate extracted alongside a valid traceparent from these header field values."""
    state = remote({"traceparent": VALID, "tracestate": list(values)}).trace_state
    assert isinstance(state, W3CTraceState)
    return state


def test_multiple_tracestate_fields_combine_in_order_and_inject_unchanged():
    """ "tracestate Header Field Values": multiple fields are combined per RFC 7230 (in order); "Mutating the
    tracestate Field": the order of unmodified pairs MUST be preserved, so it is re-sent as received."""
    state = tracestate_of("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", "", " zeta=1 ,\t,alpha=2")
    assert list(state.items()) == [
        ("rojo", "00f067aa0ba902b7"),
        ("congo", "t61rcWkgMzE"),
        ("zeta", "1"),
        ("alpha", "2"),
    ]
    span_context = remote({"traceparent": VALID, "tracestate": "rojo=1,congo=2,alpha=3"})
    assert inject(span_context)["tracestate"] == "rojo=1,congo=2,alpha=3"


def test_duplicate_key_discards_the_whole_tracestate_but_the_trace_continues():
    """ "tracestate Header Field Values" / "Combined Header Value": "Only one entry per key is allowed"; a header
    that repeats a key does not match the grammar, and the W3C test suite (strict level, "tracestate duplicated
    keys") expects it discarded: "If the tracestate header cannot be parsed the vendor MAY discard the entire
    header". The traceparent still holds, so the trace continues."""
    for values in [("foo=1,bar=2,foo=3",), ("foo=1", "foo=2")]:
        span_context = remote({"traceparent": VALID, "tracestate": list(values)})
        assert span_context.trace_id == int(TRACE_ID, 16)
        assert len(span_context.trace_state) == 0
        assert "tracestate" not in inject(span_context)


@pytest.mark.parametrize(
    "key",
    ["foo@bar@baz", "1vendor", "tenant@vendor-with-long-name", "a" * 256, "t" * 250 + "@" + "v" * 5],
    ids=["multi-at", "digit-first", "long-system-id", "256-chars", "256-chars-with-at"],
)
def test_current_key_grammar_is_accepted(key):
    """ "Key": key = ( lcalpha / DIGIT ) 0*255 ( keychar ), keychar includes "@": the current draft replaced
    the tenant@system split (which the SDK still enforces) with one 256-character key grammar."""
    assert dict(tracestate_of(f"{key}=v,other=1")) == {key: "v", "other": "1"}


@pytest.mark.parametrize(
    "member",
    ["Foo=1", "@foo=1", "foo.bar=1", "foo =1", "a" * 257 + "=1", "foo=", "foo", "foo=x=y", "foo=\x7f", "@=1"],
    ids=[
        "upper",
        "at-first",
        "dot",
        "space-in-key",
        "257-chars",
        "empty-value",
        "no-equals",
        "equals-in-value",
        "non-printable",
        "only-at",
    ],
)
def test_one_invalid_member_discards_the_whole_tracestate_but_the_trace_continues(member):
    """ "Key": key = ( lcalpha / DIGIT ) 0*255 ( keychar ), so a key over 256 characters or starting with "@" is
    invalid; "Value": value = 0*255(chr) nblk-chr, so a value containing "=" or an empty value is invalid;
    "list-member" needs "=". Such a header cannot be parsed ("the vendor MAY discard the entire header"): at the
    strict level of the W3C test suite it is dropped as a whole, not member by member, and the trace continues."""
    span_context = remote({"traceparent": VALID, "tracestate": f"first=1,{member},last=2"})
    assert span_context.trace_id == int(TRACE_ID, 16) and span_context.span_id == int(PARENT_ID, 16)
    assert len(span_context.trace_state) == 0
    assert "tracestate" not in inject(span_context)


def test_trailing_value_whitespace_is_optional_whitespace():
    """ "Value": trailing spaces are OWS, not part of the value; leading spaces inside a value are kept."""
    assert dict(tracestate_of("foo=bar \t,baz= x")) == {"foo": "bar", "baz": " x"}


def test_value_grammar_allows_every_printable_character_but_comma_and_equals():
    """ "Value": 0*255(chr) nblk-chr, chr = %x20 / nblk-chr, nblk-chr excludes "," and "="."""
    value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=").strip()
    assert tracestate_of(f"k={value}")["k"] == value


def test_32_members_are_kept_and_33_discard_the_header():
    """ "tracestate Header Field Values" / "list": list-member 0*31( OWS "," OWS list-member ) - at most 32; a
    longer list cannot be parsed and "the vendor MAY discard the entire header" (W3C test suite, strict level 2:
    member count limit), across combined header fields too."""
    members = [f"k{i:02d}=v" for i in range(33)]
    assert len(tracestate_of(",".join(members[:32]))) == 32
    assert len(tracestate_of(*[",".join(members[:16]), ",".join(members[16:])])) == 0


def test_empty_members_do_not_count_toward_32():
    """Empty and whitespace-only list members are allowed (they arise from combining fields)."""
    members = ",".join(f"k{i:02d}=v" for i in range(32))
    assert len(tracestate_of(members, "", " , ")) == 32


def test_over_512_characters_drops_long_entries_first_then_from_the_end():
    """ "tracestate Limits": truncate whole entries; entries over 128 characters first, then from the end."""
    long_entry = "long=" + "x" * 200
    small = [f"s{i:02d}=" + "y" * 40 for i in range(12)]  # 12 * 44 chars + commas > 512
    state = tracestate_of(",".join([small[0], long_entry, *small[1:]]))
    header = state.to_header()
    assert len(header) <= 512
    assert "long" not in state
    assert list(state)[:3] == ["s00", "s01", "s02"]
    assert "s11" not in state


def test_state_mutations_keep_the_current_grammar_and_order():
    """ "Mutating the tracestate Field": updated or added keys move to the left; the rest keep their order."""
    state = tracestate_of("a@b@c=1,b=2,c=3")
    assert state.update("c", "9").to_header() == "c=9,a@b@c=1,b=2"
    assert state.add("new@x@y", "1").to_header() == "new@x@y=1,a@b@c=1,b=2,c=3"
    assert state.delete("b").to_header() == "a@b@c=1,c=3"
    assert state.add("BAD", "1") is state


def test_traceresponse_header_is_version_00_with_trace_and_span_id_and_flags():
    """Trace Context Level 2 "traceresponse": version "-" trace-id "-" proposed/child id "-" trace-flags."""
    span_context = trace.SpanContext(
        int(TRACE_ID, 16), int(PARENT_ID, 16), is_remote=False, trace_flags=trace.TraceFlags(1)
    )
    assert traceresponse_header(span_context) == f"00-{TRACE_ID}-{PARENT_ID}-01"


def test_request_id_propagator_forwards_the_chains_request_id_from_baggage():
    """One request id per chain: every outgoing call made in a request's context sends its id as X-Request-ID
    (baggage carries it inside the process); a malformed id is not forwarded."""
    carrier: dict[str, str] = {}
    RequestIdPropagator().inject(carrier, baggage.set_baggage("request_id", "req-42"))
    assert carrier == {"X-Request-ID": "req-42"}
    bad: dict[str, str] = {}
    RequestIdPropagator().inject(bad, baggage.set_baggage("request_id", "no spaces allowed"))
    assert bad == {}
