"""Handoff: the volunteer and professional queues, claiming, and the warm handover.

By feature: `claims` (one winner per conversation, the warm handover), `actions` (reply, return,
transfer, close, referral consent), `shifts`, `availability` and `presence` (who is on shift,
really there, and what that allows), `moderation` (blocks, standard texts), `card` (the handover
card), `queue_view` (the queue page), `indexing` with `index` (the Redis index kept in line with
SQL), `events` (live updates for the dashboard), `estimate` (the honest expected wait), `referral`
(the outward handover), `oncall`. `desk` composes them for the web layer. Refusals are `errors`
(reasons, no HTTP codes, no words for people: the web layer says them from data/labels).
"""
