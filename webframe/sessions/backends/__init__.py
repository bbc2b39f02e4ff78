"""The session store backends, one module each behind the `SessionStore` ABC.

Nothing is imported here: a backend's module, and the client library it needs
(redis, asyncpg), is loaded only when `webframe.sessions.registry` opens a URL
with its scheme (or when it is imported by name).
"""
