"""Training, embedding and prediction over surveys: glue between the store, ``models/`` and
the registry. Imports torch (never imported by the web app)."""
