"""Real end-to-end tests: browser, proxy, OpenID provider, app and API (see README.md)."""
