"""Socket.IO packets are the SSE frames' data lines, passed through without re-serialising."""

import json

from parley.faces.adp.render import error_frame, frame
from parley.faces.adp.ws import PacketJson, RawJson, sse_packets


def test_each_sse_frame_becomes_one_packet_with_its_data_verbatim():
    frames = frame("reply", {"content": "a\nb", "n": 1}) + b": keep-alive\n\n" + error_frame(400, "bad", "r1")
    packets = list(sse_packets(frames))
    assert [name for name, _ in packets] == ["reply", "error"]
    assert json.loads(packets[0][1]) == {"type": "reply", "payload": {"content": "a\nb", "n": 1}}
    assert json.loads(packets[1][1])["payload"]["error"] == {"code": 400, "message": "bad"}
    assert packets[0][1] in frames


def test_raw_json_is_spliced_into_the_event_packet():
    data = b'{"type":"reply","payload":{"content":"\\u4f60\\u597d"}}'
    encoded = PacketJson.dumps(["reply", RawJson(data)], separators=(",", ":"))
    assert json.loads(encoded) == ["reply", json.loads(data)]
    assert encoded == '["reply",' + data.decode() + "]"


def test_other_packets_are_plain_json():
    assert json.loads(PacketJson.dumps({"sid": "x", "upgrades": []})) == {"sid": "x", "upgrades": []}
    assert PacketJson.loads('["send",{"payload":{}}]') == ["send", {"payload": {}}]
