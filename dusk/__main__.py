"""`python -m dusk ...` is the same as the `dusk` command (used by `accelerate launch -m dusk`)."""

from dusk.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
