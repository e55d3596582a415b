"""UserSig verification: the published test vector, the official generator, and every failure code."""

from __future__ import annotations

import base64
import json
import time
import zlib

import pytest
from TLSSigAPIv2 import TLSSigAPIv2

from parley.faces.im import usersig
from parley.faces.im.usersig import UserSigError

VECTOR_APP = 1400000000
VECTOR_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
VECTOR_SIG = (
    "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkElNyM-Myi0uKEkvyi2BKilOyEwsKMlOACgxNDKAAKpdaUZBZlAqUsTAzgQuWZOaC"
    "hAzN0RQXZ6aDLKn0cUzVLjcPD00NLS1MCrPM0A*JMLcoNTLMD3HP1M60jCowLDUOKMiLNDOwVaoFAD4PNPI_"
)
VECTOR_JSON = (
    b'{"TLS.ver": "2.0", "TLS.identifier": "administrator", "TLS.sdkappid": 1400000000, "TLS.expire": 86400, '
    b'"TLS.time": 1700000000, "TLS.sig": "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="}'
)
OTHER_KEY = "0" * 64


def _encode(document: dict | bytes) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.b64encode(zlib.compress(raw)).decode().replace("+", "*").replace("/", "-").replace("=", "_")


def _code(sig: str, **overrides) -> int:
    args = {"sdkappid": VECTOR_APP, "identifier": "administrator", "key": VECTOR_KEY, "now": 1700000001, **overrides}
    with pytest.raises(UserSigError) as info:
        usersig.verify(sig, **args)
    return info.value.code


def test_the_published_vector_verifies_within_its_validity():
    claims = usersig.verify(VECTOR_SIG, sdkappid=VECTOR_APP, identifier="administrator", key=VECTOR_KEY, now=1700000000 + 86400)
    assert (claims.identifier, claims.sdkappid, claims.time, claims.expire) == ("administrator", VECTOR_APP, 1700000000, 86400)


def test_the_published_vector_decodes_to_the_published_bytes():
    assert json.dumps(usersig.decode(VECTOR_SIG)).encode() == VECTOR_JSON


def test_generation_reproduces_the_published_vector_byte_for_byte():
    assert usersig.generate(VECTOR_APP, VECTOR_KEY, "administrator", 86400, now=1700000000) == VECTOR_SIG


def test_the_published_vector_expires_after_a_day():
    assert _code(VECTOR_SIG, now=1700000000 + 86401) == usersig.EXPIRED == 70001


def test_signatures_from_the_official_package_verify():
    sig = TLSSigAPIv2(1400000001, OTHER_KEY).gen_sig("user-a", 3600)
    claims = usersig.verify(sig, sdkappid=1400000001, identifier="user-a", key=OTHER_KEY)
    assert claims.identifier == "user-a" and claims.expires_at > time.time()


def test_an_expired_signature_from_the_official_package_is_refused():
    sig = TLSSigAPIv2(VECTOR_APP, VECTOR_KEY).gen_sig("administrator", -10)
    assert _code(sig, now=None) == 70001


@pytest.mark.parametrize(
    "sig",
    ["", "not base64 at all!", VECTOR_SIG[:40], _encode(b"not json"), _encode(b"[1, 2]"),
     base64.b64encode(b"plain bytes, not zlib").decode(),
     _encode({"TLS.ver": "2.0", "TLS.identifier": "administrator", "TLS.sdkappid": "1400000000",
              "TLS.expire": 86400, "TLS.time": 1700000000, "TLS.sig": "x"})],
    ids=["empty", "not-base64", "truncated", "not-json", "not-an-object", "not-zlib", "sdkappid-as-string"],
)
def test_unreadable_signatures_are_70003(sig):
    assert _code(sig) == usersig.UNPARSABLE == 70003


def test_a_signature_for_another_app_is_70014():
    sig = TLSSigAPIv2(1400000009, VECTOR_KEY).gen_sig("administrator")
    assert _code(sig, now=None) == usersig.SDKAPPID_MISMATCH == 70014


def test_a_signature_for_another_identifier_is_70013():
    sig = TLSSigAPIv2(VECTOR_APP, VECTOR_KEY).gen_sig("someone-else")
    assert _code(sig, now=None) == usersig.IDENTIFIER_MISMATCH == 70013


def test_a_signature_made_with_another_key_is_70009():
    sig = TLSSigAPIv2(VECTOR_APP, OTHER_KEY).gen_sig("administrator")
    assert _code(sig, now=None) == usersig.VERIFY_FAILED == 70009


def test_a_forged_claim_is_70009():
    document = json.loads(VECTOR_JSON)
    document["TLS.expire"] = 86400 * 365  # extend the validity without the key
    assert _code(_encode(document)) == 70009


def test_a_signature_with_a_user_buffer_is_70009():
    sig = TLSSigAPIv2(VECTOR_APP, VECTOR_KEY).gen_sig_with_userbuf("administrator", 3600, b"room")
    assert _code(sig, now=None) == 70009


def test_an_oversized_inflation_is_refused():
    assert _code(_encode(b"{" + b" " * 100_000 + b"}")) == 70003
