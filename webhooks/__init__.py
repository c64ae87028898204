"""Incoming platform webhooks: authenticate, record in the inbox, enqueue, answer fast."""
