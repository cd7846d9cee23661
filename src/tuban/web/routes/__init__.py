"""Route modules; each exposes ``router``. Every route takes ``actor = require(verb)`` (or is public)."""
