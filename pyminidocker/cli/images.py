"""`pull`, `images`, `tag`, `rmi`, `login`, `logout`: the CLI face of the engine's images."""
from __future__ import annotations

from pyminidocker.cli.output import PullRenderer
from pyminidocker.errors import PmdError, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from pyminidocker.cli.args import Namespace
    from pyminidocker.cli.main import Env
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
        if args.quiet:  # Docker prints the reference pulled, fully qualified
            env.out(str(r))
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
    from pyminidocker.cli import listing

    return listing.images(args, env, args.engine)


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
    if (not username or password is None) and not env.stdin.isatty():
        # getpass would hit EOF (a traceback) or echo the password: refuse as Docker does
        raise PmdError("Cannot perform an interactive login from a non TTY device")
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
    err_env = type(env)(stdout=env.stderr, stderr=env.stderr)
    err_env.out(f"Unable to find image '{ref.familiar}' locally")
    err_env.out(f"{ref.tag or ref.digest}: Pulling from {ref.repository}")
    res = eng.pull(ref, platform, PullRenderer(err_env))
    err_env.out(f"Digest: {res.digest}")
    err_env.out(f"Status: Downloaded newer image for {ref.familiar}")
