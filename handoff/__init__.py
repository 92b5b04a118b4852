"""Handoff: the volunteer and professional queues and the warm handover.

Only the interfaces exist yet (handoff.interfaces); the queues, claiming and the dashboard come
with the handoff issue. SQL is the durable truth of every conversation's status; Redis is the
fast index.
"""
