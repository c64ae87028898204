"""Client pages opened by signed links (session, journey, consent) and the coach dashboard.
Pages only read, enqueue or call workers/; the work happens there."""

from flask import Flask


def register(app: Flask) -> None:
    from portal.client import bp as client_pages
    import portal.commitments  # noqa: F401  (the client marks a commitment done)
    from portal.consent import bp as consent_pages
    app.register_blueprint(client_pages)
    app.register_blueprint(consent_pages)
    from portal.coach import bp as coach_dashboard
    import portal.coach_review  # noqa: F401  (the coach's player and review before send)
    import portal.coach_clients  # noqa: F401
    import portal.coach_settings  # noqa: F401
    import portal.google_connect  # noqa: F401  (adds the Google pages to the dashboard)
    import portal.slack_link  # noqa: F401
    import portal.zoom_connect  # noqa: F401  (and the Zoom pages)
    app.register_blueprint(coach_dashboard)
    from portal.slack_install import bp as slack_install  # "Add to Slack", in the browser
    app.register_blueprint(slack_install)
