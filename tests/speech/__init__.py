"""Test speech: scripts with known commitments, rendered once by espeak-ng and committed."""
