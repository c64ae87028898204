"""Test speech: scripts with known commitments, rendered by espeak-ng."""
