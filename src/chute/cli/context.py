"""What every command shares: endpoints, token, output format, the clients built from them,
and the delete of several ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from chute.cli.output import emit_json
from chute.client.compute import ComputeClient
from chute.client.images import ImageClient
from chute.errors import RemoteError

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


def delete_each(ids: Sequence[str], delete: Callable[[str], None]) -> None:
    """Try every id, say which went (as JSON when asked), and fail if any failed: a script
    deleting ten things learns about all ten, not only the first error."""
    deleted, failed = [], []
    for item_id in ids:
        try:
            delete(item_id)
            deleted.append(item_id)
        except RemoteError as exc:
            failed.append(f"{item_id}: {exc.message}")
    if cli_context().fmt == "json":
        emit_json({"deleted": deleted})
    if failed:
        raise RemoteError(0, "failed to delete " + "; ".join(failed))
