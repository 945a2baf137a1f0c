"""greenchat: a high-concurrency IRC chat server on gevent."""

__version__ = "0.1.0"
