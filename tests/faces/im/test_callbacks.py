"""The callback signature, against the documented example (doc 269/32431)."""

from parley.faces.im.callbacks import on_c2c_message_body, sign
from parley.store.messaging import MessageRow


def test_sign_matches_the_documented_example():
    assert sign("xxxxyyyy", 1669872112) == "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"


def test_the_callback_body_carries_the_documented_fields():
    message = MessageRow(
        id=7, sdkappid=1400000001, from_account="user01", to_account="@RBT#bot", msg_seq=48374, msg_random=2837546,
        msg_time=1557481126, msg_key="48374_2837546_1557481126",
        body=[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}], created_at=0, updated_at=0,
    )
    body = on_c2c_message_body(message)
    assert body["CallbackCommand"] == "Bot.OnC2CMessage"
    assert body["MsgKey"] == f"{body['MsgSeq']}_{body['MsgRandom']}_{body['MsgTime']}"
    assert (body["SendMsgResult"], body["OnlineOnlyFlag"], body["ErrorInfo"]) == (0, 0, "send msg succeed")
    assert "CloudCustomData" not in body and body["EventTime"] > 1557481126000
