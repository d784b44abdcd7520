#!/usr/bin/env bash
# --format and --filter one-liners from Docker's documentation and everyday scripts.
set -euo pipefail
docker run -d --name fmt-a -p "127.0.0.1:$PORT:7000" bb sleep 60 >/dev/null
docker run --name fmt-b bb sh -c 'exit 3' || echo "fmt-b exited $?"
docker ps --format '{{.Names}} {{.Status}}' | sed 's/Up .*/Up/'
docker ps -a --filter name=fmt- --filter status=exited --format '{{.Names}}: {{.Status}}' | sed 's/) .*/)/'
docker ps -a -f name=fmt- --format '{{.Names}} {{.Command}}' | sort
docker ps --format 'table {{.Names}}\t{{.Ports}}\t{{.State}}'
docker ps -q --filter "name=^/fmt-a$" | wc -c
docker ps -a -n 1 --format '{{.Names}}'
docker ps -a --filter exited=3 --filter publish=7000 --format '{{.Names}}' | wc -l
docker container ls --filter publish=7000/tcp --format '{{.Names}} {{.Networks}}'
docker inspect -f '{{.Config.Image}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}}' fmt-a
docker inspect -f '{{json .HostConfig.PortBindings}}' fmt-a
docker inspect -f '{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> {{(index $conf 0).HostIp}}{{end}}' fmt-a
docker inspect -f '{{.State.ExitCode}} {{.State.Running}}' fmt-b
docker container inspect -f '{{index .Config.Env 1}} {{len .Mounts}}' fmt-a
docker image inspect -f '{{.Os}} {{json .Config.ExposedPorts}}' bb
docker images --format '{{.Repository}}:{{.Tag}}' bb
docker image ls --filter reference='b*' --format 'table {{.Repository}}\t{{.Tag}}'
docker network ls --format '{{.Name}}' | sort
docker network inspect -f '{{.Driver}} {{.Scope}}' bridge
docker version --format '{{.Server.ApiVersion}}'
docker info --format '{{.Driver}} {{.OSType}}'
docker info >/dev/null && echo "info: ok"
if docker inspect -f '{{.Nope}' fmt-a 2>err; then exit 1; else echo "bad template: rc $?"; fi
cat err
if docker inspect -f '{{.State.Health.Status}}' fmt-a 2>err; then exit 1; else echo "no health: rc $?"; fi
cat err
if docker image inspect no-such-image >/dev/null 2>&1; then exit 1; else echo "missing image: rc $?"; fi
if docker port fmt-a 9999 2>err; then exit 1; else echo "unpublished: rc $?"; fi
cat err
docker rm -f fmt-a fmt-b
