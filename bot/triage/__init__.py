"""Triage: theme classification, risk detection and routing for one parent message."""
