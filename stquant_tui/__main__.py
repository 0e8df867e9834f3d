"""`stquant-tui [CONFIG]`: the full-screen wizard. Exit 0 on a normal quit, 2/3 for a bad CONFIG."""

from __future__ import annotations

import argparse
import sys

from engine import __version__


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="stquant-tui",
        description="Full-screen wizard: build, validate, save and run a stquant (ST model zoo) config.",
        epilog="Keys: ctrl+n next, ctrl+p back, ctrl+o save, ctrl+r run, ctrl+q quit, F1 (or ?) every key. "
        "Over SSH try ESCDELAY=200 TEXTUAL_FPS=30; NO_COLOR=1 gives monochrome.",
    )
    parser.add_argument(
        "config", nargs="?", help="config YAML to edit (default: asks whether to start a new config or the demo's)"
    )
    parser.add_argument("--new", action="store_true", help="start a new config from a clean draft (no question)")
    parser.add_argument("--out", metavar="PATH", help="where Save writes (default: CONFIG or ./stquant_config.yaml)")
    parser.add_argument("--no-mouse", action="store_true", help="do not capture the mouse (native selection)")
    parser.add_argument("--version", action="version", version=f"stquant-tui {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from engine.common.errors import StquantError
    from stquant_tui.app import StquantApp

    try:
        app = StquantApp(args.config, out_path=args.out, new=args.new, ask_start=not args.config)
    except StquantError as exc:
        print(f"stquant-tui: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    app.run(mouse=not args.no_mouse)
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
