"""Handoff: the volunteer and professional queues, claiming, and the warm handover.

`desk` is the service (SQL is the durable truth of every conversation's status and every handoff
event), `index` the Redis index that orders the queues and makes a claim atomic, `events` the live
updates for the dashboard, `estimate` the honest expected wait, `referral` the outward handover.
"""
