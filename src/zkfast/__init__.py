"""zkfast: a ZooKeeper-compatible coordination server."""

__version__ = "0.1.0"
#: The Apache ZooKeeper release whose protocols zkfast speaks.
ZK_COMPAT_VERSION = "3.8.0"

__all__ = ["__version__", "ZK_COMPAT_VERSION"]
