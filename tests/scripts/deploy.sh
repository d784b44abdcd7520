#!/usr/bin/env bash
# A Docker user's deploy script, unchanged: pull, run -d -p, wait until it serves, read the
# container's address with inspect --format, port, logs, stop, rm, rmi.
set -euo pipefail
image="$IMAGE" port="$PORT"
echo "pulled: $(docker pull -q "$image")"
cid=$(docker run -d --name web -p "127.0.0.1:$port:8080" "$image" \
      sh -c 'mkdir -p /www && echo "hello from web" > /www/index.html && echo "listening on 8080" && exec httpd -f -p 8080 -h /www')
for _ in $(seq 300); do
  busybox wget -q -O- "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "served: $(busybox wget -q -O- "http://127.0.0.1:$port/")"
ip=$(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' web)
echo "ip: ${ip%.*}.x"
[ "$(docker inspect -f '{{.State.Running}} {{.Id}}' web)" = "true $cid" ]
echo "port: $(docker port web 8080)"
echo "logs: $(docker logs web 2>&1)"
docker stop -t 1 web >/dev/null
echo "status: $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' web)"
docker rm web
docker rmi "$image" | grep -c Untagged
