"""The life of a reply: stored before its first event, kept whatever happens to the stream.

- ``turns``: a chat request's messages and the reply's ``in_progress`` row, appended in one
  transaction (``start_turn``, ``start_regeneration``); ``assign_seqs`` numbers them.
- ``generation``: the task that runs the responder and holds the reply in memory until stored.
- ``registry``: ``Replies``, the replies this process generates, the one way to follow any reply
  from a position (live, or from its row when another process generates it), stop, progress writes.
- ``reply_store``: every change of a reply row's status, the crash sweep's included.
- ``events``: the stream's events and their ids, which are positions in the reply.
"""

from chatstore.services.replies.events import StreamEvent
from chatstore.services.replies.generation import Generation
from chatstore.services.replies.registry import Replies
from chatstore.services.replies.turns import Turn, start_regeneration, start_turn

__all__ = ["Generation", "Replies", "StreamEvent", "Turn", "start_regeneration", "start_turn"]
