"""The cloud API's authentication settings: `require_signed_action` refuses signatures that leave the action out."""

import hashlib
import time
from types import SimpleNamespace

import pytest
from starlette.requests import Request
from tencentcloud.common.sign import Sign

from parley.config import CloudApiCredential, CloudApiSettings
from parley.faces.adp.cloud_params import CloudApiError
from parley.faces.adp.cloudapi import authenticate
from tests.faces.adp.test_tc3 import HOST, sdk_request


def services(**settings) -> SimpleNamespace:
    cloud_api = CloudApiSettings(credentials=[CloudApiCredential(secret_id="AKIDone", secret_key="key-one")], **settings)
    return SimpleNamespace(settings=SimpleNamespace(cloud_api=cloud_api))


def post_request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": [], "scheme": "http",
                    "server": ("127.0.0.1", 8080)})


def signed_with_action(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    date = time.strftime("%Y-%m-%d", time.gmtime(int(timestamp)))
    canonical = "\n".join(["POST", "/", "", f"content-type:application/json\nhost:{HOST}\nx-tc-action:getwstoken\n",
                           "content-type;host;x-tc-action", hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["TC3-HMAC-SHA256", timestamp, f"{date}/lke/tc3_request", hashlib.sha256(canonical.encode()).hexdigest()])
    return {"content-type": "application/json", "host": HOST, "x-tc-action": "GetWsToken", "x-tc-timestamp": timestamp,
            "authorization": f"TC3-HMAC-SHA256 Credential=AKIDone/{date}/lke/tc3_request, SignedHeaders=content-type;host;x-tc-action, "
                             f"Signature={Sign.sign_tc3('key-one', date, 'lke', to_sign)}"}


def test_the_sdks_signature_is_refused_only_when_the_action_must_be_signed():
    headers, body = sdk_request({"Type": 5})
    assert authenticate(post_request(), headers, body, services()).service == "lke"
    with pytest.raises(CloudApiError) as info:
        authenticate(post_request(), headers, body, services(require_signed_action=True))
    assert info.value.code == "AuthFailure.InvalidAuthorization"
    body = b'{"Type": 5}'
    auth = authenticate(post_request(), signed_with_action(body), body, services(require_signed_action=True))
    assert "x-tc-action" in auth.signed_headers
