"""S3's `aws-chunked` content encoding, decoded as the body streams in.

S3 clients (boto3, the AWS SDKs) send a streamed upload as a series of chunks, each
`hex-size[;chunk-signature=HEX]\\r\\n` + that many payload bytes + `\\r\\n`, ended by a chunk of
size 0 and optional trailers (`x-amz-checksum-crc32:...\\r\\n`) and a blank line. The decoder is
strict: sizes are 1-16 hex digits and nothing else, the only extension is `chunk-signature`,
every line ends with CRLF and is bounded, nothing may follow the last blank line. Every step
of `feed` consumes at least one input byte, so no input can keep it busy longer than its own
length: a size never moves the parser backwards or skips ahead.
"""

from __future__ import annotations

import re

MAX_SIZE_LINE = 256
"""Longest size line: 16 hex digits, `;chunk-signature=` and a signature of up to 128 hex digits."""
MAX_TRAILER_BYTES = 16 * 1024
"""The trailers together (checksums, a trailer signature) never come near this."""

_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;chunk-signature=[0-9A-Fa-f]{1,128})?")
_TRAILER = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+:[\t\x20-\x7e]*")

_SIZE, _DATA, _DATA_END, _TRAILERS, _DONE = range(5)


class ChunkedBodyError(ValueError):
    """The body is not valid aws-chunked; `code` is S3's error code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def malformed(message: str) -> ChunkedBodyError:
    return ChunkedBodyError("InvalidRequest", f"malformed aws-chunked body: {message}")


class AwsChunkedDecoder:
    """Feed it the raw body piece by piece; it returns the payload bytes each piece completes."""

    def __init__(self) -> None:
        self._state = _SIZE
        self._line = bytearray()  # the framing line being gathered (a size line, a CRLF, a trailer)
        self._remaining = 0  # payload bytes still due in the current chunk
        self._trailer_bytes = 0
        self.trailers: dict[str, str] = {}
        self.payload_size = 0

    @property
    def finished(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """The payload in `data`; raises ChunkedBodyError as soon as the framing is wrong."""
        out: list[bytes] = []
        position, end = 0, len(data)
        while position < end:
            if self._state == _DATA:  # here self._remaining > 0
                taken = min(self._remaining, end - position)
                out.append(data[position : position + taken])
                position += taken
                self._remaining -= taken
                self.payload_size += taken
                if self._remaining == 0:
                    self._state = _DATA_END
                continue
            if self._state == _DONE:
                raise malformed("bytes follow the last chunk")
            newline = data.find(b"\n", position)
            stop = end if newline < 0 else newline + 1
            self._line += data[position:stop]
            position = stop  # at least one byte further
            if len(self._line) > self._line_limit():
                raise malformed("a framing line is too long")
            if newline >= 0:
                line = bytes(self._line)
                self._line.clear()
                if not line.endswith(b"\r\n"):
                    raise malformed("framing lines end with CRLF")
                self._take_line(line[:-2])
        return b"".join(out)

    def finish(self) -> None:
        """Call once the body has ended: raises IncompleteBody when it ended early."""
        if self._state != _DONE:
            raise ChunkedBodyError("IncompleteBody", "the body ended before its last chunk")

    def _line_limit(self) -> int:
        if self._state == _SIZE:
            return MAX_SIZE_LINE
        if self._state == _DATA_END:
            return 2
        return MAX_TRAILER_BYTES - self._trailer_bytes

    def _take_line(self, line: bytes) -> None:
        if self._state == _SIZE:
            match = _SIZE_LINE.fullmatch(line)
            if match is None:
                raise malformed("a chunk size is hex digits, optionally followed by ;chunk-signature=")
            self._remaining = int(match[1], 16)
            self._state = _DATA if self._remaining else _TRAILERS
        elif self._state == _DATA_END:
            if line:
                raise malformed("chunk data is not followed by CRLF")
            self._state = _SIZE
        elif not line:  # _TRAILERS: the blank line ends the body
            self._state = _DONE
        else:
            if _TRAILER.fullmatch(line) is None:
                raise malformed("a trailer is `name:value`")
            self._trailer_bytes += len(line) + 2
            name, _, value = line.decode("ascii").partition(":")
            self.trailers[name.lower()] = value.strip()


def decode_aws_chunked(body: bytes) -> bytes:
    """The payload of a whole aws-chunked body."""
    decoder = AwsChunkedDecoder()
    payload = decoder.feed(body)
    decoder.finish()
    return payload
