"""authtrace: shows exactly where a browser sign-in breaks. The roof: one command, one library call."""
__version__ = "0.1.0"
