"""releasegate: decides, with evidence, whether a backend service version is ready to ship."""

__version__ = "0.1.0"
