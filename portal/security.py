"""Headers for every page opened by a token: no referrer (the token is in the URL), no
caching, and a Content-Security-Policy that allows nothing from anywhere but us."""

from __future__ import annotations

from functools import wraps

from flask import make_response

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; font-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


def harden(response):
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def token_page(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        return harden(make_response(view(*args, **kwargs)))
    return wrapped
