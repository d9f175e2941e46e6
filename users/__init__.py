"""Locust User classes of the suite (layout: docs/development.md).

This package's init imports nothing: importing one module (``import users.ws_codec``) loads only that module and
what it imports, so it registers no other plugin's options or ``init`` listeners and does not change the order in
which Locust runs them. ``locustfile.py`` imports the user classes it offers from their modules.
"""
