"""The Docker Engine API server: Docker's REST API on a unix socket (or TLS on TCP), over the
engine, so that the docker CLI, docker-py and docker-compose drive pyminidocker.

server   listening: the socket (unix, tcp+TLS, systemd activation), idle exit, signals
app      the aiohttp application: API versions, Docker's error bodies, bounded requests
streams  what the endpoints stream: JSON messages, multiplexed stdout/stderr, hijacked sockets
system   /_ping, /version
"""
