"""Image commands, named and shaped like python-glanceclient's `glance image-*`."""

from __future__ import annotations

import os
import sys
from typing import Any, BinaryIO

import click

from chute.cli.context import cli_context, delete_each, format_option, resolve_image
from chute.cli.output import emit_json, emit_list, emit_properties
from chute.cli.progress import byte_bar
from chute.errors import ChuteError, RemoteError

# Links glanceclient leaves out of image-show.
HIDDEN = ("self", "file", "schema")


def _show(image: dict[str, Any]) -> None:
    table = {k: v for k, v in image.items() if k not in HIDDEN}
    emit_properties(cli_context().fmt, image, table)


def _properties(pairs: tuple[str, ...]) -> dict[str, str]:
    props: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--property")
        props[key] = value
    return props


def _pointer(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


@click.command("image-create")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="Image data to upload.")
@click.option("--name")
@click.option("--id", "image_id", help="Use this id instead of a generated one.")
@click.option("--disk-format", help="raw, qcow2, vmdk, vhd, vhdx, iso, ...")
@click.option("--container-format", help="bare, ovf, ... (default with --file: bare)")
@click.option("--visibility", type=click.Choice(["public", "private", "shared", "community"]))
@click.option("--min-disk", type=int, help="Smallest root disk (GB) to boot it.")
@click.option("--min-ram", type=int, help="Smallest RAM (MB) to boot it.")
@click.option("--protected/--unprotected", default=None)
@click.option("--tag", "tags", multiple=True, help="Tag; repeatable.")
@click.option("--property", "props", multiple=True, metavar="KEY=VALUE",
              help="Custom property; repeatable.")
@click.option("--progress", is_flag=True, help="Show a progress bar of the upload.")
@format_option
def image_create(path: str | None, image_id: str | None, tags: tuple[str, ...],
                 props: tuple[str, ...], progress: bool, **base: Any) -> None:
    """Create an image, and upload its data when --file is given."""
    fields: dict[str, Any] = {k: v for k, v in base.items() if v is not None}
    fields.update(_properties(props))
    if image_id:
        fields["id"] = image_id
    if tags:
        fields["tags"] = list(tags)
    if path is None:
        _show(cli_context().images().create(**fields))
        return
    if "disk_format" not in fields:
        raise click.UsageError("--disk-format is required with --file")
    fields.setdefault("container_format", "bare")
    # Open before creating, so a typo in the path leaves no queued image behind.
    with open(path, "rb") as data:
        image = cli_context().images().create(**fields)
        try:
            _upload(image["id"], data, progress)
        except ChuteError as exc:
            raise RemoteError(getattr(exc, "status", 0),
                              f"image {image['id']} created but its upload failed (it stays "
                              f"queued; retry with image-upload): {exc.message}") from None
    _show(cli_context().images().get(image["id"]))


def _upload(image_id: str, data: BinaryIO, progress: bool) -> None:
    size = os.fstat(data.fileno()).st_size
    with byte_bar(size, "upload", progress) as bar:
        cli_context().images().upload(image_id, data, size, bar.update)


@click.command("image-upload")
@click.argument("image_id")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False),
              help="Image data to upload.")
@click.option("--progress", is_flag=True, help="Show a progress bar of the upload.")
@format_option
def image_upload(image_id: str, path: str, progress: bool) -> None:
    """Upload data to a queued image (e.g. after a failed image-create upload)."""
    with open(path, "rb") as data:
        _upload(image_id, data, progress)
    _show(cli_context().images().get(image_id))


@click.command("image-show")
@click.argument("image_id")
@format_option
def image_show(image_id: str) -> None:
    """Show an image's attributes, hashes and locations (IMAGE_ID: an id or a name)."""
    client = cli_context().images()
    _show(client.get(resolve_image(client, image_id)))


@click.command("image-list")
@click.option("--limit", type=int, help="Page size asked of the server.")
@click.option("--property-filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Filter on an attribute or property, e.g. status=active; repeatable.")
@click.option("--tag", help="Only images with this tag.")
@format_option
def image_list(limit: int | None, filters: tuple[str, ...], tag: str | None) -> None:
    """List images (every page)."""
    query: dict[str, Any] = _properties(filters)
    query.update(limit=limit, tag=tag)
    images = list(cli_context().images().list(**query))
    emit_list(cli_context().fmt, images, [("ID", "id"), ("Name", "name"), ("Status", "status")])


