"""What every command shares: endpoints, token, output format, and the clients built from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from chute.client.compute import ComputeClient
from chute.client.images import ImageClient

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json")


@dataclass
class CliContext:
    """One invocation's endpoints, token and output format (click's `ctx.obj`), and the
    clients built from them."""

    image_url: str
    compute_url: str
    token: str | None
    fmt: str = "table"
    _images: ImageClient | None = field(default=None, repr=False)
    _compute: ComputeClient | None = field(default=None, repr=False)

    def images(self) -> ImageClient:
        """One client (one keep-alive connection) for every call a command makes."""
        if self._images is None:
            self._images = ImageClient(self.image_url, self.token)
        return self._images

    def compute(self) -> ComputeClient:
        if self._compute is None:
            self._compute = ComputeClient(self.compute_url, self.token)
        return self._compute


def cli_context() -> CliContext:
    return click.get_current_context().ensure_object(CliContext)


def _set_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(CliContext).fmt = value


def format_option(command: F) -> F:
    """`-f json` after the command name too (`chute image-show ID -f json`), like the
    openstack client; overrides the global option."""
    return click.option("-f", "--format", "fmt", type=click.Choice(FORMATS),
                        default=None, expose_value=False, callback=_set_format,
                        help="Output format (default: table).")(command)
