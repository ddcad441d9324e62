"""``stemscribe serve``: the local web app (drop a song, watch it split, listen, see the notes)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "start the local web app in your browser"

DESCRIPTION = """\
Start stemscribe's web app on this computer and print its address. Drop songs into the page,
watch them split, play the stems together (mute, solo, volume), see each stem's notes and
download stems, MIDI files or everything as a zip. Songs never leave your machine.

Jobs and results are kept in the data folder (default: your user data folder, or
$STEMSCRIBE_DATA) and survive a restart."""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: only this computer can connect)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="folder for jobs and results (default: $STEMSCRIBE_DATA or your user data folder)")
    p.add_argument("--open", action="store_true", help="open the app in your web browser")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="songs processed at the same time (default 1; each needs its own memory and cores)")
    p.add_argument("--max-upload-mb", type=float, default=500.0, metavar="N",
                   help="largest upload accepted, in megabytes (default 500)")
    p.add_argument("--model-dir", type=Path, metavar="DIR", help="folder with model weights (default: the cache)")
    return p


def default_data_dir() -> Path:
    """``$STEMSCRIBE_DATA`` if set, else the platform's user data folder for stemscribe."""
    env = os.environ.get("STEMSCRIBE_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("stemscribe", appauthor=False))


def _bind(host: str, port: int):  # -> socket.socket
    import socket

    from ..errors import BadArgumentError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise BadArgumentError(
                f"port {port} on {host} is already in use (is stemscribe already running?); "
                "choose another with --port"
            ) from None
        raise BadArgumentError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    import webbrowser

    import uvicorn

    from ..errors import BadArgumentError
    from ..web.server import LOOPBACK_HOSTS, Settings, create_app

    if args.workers < 1:
        raise BadArgumentError(f"--workers must be at least 1, got {args.workers}")
    if args.max_upload_mb <= 0:
        raise BadArgumentError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if not 0 <= args.port <= 65535:
        raise BadArgumentError(f"--port must be between 0 and 65535, got {args.port}")
    data_dir = (args.data or default_data_dir()).expanduser()
    loopback = args.host in LOOPBACK_HOSTS or args.host.startswith("127.")
    settings = Settings(
        data_dir=data_dir,
        workers=args.workers,
        max_upload_mb=args.max_upload_mb,
        allowed_hosts=(*LOOPBACK_HOSTS, args.host) if loopback else None,
        model_dir=args.model_dir,
    )
    app = create_app(settings)
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{'[' + shown_host + ']' if ':' in shown_host else shown_host}:{port}/"

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    print(f"stemscribe is running at {url}", flush=True)
    print(f"data folder: {data_dir}", flush=True)
    if not loopback:
        print(f"warning: listening on {args.host}: other computers on your network can use this app",
              file=sys.stderr, flush=True)
    print("press Ctrl+C to stop", flush=True)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            app.state.broker.close()  # end the pages' live event streams so shutdown is quick
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3, access_log=False)
    server = Server(config)
    if args.open:
        import threading

        def open_when_ready() -> None:
            import time

            for _ in range(100):
                if server.started:
                    webbrowser.open(url)
                    return
                time.sleep(0.1)

        threading.Thread(target=open_when_ready, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after a clean shutdown
        pass
    print("stemscribe stopped", flush=True)
    return 0
