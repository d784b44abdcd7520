"""pyminidocker-runc: an OCI runtime with runc's command line over pyminidocker's C shim.

config.py turns a bundle's config.json into the shim's SpawnSpec (the one place that reads
the OCI spec), state.py keeps each container's state under --root, runtime.py makes and removes
what a container needs on the host (cgroups, device nodes, hooks), main.py is the command line:
it hands each verb to its own module (create, start, execute, control, listing, features), and
process.py is what surrounds a container's process (console, pid file, signals, exit code).
"""
