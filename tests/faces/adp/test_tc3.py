"""TC3-HMAC-SHA256 verification against requests signed by the official SDK's own signer."""

from __future__ import annotations

import hashlib
import time

import pytest
from tencentcloud.common import credential
from tencentcloud.common.sign import Sign
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lke.v20231130 import lke_client

from parley.faces.adp import tc3

SECRETS = {"AKIDone": "key-one", "AKIDtwo": "key-two"}
HOST = "127.0.0.1:8080"


def sdk_request(
    params: dict, secret_id: str = "AKIDone", secret_key: str = "key-one", unsigned: bool = False
) -> tuple[dict[str, str], bytes]:
    """Headers (lower-case names) and body exactly as the SDK would send them."""
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=HOST))
    profile.unsignedPayload = unsigned
    client = lke_client.LkeClient(credential.Credential(secret_id, secret_key), "ap-guangzhou", profile)
    request = RequestInternal(HOST, "POST", "/", header={})
    client._build_req_inter("GetWsToken", params, request)
    body = request.data.encode() if isinstance(request.data, str) else request.data
    return {k.lower(): v for k, v in request.header.items()}, body


def check(headers: dict[str, str], body: bytes, *, now: float | None = None, secrets=SECRETS) -> tc3.Authorization:
    return tc3.verify(
        method="POST", path="/", query="", headers=headers, body=body, secrets=secrets,
        now=time.time() if now is None else now, max_age=300,
    )


def code_of(headers: dict[str, str], body: bytes, **kwargs) -> str:
    with pytest.raises(tc3.SignatureError) as info:
        check(headers, body, **kwargs)
    return info.value.code


def test_a_request_signed_by_the_sdk_verifies():
    headers, body = sdk_request({"Type": 5, "BotAppKey": "k", "VisitorBizId": "v"})
    auth = check(headers, body)
    assert auth.secret_id == "AKIDone" and auth.service == "lke"
    assert auth.signed_headers == ("content-type", "host")


def test_the_second_key_pair_verifies_too():
    headers, body = sdk_request({"Type": 5}, secret_id="AKIDtwo", secret_key="key-two")
    assert check(headers, body).secret_id == "AKIDtwo"


def test_a_wrong_secret_key_is_a_signature_failure():
    headers, body = sdk_request({"Type": 5}, secret_key="not-key-one")
    assert code_of(headers, body) == "AuthFailure.SignatureFailure"


def test_an_unknown_secret_id_is_not_found():
    headers, body = sdk_request({"Type": 5}, secret_id="AKIDnobody")
    assert code_of(headers, body) == "AuthFailure.SecretIdNotFound"


def test_a_changed_body_or_host_is_a_signature_failure():
    headers, body = sdk_request({"Type": 5, "BotAppKey": "k"})
    assert code_of(headers, body.replace(b'"k"', b'"x"')) == "AuthFailure.SignatureFailure"
    assert code_of({**headers, "host": "evil.example:80"}, body) == "AuthFailure.SignatureFailure"


def test_an_old_or_future_timestamp_is_expired():
    headers, body = sdk_request({"Type": 5})
    assert code_of(headers, body, now=time.time() + 301) == "AuthFailure.SignatureExpire"
    assert code_of(headers, body, now=time.time() - 301) == "AuthFailure.SignatureExpire"
    assert check(headers, body, now=time.time() + 200).secret_id == "AKIDone"


def test_a_malformed_authorization_is_invalid():
    headers, body = sdk_request({"Type": 5})
    for value in ("", "Bearer abc", headers["authorization"].replace("SignedHeaders=content-type;host", "SignedHeaders=host")):
        assert code_of({**headers, "authorization": value}, body) == "AuthFailure.InvalidAuthorization"


def test_a_credential_date_that_is_not_the_timestamps_fails():
    headers, body = sdk_request({"Type": 5})
    stamp = int(headers["x-tc-timestamp"]) - 2 * 86400
    assert code_of({**headers, "x-tc-timestamp": str(stamp)}, body, now=stamp) == "AuthFailure.SignatureFailure"


def test_an_unsigned_payload_verifies_without_the_body():
    headers, body = sdk_request({"Type": 5}, unsigned=True)
    assert headers["x-tc-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert check(headers, b'{"anything": 1}').secret_id == "AKIDone"


def test_header_values_are_lower_cased_and_trimmed_as_tencent_says():
    # adp-chat-client signs x-tc-action with its value lower-cased and sends it as named.
    body = b'{"AppKey": "k"}'
    timestamp = str(int(time.time()))
    date = time.strftime("%Y-%m-%d", time.gmtime(int(timestamp)))
    canonical = "\n".join([
        "POST", "/", "",
        f"content-type:application/json; charset=utf-8\nhost:{HOST.lower()}\nx-tc-action:describerobotbizidbyappkey\n",
        "content-type;host;x-tc-action", hashlib.sha256(body).hexdigest(),
    ])
    to_sign = "\n".join(["TC3-HMAC-SHA256", timestamp, f"{date}/lke/tc3_request", hashlib.sha256(canonical.encode()).hexdigest()])
    signature = Sign.sign_tc3("key-one", date, "lke", to_sign)
    headers = {
        "content-type": "application/json; charset=utf-8", "host": HOST, "x-tc-action": " DescribeRobotBizIDByAppKey ",
        "x-tc-timestamp": timestamp,
        "authorization": f"TC3-HMAC-SHA256 Credential=AKIDone/{date}/lke/tc3_request, "
                         f"SignedHeaders=content-type;host;x-tc-action, Signature={signature}",
    }
    auth = check(headers, body)
    assert auth.signed_headers == ("content-type", "host", "x-tc-action")
    assert code_of({**headers, "x-tc-action": "GetMsgRecord"}, body) == "AuthFailure.SignatureFailure"


def test_a_post_has_an_empty_canonical_query_string():
    headers, body = sdk_request({"Type": 5})
    auth = tc3.verify(method="POST", path="/", query="Action=ignored", headers=headers, body=body, secrets=SECRETS,
                      now=time.time(), max_age=300)
    assert auth.secret_id == "AKIDone"


@pytest.mark.parametrize(
    ("timestamp", "code"),
    [
        ("²", "MissingParameter"),  # a digit to str.isdigit, not to int()
        ("9" * 400, "AuthFailure.SignatureExpire"),  # too large to subtract from a float clock
        ("9" * 5000, "AuthFailure.SignatureExpire"),  # past the digits int() reads
        ("0" * 5000 + "1", "AuthFailure.SignatureExpire"),
    ],
    ids=["superscript", "400 digits", "5000 digits", "5000 zeros"],
)
def test_a_timestamp_no_clock_can_have_is_refused_in_tencents_terms(timestamp, code):
    headers, body = sdk_request({"Type": 5})
    assert code_of({**headers, "x-tc-timestamp": timestamp}, body) == code
