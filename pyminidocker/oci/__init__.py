"""pyminidocker-runc: an OCI runtime with runc's command line over pyminidocker's C shim.

config.py turns a bundle's config.json into the shim's SpawnSpec (the one place that reads
the OCI spec), state.py keeps each container's state under --root, main.py is the command line.
"""
