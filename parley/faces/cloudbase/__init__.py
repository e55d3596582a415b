"""Tencent CloudBase AI bot API (`/v1/aibot/...`), as `@cloudbase/ai` and the agent UIs call it.

Wire only: the rules (keys, bots, conversations, feedback) live in parley.channels.cloudbase.
"""
