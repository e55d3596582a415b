import pytest

from parley.faces.adp.storage import decode_aws_chunked
from parley.store.objects import ObjectError, clean_key


def test_aws_chunked_bodies_are_decoded():
    body = b"5;chunk-signature=abc\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n"
    assert decode_aws_chunked(body) == b"hello world"


def test_keys_cannot_escape_the_store():
    assert clean_key("//public/a/b.md") == "public/a/b.md"
    for bad in ("../etc/passwd", "public/../../x", "", "a\\b"):
        with pytest.raises(ObjectError):
            clean_key(bad)
