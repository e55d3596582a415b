"""The Tencent Cloud Chat (IM) face: REST calls, UserSig, subscriptions and callbacks (wire only)."""
