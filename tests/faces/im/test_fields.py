"""IM field readers refuse every malformed value with the call's own code."""

from __future__ import annotations

from typing import Any

import pytest

from parley.faces.im.errors import IMError
from parley.faces.im.fields import message_body

BAD_BODY = 90002


@pytest.mark.parametrize("element", [
    {"MsgType": {}, "MsgContent": {}},
    {"MsgType": [], "MsgContent": {}},
    {"MsgType": None, "MsgContent": {"Text": "x"}},
    {"MsgType": "TIMTextElem", "MsgContent": []},
    {"MsgType": "TIMTextElem", "MsgContent": {"Text": 1}},
    "TIMTextElem",
])
def test_a_malformed_element_is_refused_with_the_calls_code(element: Any) -> None:
    with pytest.raises(IMError) as refused:
        message_body({"MsgBody": [element]}, BAD_BODY)
    assert refused.value.code == BAD_BODY
