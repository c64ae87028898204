"""The end-to-end demo behind `make demo`, and the short recorded conversation it uses."""
