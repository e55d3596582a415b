"""Cross-turn plumbing: each turn's numbered event stream, which faces subscribe to.

`LocalBus` keeps streams in this process; a Redis implementation fills the same
interface to share them across instances.
"""

from parley.bus.base import Bus, UnknownTurn
from parley.bus.local import LocalBus

__all__ = ["Bus", "LocalBus", "UnknownTurn"]
