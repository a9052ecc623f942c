"""The top floor: stored hops -> findings -> HTML/JSON timeline. Reads only the store."""
