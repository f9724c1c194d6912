"""The composed config as a tree on the console at the start of a run (rich), one branch per
top-level key, so a user sees at a glance which dataset, model, aug and trainer a run uses."""

from __future__ import annotations

from typing import IO, Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.tree import Tree

# shown first, in this order; the other keys follow as composed
FIRST = ("dataset", "model", "optim", "aug", "base", "trainer", "logger", "callbacks", "robustness")


def _add(tree: Tree, node: Any) -> None:
    for key, value in node.items():
        if isinstance(value, DictConfig) and len(value):
            _add(tree.add(f"[bold]{key}[/bold]"), value)
        else:
            shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
            tree.add(f"{key}: {shown!r}" if isinstance(shown, str) else f"{key}: {shown}", highlight=False)


def config_tree(cfg: DictConfig) -> Tree:
    """``cfg`` (resolved) as a rich Tree: the groups of ``FIRST`` first, then the top-level keys."""
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    tree = Tree("[bold]config[/bold]")
    keys = [k for k in FIRST if k in resolved] + [k for k in resolved if k not in FIRST]
    scalars = {k: resolved[k] for k in keys if not isinstance(resolved[k], DictConfig)}
    for key in keys:
        if isinstance(resolved[key], DictConfig):
            _add(tree.add(f"[bold]{key}[/bold]"), resolved[key])
    _add(tree, scalars)
    return tree


def print_config_tree(cfg: DictConfig, file: IO[str] | None = None) -> None:
    """Print :func:`config_tree` of ``cfg`` (to ``file``, default stdout)."""
    Console(file=file, soft_wrap=True).print(config_tree(cfg))
