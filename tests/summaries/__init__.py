"""Summary engines and client memory."""
