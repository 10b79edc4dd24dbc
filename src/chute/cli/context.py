"""What every command shares: endpoints, token (or Keystone login), output format, the
clients built from them, names resolved to ids, and the delete of several ids."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from chute.cli.output import emit_json
from chute.client.compute import ComputeClient
from chute.client.images import ImageClient
from chute.client.keystone_login import Login
from chute.errors import RemoteError

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json")


DEFAULT_IMAGE_URL = "http://127.0.0.1:9292"
DEFAULT_COMPUTE_URL = "http://127.0.0.1:8774"


@dataclass
class CliContext:
    """One invocation's endpoints, token and output format (click's `ctx.obj`), and the
    clients built from them. With a Keystone login (chute.cli.login), its token and, for
    the endpoints not given, its catalog's; the login happens on the first client made."""

    image_url: str | None = None  # None: Keystone's catalog, else DEFAULT_IMAGE_URL
    compute_url: str | None = None
    token: str | None = None
    fmt: str = "table"
    login: Login | None = None
    _images: ImageClient | None = field(default=None, repr=False)
    _compute: ComputeClient | None = field(default=None, repr=False)

    def _token(self) -> str | None:
        return self.login.token() if self.login is not None else self.token

    def _endpoint(self, given: str | None, service_type: str, default: str) -> str:
        if given:
            return given
        return self.login.endpoint(service_type) if self.login is not None else default

    def images(self) -> ImageClient:
        """One client (one keep-alive connection) for every call a command makes."""
        if self._images is None:
            url = self._endpoint(self.image_url, "image", DEFAULT_IMAGE_URL)
            self._images = ImageClient(url, self._token())
        return self._images

    def compute(self) -> ComputeClient:
        if self._compute is None:
            url = self._endpoint(self.compute_url, "compute", DEFAULT_COMPUTE_URL)
            self._compute = ComputeClient(url, self._token())
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


# An id as Glance and Nova make them (8-4-4-4-12 hex): used as is, never looked up as a name.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _one_named(kind: str, ref: str, docs: Sequence[dict[str, Any]]) -> str:
    """The id of the one document named `ref`, in the OpenStack clients' words otherwise."""
    ids = [str(doc.get("id")) for doc in docs if doc.get("name") == ref]
    if not ids:
        raise RemoteError(0, f"No {kind} with a name or ID of '{ref}' exists.")
    if len(ids) > 1:
        raise RemoteError(0, f"Multiple {kind} matches found for '{ref}', use an ID to be "
                             f"more specific: {', '.join(sorted(ids))}")
    return ids[0]


def resolve_image(client: ImageClient, ref: str) -> str:
    """`ref` as an image id: an id is used as is; a name is looked up (`?name=`), as the
    openstack client does, and must name exactly one image."""
    if _UUID.fullmatch(ref):
        return ref
    if ref.startswith("in:"):  # `?name=in:...` is Glance's list syntax: match every image
        return _one_named("image", ref, list(client.list()))
    return _one_named("image", ref, list(client.list(name=ref)))


def resolve_server(client: ComputeClient, ref: str) -> str:
    """`ref` as a server id: an id is used as is; a name must name exactly one server."""
    if _UUID.fullmatch(ref):
        return ref
    return _one_named("server", ref, client.list(detail=False))