# glanceclient's words when its data would go to a terminal.
NO_REDIRECTION = ("No redirection or local file specified for downloaded image data. Please "
                  "specify a local file with --file to save downloaded image or redirect "
                  "output to another source.")


@click.command("image-download")
@click.argument("image_id")
@click.option("--file", "path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Where to write the data (default, or -: stdout).")
@click.option("--progress", is_flag=True, help="Show a progress bar of the download.")
@format_option
def image_download(image_id: str, path: str | None, progress: bool) -> None:
    """Download image data, verifying size and hash before it appears under --file.

    Without --file (or with --file -) the data goes to stdout, as with `glance
    image-download`; it is checked as it goes, and a mismatch exits 1 after the bytes went."""
    from chute.client.download import download_image, download_to_stream  # hashing modules
    from chute.client.image import Image

    to_stdout = path is None or path == "-"
    if to_stdout and sys.stdout.isatty():
        raise click.ClickException(NO_REDIRECTION)
    client = cli_context().images()
    image = Image.parse(client.get(resolve_image(client, image_id)))
    with byte_bar(image.size or None, "download", progress) as bar:
        if to_stdout:
            sys.stdout.flush()
            done = download_to_stream(client, image, sys.stdout.fileno(), "stdout",
                                      bar.update)
        else:
            assert path is not None
            done = download_image(client, image, path, bar.update)
    if cli_context().fmt == "json" and not to_stdout:  # stdout holds the image's bytes
        emit_json({"id": image.id, "file": done.path, "bytes": done.nbytes,
                   "verified": done.algorithm})
    elif done.algorithm is None:
        click.echo(f"warning: image {image.id} has no checksum; only its size was checked",
                   err=True)


@click.command("image-update")
@click.argument("image_id")
@click.option("--name")
@click.option("--disk-format")
@click.option("--container-format")
@click.option("--visibility", type=click.Choice(["public", "private", "shared", "community"]))
@click.option("--min-disk", type=int)
@click.option("--min-ram", type=int)
@click.option("--protected/--unprotected", default=None)
@click.option("--property", "props", multiple=True, metavar="KEY=VALUE",
              help="Set a custom property; repeatable.")
@click.option("--remove-property", "removals", multiple=True, metavar="KEY",
              help="Remove a custom property; repeatable.")
@format_option
def image_update(image_id: str, props: tuple[str, ...], removals: tuple[str, ...],
                 **base: Any) -> None:
    """Change an image's attributes and properties (one atomic JSON-patch)."""
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": _pointer(k), "value": v} for k, v in base.items()
        if v is not None
    ]
    ops += [{"op": "add", "path": _pointer(k), "value": v}
            for k, v in _properties(props).items()]
    ops += [{"op": "remove", "path": _pointer(k)} for k in removals]
    client = cli_context().images()
    image = client.update(image_id, ops) if ops else client.get(image_id)
    _show(image)


@click.command("image-delete")
@click.argument("image_ids", nargs=-1, required=True)
@format_option
def image_delete(image_ids: tuple[str, ...]) -> None:
    """Delete images; every id is tried, and the command fails if any failed."""
    delete_each(image_ids, cli_context().images().delete)


def _then_show(image_id: str) -> None:
    _show(cli_context().images().get(image_id))


@click.command("image-tag-update")
@click.argument("image_id")
@click.argument("tag")
@format_option
def image_tag_update(image_id: str, tag: str) -> None:
    """Add a tag to an image."""
    cli_context().images().add_tag(image_id, tag)
    _then_show(image_id)


@click.command("image-tag-delete")
@click.argument("image_id")
@click.argument("tag")
@format_option
def image_tag_delete(image_id: str, tag: str) -> None:
    """Remove a tag from an image."""
    cli_context().images().remove_tag(image_id, tag)
    _then_show(image_id)


@click.command("image-deactivate")
@click.argument("image_id")
@format_option
def image_deactivate(image_id: str) -> None:
    """Block downloads and boots of an image (admin)."""
    cli_context().images().deactivate(image_id)
    _then_show(image_id)


@click.command("image-reactivate")
@click.argument("image_id")
@format_option
def image_reactivate(image_id: str) -> None:
    """Allow downloads and boots of a deactivated image again (admin)."""
    cli_context().images().reactivate(image_id)
    _then_show(image_id)


COMMANDS = [image_create, image_upload, image_show, image_list, image_download, image_update,
            image_delete, image_tag_update, image_tag_delete, image_deactivate, image_reactivate]
