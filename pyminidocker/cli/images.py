"""`pull`, `images`, `tag`, `rmi`, `login`, `logout`: the CLI face of the engine's images."""
from __future__ import annotations

import time

from pyminidocker.cli.output import (
    Env,
    PullRenderer,
    human_duration,
    human_size,
    parse_time,
    table,
)
from pyminidocker.errors import PmdError, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from pyminidocker.cli.args import Namespace
    from pyminidocker.engine import Engine


def cmd_pull(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import parse_reference

    eng: Engine = args.engine
    ref = parse_reference(args.ref)
    refs = [ref]
    if args.all_tags:
        if ref.digest or (ref.tag and args.ref.rsplit("/", 1)[-1].count(":")):
            raise UsageError("tag can't be used with --all-tags/-a")
        refs = eng.tags(ref)
        if not args.quiet:
            env.out(f"Pulling repository {ref.familiar_name}")
    for r in refs:
        render = None if args.quiet else PullRenderer(env)
        if render is not None:
            what = r.tag or r.digest
            env.out(f"{what}: Pulling from {r.repository}")
        res = eng.pull(r, args.platform, render)
        if args.quiet:
            env.out(f"sha256:{res.image_id}")
            continue
        env.out(f"Digest: {res.digest}")
        familiar = r.familiar
        if res.fresh:
            env.out(f"Status: Downloaded newer image for {familiar}")
        else:
            env.out(f"Status: Image is up to date for {familiar}")
        env.out(str(r))
    return 0


def cmd_images(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import split_name

    eng: Engine = args.engine
    now = time.time()
    rows: list[dict[str, str]] = []
    images = eng.images()
    for message in eng.corrupt_images():  # the others are listed all the same
        env.stderr.write(f"WARNING: {message}\n")
    for rec in sorted(images, key=lambda r: parse_time(r.created) or 0, reverse=True):
        size = human_size(eng.image_size(rec))
        created = parse_time(rec.created)
        since = human_duration(now - created) + " ago" if created else "N/A"
        digests = {}
        tags = []
        for n in rec.names:
            repo, tag, digest = split_name(n)
            if digest:
                digests[repo] = digest
            else:
                tags.append((repo, tag))
        if not tags:
            tags = [(repo, "<none>") for repo in digests] or [("<none>", "<none>")]
        for repo, tag in tags:
            if args.filter_ref and not _matches(args.filter_ref, repo, tag):
                continue
            rows.append({"Repository": repo, "Tag": tag, "ID": rec.id[:12],
                         "Digest": digests.get(repo, "<none>"), "CreatedSince": since,
                         "CreatedAt": rec.created, "Size": size})
    for message in eng.corrupt_layers():  # rebuilt from the images: nothing fails
        env.stderr.write(f"WARNING: {message}\n")
    if args.quiet:
        for i in dict.fromkeys(r["ID"] for r in rows):
            env.out(i)
    elif args.format == "json":
        import json

        for r in rows:
            env.out(json.dumps(r))
    elif args.format:
        raise UsageError(f"unsupported --format {args.format!r}: only 'json' is supported")
    else:
        table([["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
              + [[r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"]]
                 for r in rows], env)
    return 0


def _matches(pattern: str, repo: str, tag: str) -> bool:
    import fnmatch

    want_repo, _, want_tag = pattern.partition(":")
    return fnmatch.fnmatch(repo, want_repo) and (not want_tag or fnmatch.fnmatch(tag, want_tag))


def cmd_tag(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    eng.tag(args.source, args.target)
    return 0


def cmd_rmi(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    status = 0
    for want in args.images:
        try:
            for action, what in eng.remove_image(want, args.force):
                env.out(f"{action}: {what}")
        except PmdError as e:
            env.stderr.write(f"Error: {e}\n")
            status = 1
    return status


def cmd_login(args: Namespace, env: Env) -> int:
    username = args.username
    password = args.password
    if args.password_stdin:
        if args.password:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise UsageError("must provide --username with --password-stdin")
        password = env.stdin.read().rstrip("\r\n")
    if not username:
        username = _prompt(env, "Username: ")
    if password is None:
        import getpass

        password = getpass.getpass("Password: ")
    if not username or not password:
        raise UsageError("username and password are required")
    eng: Engine = args.engine
    eng.login(args.server, username, password)
    env.out("Login Succeeded")
    return 0


def _prompt(env: Env, text: str) -> str:
    env.stdout.write(text)
    env.stdout.flush()
    return env.stdin.readline().strip()


def cmd_logout(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import registry_server

    env.out(f"Removing login credentials for {registry_server(args.server)}")
    eng: Engine = args.engine
    eng.logout(args.server)
    return 0


def pull_missing(eng: Engine, image: str, env: Env, platform: str | None = None) -> None:
    """run/create of an image that is not here: pull it (for platform), reporting on stderr
    as Docker does."""
    from pyminidocker.engine import parse_reference

    ref = parse_reference(image)
    err_env = Env(stdout=env.stderr, stderr=env.stderr)
    err_env.out(f"Unable to find image '{ref.familiar}' locally")
    err_env.out(f"{ref.tag or ref.digest}: Pulling from {ref.repository}")
    res = eng.pull(ref, platform, PullRenderer(err_env))
    err_env.out(f"Digest: {res.digest}")
    err_env.out(f"Status: Downloaded newer image for {ref.familiar}")
