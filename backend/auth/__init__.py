"""Accounts and roles (``LATENTSKY_AUTH=none|basic|oauth``).

- :mod:`backend.auth.roles`: the role ladder (viewer < labeller < curator < admin) and
  :func:`~backend.auth.roles.require`, the one check every route and callback makes;
- :mod:`backend.auth.users`: the ``users`` table (name, argon2 password hash, role, created) and
  :class:`~backend.auth.users.UserStore`, behind ``python -m backend users``;
- :mod:`backend.auth.serving`: who is asking (:func:`~backend.auth.serving.account_for`) and
  whether a server may listen on an address without authentication.

This package imports nothing heavy: :mod:`backend.config` reads the role names from it.
"""
