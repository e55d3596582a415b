"""The aws-chunked decoder: any chunking of any payload round-trips, in any feeding; any other
input is decoded or refused with the decoder's own error, after a number of steps bounded by
its length."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.faces.adp.aws_chunked import AwsChunkedDecoder, ChunkedBodyError, decode_aws_chunked

SIGNATURE = "a" * 64
STEPS_PER_BYTE = 40
"""Traced lines the decoder may run per input byte (and per call) before it counts as looping."""


class Looping(Exception):
    pass


@contextmanager
def bounded_steps(limit: int) -> Iterator[None]:
    """Raises Looping inside the decoder once it has run `limit` lines of its own code."""
    steps = 0
    decoder_file = sys.modules[AwsChunkedDecoder.__module__].__file__

    def trace(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        nonlocal steps
        if frame.f_code.co_filename != decoder_file:
            return None
        if event == "line":
            steps += 1
            if steps > limit:
                raise Looping(f"the decoder ran more than {limit} lines")
        return trace

    sys.settrace(trace)
    try:
        yield
    finally:
        sys.settrace(None)


def encode(payload: bytes, sizes: list[int], signed: bool, trailers: dict[str, str]) -> bytes:
    """`payload` in chunks of the given sizes (the rest in one more chunk), as an S3 client writes it."""
    out, position = [], 0
    extension = f";chunk-signature={SIGNATURE}".encode() if signed else b""
    for size in [*sizes, len(payload)]:
        chunk = payload[position : position + size]
        position += len(chunk)
        if chunk:
            out.append(b"%x%s\r\n%s\r\n" % (len(chunk), extension, chunk))
    out.append(b"0%s\r\n" % extension)
    out.extend(f"{name}:{value}\r\n".encode() for name, value in trailers.items())
    out.append(b"\r\n")
    return b"".join(out)


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


trailer_names = st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-amz-trailer-signature"])
trailer_values = st.text(alphabet="ABCDEFabcdef0123456789+/=", max_size=64)


@settings(max_examples=300)
@given(
    payload=st.binary(max_size=3000),
    sizes=st.lists(st.integers(1, 700), max_size=12),
    signed=st.booleans(),
    trailers=st.dictionaries(trailer_names, trailer_values, max_size=2),
    cuts=st.lists(st.integers(0, 5000), max_size=10),
)
def test_any_chunking_of_any_payload_round_trips(payload, sizes, signed, trailers, cuts):
    body = encode(payload, sizes, signed, trailers)
    decoder = AwsChunkedDecoder()
    with bounded_steps(STEPS_PER_BYTE * (len(body) + len(cuts) + 1)):
        decoded = b"".join(decoder.feed(piece) for piece in pieces(body, cuts))
        decoder.finish()
    assert decoded == payload
    assert decoder.payload_size == len(payload)
    assert decoder.trailers == {name: value for name, value in trailers.items()}


framing = st.sampled_from([b"\r\n", b"\n", b"\r", b";", b";chunk-signature=", b"0", b"-a", b"zz", b"ffffffffffffffff",
                           b"1", b"a", b"x-amz-checksum-crc32:AAAA", b":", b" ", b"-", b"+1", b"0x10", b"\x00"])
garbage = st.lists(st.one_of(framing, st.binary(max_size=20)), max_size=40).map(b"".join)


@settings(max_examples=500)
@given(body=garbage, cuts=st.lists(st.integers(0, 1000), max_size=6))
def test_any_other_input_decodes_or_is_refused_within_steps_bounded_by_its_length(body, cuts):
    decoder = AwsChunkedDecoder()
    with bounded_steps(STEPS_PER_BYTE * (len(body) + len(cuts) + 1)):
        try:
            decoded = b"".join(decoder.feed(piece) for piece in pieces(body, cuts))
            decoder.finish()
        except ChunkedBodyError as exc:
            assert exc.code in ("IncompleteBody", "InvalidRequest")
        else:
            assert len(decoded) < len(body)


@pytest.mark.parametrize("body", [b"-a\r\nhello\r\n0\r\n\r\n", b"-6\r\nhello\r\n0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n",
                                  b" 5\r\nhello\r\n0\r\n\r\n", b"5;chunk-signature=xyz\r\nhello\r\n0\r\n\r\n",
                                  b"5\r\nhelloXX0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n", b"0\r\n\r\nmore",
                                  b"1" * 300 + b"\r\n"])
def test_malformed_bodies_are_invalid_requests(body):
    with bounded_steps(STEPS_PER_BYTE * (len(body) + 1)), pytest.raises(ChunkedBodyError) as info:
        decode_aws_chunked(body)
    assert info.value.code == "InvalidRequest"


@pytest.mark.parametrize("body", [b"", b"5\r\nhel", b"5\r\nhello\r\n", b"0\r\n", b"0\r\nx-amz-checksum-crc32:AAAA\r\n"])
def test_bodies_that_end_early_are_incomplete(body):
    with pytest.raises(ChunkedBodyError) as info:
        decode_aws_chunked(body)
    assert info.value.code == "IncompleteBody"


def test_a_signed_body_with_trailers_is_decoded():
    body = (b"5;chunk-signature=" + SIGNATURE.encode() + b"\r\nhello\r\n6\r\n world\r\n"
            b"0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n")
    decoder = AwsChunkedDecoder()
    assert decoder.feed(body) == b"hello world"
    decoder.finish()
    assert decoder.trailers == {"x-amz-checksum-crc32": "AAAA"}
