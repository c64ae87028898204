"""Thin clients for the platforms holdspace talks to: plain values in, plain values out."""
