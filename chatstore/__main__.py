"""``python -m chatstore [--host HOST] [--port PORT] [--workers N]``: serve the app with uvicorn."""

import argparse

import uvicorn

from chatstore.core.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m chatstore", description="Serve chatstore.")
    parser.add_argument("--host", default=settings.host, help="address to listen on (CHATSTORE_HOST)")
    parser.add_argument("--port", type=int, default=settings.port, help="port to listen on (CHATSTORE_PORT)")
    parser.add_argument("--workers", type=int, default=1, help="number of worker processes")
    args = parser.parse_args(argv)
    uvicorn.run(
        "chatstore.app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
