"""The yardstick for bench/webhook.py: a Flask endpoint that only answers 200."""

from flask import Flask


def create_app():
    app = Flask(__name__)

    @app.post("/webhooks/zoom")
    def ok():
        return {"ok": True}

    return app
