"""fsctl-web: serve the web workspace and the recording API (uvicorn, 127.0.0.1 by default)."""

import argparse
import logging
import sys

from ..config import load_settings
from ..errors import FsctlError


def main(argv=None):
    """Console entry point: fsctl-web [--config FILE] [--host H] [--port P] [--database URL]."""
    parser = argparse.ArgumentParser(prog="fsctl-web", description=__doc__)
    parser.add_argument("--config", help="settings file (default /etc/fsctl/fsctl.toml or FSCTL_CONFIG)")
    parser.add_argument("--database", help="database URL (default: the setting)")
    parser.add_argument("--host", help="address to listen on (default: web_host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: web_port, 8090)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        if args.database:
            from dataclasses import replace

            settings = replace(settings, database=args.database)
        from .app import create_app

        app = create_app(settings)
    except FsctlError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    import uvicorn

    uvicorn.run(
        app,
        host=args.host or settings.web_host,
        port=args.port or settings.web_port,
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
