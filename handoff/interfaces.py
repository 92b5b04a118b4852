"""Kept for older imports: the handoff vocabulary now lives in bot.rules (one place per rule)."""

from __future__ import annotations

from bot.rules import PRIORITY, QueueName, WaitEstimate, queue_for, queue_for_risk

__all__ = ["PRIORITY", "QueueName", "WaitEstimate", "queue_for", "queue_for_risk"]
