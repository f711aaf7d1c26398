"""`raytune-chat`: the command line. Each subcommand maps to one library function.

raytune-chat ls
raytune-chat cp llama3/8B_lora_single_device custom.yaml
raytune-chat cp lora_finetune_single_device my_recipe.py
raytune-chat run lora_finetune_single_device --config custom.yaml epochs=15 ~profiler
raytune-chat run ./my_recipe.py --config custom.yaml
raytune-chat run generate --config generation adapter=/tmp/out/epoch_0 --chat
raytune-chat validate custom.yaml
raytune-chat preview custom.yaml -n 3
raytune-chat prepare custom.yaml --out s3://bucket/tokenized/
raytune-chat submit --address http://head:8265 -- run lora_finetune_single_device --config c.yaml
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from raytune_chat.config import ConfigError

__all__ = ["main"]


def _ls(args: argparse.Namespace) -> None:
    from raytune_chat.config import list_builtin_configs
    from raytune_chat.recipes import RECIPES

    print("RECIPES", *RECIPES, sep="\n  ")
    print("CONFIGS", *list_builtin_configs(), sep="\n  ")


def _cp(args: argparse.Namespace) -> None:
    from raytune_chat.config import copy_builtin_config
    from raytune_chat.recipes import RECIPES, copy_recipe

    copy = copy_recipe if args.name in RECIPES else copy_builtin_config
    print(copy(args.name, args.dest))


def _run(args: argparse.Namespace) -> None:
    from raytune_chat.config import load_config
    from raytune_chat.recipes import get_recipe

    overrides = [*args.overrides, "chat=true"] if args.chat else args.overrides
    get_recipe(args.recipe)(load_config(args.config, overrides))


def _validate(args: argparse.Namespace) -> None:
    from raytune_chat.config import load_config
    from raytune_chat.recipes import validate_config

    validate_config(load_config(args.config, args.overrides))
    print(f"{args.config}: OK")


def _preview(args: argparse.Namespace) -> None:
    from raytune_chat.config import load_config
    from raytune_chat.recipes._preview import preview_dataset

    preview_dataset(load_config(args.config, args.overrides), args.n)


def _prepare(args: argparse.Namespace) -> None:
    from raytune_chat.config import load_config
    from raytune_chat.recipes._preview import prepare_dataset

    prepare_dataset(load_config(args.config, args.overrides), args.out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raytune-chat", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ls", help="list recipes and built-in configs").set_defaults(fn=_ls)
    sub.add_parser("submit", help="submit a run to a Ray cluster as a Ray job (see --help)")
    cp = sub.add_parser("cp", help="copy a recipe or a built-in config to a file")
    cp.add_argument("name", help="a recipe or a built-in config (see `raytune-chat ls`)")
    cp.add_argument("dest")
    cp.set_defaults(fn=_cp)
    run = sub.add_parser("run", help="run a recipe")
    run.add_argument("recipe", help="a recipe name, or the path of a recipe file (a copy)")
    run.add_argument("--config", required=True)
    run.add_argument("--chat", action="store_true", help="generate: talk in turns (chat=true)")
    run.set_defaults(fn=_run)
    for name, fn, text in (
        ("validate", _validate, "check a config without running anything"),
        ("preview", _preview, "print tokenized samples with the loss mask"),
        ("prepare", _prepare, "tokenize once to Parquet"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("config")
        cmd.set_defaults(fn=fn)
        if name == "preview":
            cmd.add_argument("-n", type=int, default=3, help="samples to show")
        if name == "prepare":
            cmd.add_argument("--out", required=True, help="folder or s3:// URI")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `raytune-chat` console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["submit"]:  # its own parser: everything after `--` is passed through
        from raytune_chat._jobs import main as submit_main

        return submit_main(argv[1:])
    args, overrides = _parser().parse_known_args(argv)
    bad = [o for o in overrides if "=" not in o and not o.startswith("~")]
    if bad:
        _say(f"override {bad[0]!r} has no '=': write key=value, or ~key to drop a key")
        return 2
    args.overrides = overrides
    try:
        args.fn(args)
    except Exception as exc:
        for kinds, what, code in _user_mistakes():
            if isinstance(exc, kinds):
                _say(f"{what}: {getattr(exc, 'cause', None) or exc}")
                return code
        raise  # anything else is a bug in raytune_chat: the traceback is for us
    return 0


def _user_mistakes() -> tuple[tuple[tuple[type[Exception], ...], str, int], ...]:
    """The errors that mean the user has something to fix, with the exit code of each."""
    from raytune_chat.datasets import DataFileUnreadable, TooManyRejectedRows

    return (
        ((ConfigError,), "config error", 2),
        ((DataFileUnreadable, TooManyRejectedRows), "data error", 1),
    )


def _say(message: str) -> None:
    """One line on stderr (a multi-line message is joined), as every mistake is reported."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    print("raytune-chat: " + "; ".join(lines), file=sys.stderr)
