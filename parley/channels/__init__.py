"""Channels: the domain of publishing applications to a client ecosystem.

A channel decides who may talk to which application and how the ecosystem's notions
(bot ids, API keys, conversations, feedback) map onto Parley's applications, sessions and
records. The matching face under parley/faces/ only speaks the wire protocol.
"""
