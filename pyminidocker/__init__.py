"""pyminidocker: a daemonless container engine with a C shim."""

__version__ = "0.1.0"
