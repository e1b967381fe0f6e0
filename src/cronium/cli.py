"""The `cronium` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from cronium import __version__
from cronium.config import Settings, load_settings
from cronium.core import Core, open_core
from cronium.db.models import Role
from cronium.errors import CroniumError
from cronium.logs.server_log import protect_server_log

if TYPE_CHECKING:
    from types import FrameType

    import uvicorn

app = typer.Typer(
    name="cronium",
    help="Cronium: self-hosted automation platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")
EXIT_CONFIG = 2


def _fail(message: str, code: int = EXIT_CONFIG) -> None:
    typer.echo(f"cronium: {message}", err=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except CroniumError as exc:
        _fail(exc.message)
        raise AssertionError from exc  # unreachable: _fail raises


def _run(action: Callable[[Core], Awaitable[T]], *, migrate: bool = True) -> T:
    settings = _settings()
    _configure_logging(settings)

    async def _main() -> T:
        core = await open_core(settings, run_migrations=migrate)
        try:
            return await action(core)
        finally:
            await core.close()

    try:
        return asyncio.run(_main())
    except CroniumError as exc:
        _fail(exc.message, EXIT_CONFIG if exc.code == "config_error" else 1)
        raise AssertionError from exc


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.value.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log_level.value != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    protect_server_log(settings.log_level.value)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def migrate() -> None:
    """Apply database migrations (serve also does this on start)."""

    async def _noop(core: Core) -> None:
        from cronium.db.migrate import current_revision

        typer.echo(f"database at revision {await current_revision(core.engine)}")

    _run(_noop)


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(help="At least 8 characters.")],
    role: Annotated[Role, typer.Option(help="admin, user or viewer.")] = Role.user,
) -> None:
    """Create a user."""
    from cronium.domain.accounts import create_user as _create

    async def _action(core: Core) -> int:
        async with core.sessions() as db, db.begin():
            user = await _create(db, email, password, role)
            return user.id

    user_id = _run(_action)
    typer.echo(f"created {role.value} {email.strip().lower()} (id {user_id})")


@app.command("create-token")
def create_token(
    email: Annotated[str, typer.Option(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after N days.")] = None,
) -> None:
    """Create an API token and print it (shown only once)."""
    from cronium.domain.accounts import create_api_token, require_user

    async def _action(core: Core) -> str:
        async with core.sessions() as db, db.begin():
            user = await require_user(db, email)
            expires = (
                datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
            )
            _, token = await create_api_token(db, user.id, name, expires)
            return token

    typer.echo(_run(_action))


@app.command("import")
def import_(
    paths: Annotated[
        list[Path], typer.Argument(help="YAML files or folders of event definitions.")
    ],
    email: Annotated[str, typer.Option(help="The user who will own the events.")],
) -> None:
    """Create or update events from YAML definitions (idempotent, by name)."""
    from cronium.domain.accounts import require_user
    from cronium.domain.importer import import_events, load_definitions

    try:
        definitions = load_definitions(paths)
    except CroniumError as exc:
        _fail(exc.message, 1)

    async def _action(core: Core) -> dict[str, tuple[int, str]]:
        async with core.sessions() as db, db.begin():
            user = await require_user(db, email)
            return await import_events(db, core.cipher, user.id, definitions)

    for name, (event_id, verb) in _run(_action).items():
        typer.echo(f"{verb} {name} (id {event_id})")


@app.command("migrate-scripts")
def migrate_scripts(
    paths: Annotated[list[Path], typer.Argument(help="Script files or folders to rewrite.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the diff; change nothing.")
    ] = False,
    backup: Annotated[bool, typer.Option(help="Keep the original as <file>.orig.")] = True,
) -> None:
    """Rewrite scripts that used the old input.json/output.json helpers into SDK calls."""
    from cronium.domain.script_migration import LANGUAGES, language_of, migrate

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in LANGUAGES)
            )
        elif path.is_file():
            files.append(path)
        else:
            _fail(f"{path}: no such file or directory", 1)
    changed = 0
    for file in files:
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"{file}: cannot read: {exc}", 1)
        language = language_of(file, text)
        if language is None:
            typer.echo(
                f"{file}: skipped (unknown language: use .sh, .py or .js, or a #! line)", err=True
            )
            continue
        result = migrate(text, language)
        for line_no, line in result.unresolved:
            typer.echo(
                f"{file}:{line_no}: still mentions a helper file, rewrite by hand: {line.strip()}",
                err=True,
            )
        if not result.changed:
            continue
        changed += 1
        if dry_run:
            typer.echo(result.diff(str(file)), nl=False)
            continue
        if backup:
            file.with_name(file.name + ".orig").write_text(text)
        file.write_text(result.rewritten)
    verb = "would change" if dry_run else "changed"
    typer.echo(f"{verb} {changed} of {len(files)} file(s)", err=True)


@app.command()
def serve(
    roles: Annotated[
        str, typer.Option(help="Comma-separated roles to run: api,scheduler,worker.")
    ] = "api,scheduler,worker",
) -> None:
    """Run Cronium: web UI, REST API, Runtime API, scheduler and workers in one process."""
    wanted = frozenset(r.strip() for r in roles.split(",") if r.strip())
    unknown = wanted - {"api", "scheduler", "worker"}
    if unknown or not wanted:
        _fail(
            f"--roles: unknown role(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            "use api,scheduler,worker"
        )
    settings = _settings()
    _configure_logging(settings)
    try:
        asyncio.run(_serve(settings, wanted))
    except CroniumError as exc:
        _fail(exc.message)
    except KeyboardInterrupt:
        pass


async def _serve(settings: Settings, roles: frozenset[str]) -> None:
    from cronium.engine.node import Node
    from cronium.executors.registry import build_executors

    core = await open_core(settings)
    try:
        executors = await build_executors(settings, node_id=core.node_id)
        core.executor_mode = executors.script.mode if "worker" in roles else None
        core.executor_warning = executors.warning if "worker" in roles else None
        node = Node(core, roles, executors)
        node_task = asyncio.create_task(node.run(), name="node")
        server, sockets = _http_server(settings, core, roles)
        if server is not None:
            # The first SIGTERM/SIGINT stops the node while the server keeps answering (the
            # Runtime API too, for the jobs that finish during the drain); the node's end
            # then stops the server.
            loop = asyncio.get_running_loop()
            server.on_first_signal = lambda: loop.call_soon_threadsafe(node.stop)  # type: ignore[attr-defined]
            # uvicorn owns SIGINT/SIGTERM while it serves (see DrainingServer).
            server_task = asyncio.create_task(server.serve(sockets=sockets), name="http")
            await asyncio.wait({node_task, server_task}, return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            await server_task
        else:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, node.stop)
            await asyncio.wait({node_task})
        node.stop()
        await node_task
        await executors.aclose()
    finally:
        await core.close()


def _http_server(
    settings: Settings, core: Core, roles: frozenset[str]
) -> tuple[uvicorn.Server | None, list[socket.socket]]:
    """The HTTP server: the TCP port for the api role, the Runtime API socket for workers."""
    import uvicorn

    from cronium.app import create_app
    from cronium.runtime.socket import bind_runtime_socket

    config = uvicorn.Config(
        create_app(settings, core=core),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.value,
        proxy_headers=False,
        lifespan="on",
    )
    sockets: list[socket.socket] = []
    where: list[str] = []
    if "api" in roles:
        try:
            sockets.append(tcp_listener(config))
        except (OSError, SystemExit) as exc:
            raise CroniumError(
                f"CRONIUM_PORT: cannot listen on {settings.host}:{settings.port}: {exc}"
            ) from None
        where.append(f"http://{settings.host}:{settings.port}")
    if roles & {"api", "worker"}:
        sockets.append(bind_runtime_socket(settings.runtime_socket_path))
        where.append(f"runtime socket {settings.runtime_socket_path}")
    if not sockets:
        return None, []
    logging.getLogger("cronium").info(
        "Cronium %s (roles: %s) on %s", __version__, ",".join(sorted(roles)), ", ".join(where)
    )
    return _draining_server_class()(config), sockets


def tcp_listener(config: uvicorn.Config) -> socket.socket:
    """The API's listening socket, with TCP_NODELAY (accepted connections inherit it).

    uvicorn binds it with proto 0, and asyncio only sets TCP_NODELAY on accepted sockets
    whose proto is TCP; without it every keep-alive request after the first waits ~40 ms
    for the client's delayed ACK (the body goes out in a second small segment).
    """
    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _draining_server_class() -> type[uvicorn.Server]:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """A uvicorn server that lets Cronium drain before it stops serving.

        - The first SIGTERM/SIGINT only calls `on_first_signal` (set by `_serve` to stop the
          node): running jobs finish, still reaching the Runtime API, and `_serve` stops the
          server when the node is done. A second signal stops serving at once (and a third
          forces uvicorn out), as plain uvicorn does for the first.
        - uvicorn raises a caught signal again once it stopped serving; with `main`'s
          handler that would be a KeyboardInterrupt in the middle of `_serve`. The caught
          signals are forgotten instead, so the process ends with status 0.
        """

        on_first_signal: Callable[[], object] | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            callback, self.on_first_signal = self.on_first_signal, None
            if callback is not None:
                callback()
                return
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

    return DrainingServer


def main() -> None:
    # SIGTERM behaves like Ctrl-C so embedded PostgreSQL is stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    app()
