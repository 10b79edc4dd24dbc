"""Server and flavor commands, shaped like python-novaclient's `nova boot/list/show/...`."""

from __future__ import annotations

import base64
import time
from typing import Any, BinaryIO, TextIO

import click

from chute.cli.context import cli_context, delete_each, format_option, resolve_image, resolve_server
from chute.cli.output import emit_list, emit_properties
from chute.cli.progress import StatusLine
from chute.client.compute import ComputeClient
from chute.errors import RemoteError

POLL_INTERVAL = 0.5
FINAL = ("ACTIVE", "ERROR")

# nova's power_state numbers, as novaclient names them.
POWER_STATES = {0: "NOSTATE", 1: "Running", 3: "Paused", 4: "Shutdown", 6: "Crashed",
                7: "Suspended"}


def _ref(value: Any) -> Any:
    """Nova nests image/flavor as {id, links} (or {original_name, ...}); show the name/id."""
    if isinstance(value, dict):
        return value.get("original_name") or value.get("id") or value
    return value


def _table_doc(server: dict[str, Any]) -> dict[str, Any]:
    doc = {k: v for k, v in server.items() if k != "links"}
    for key in ("image", "flavor"):
        if key in doc:
            doc[key] = _ref(doc[key])
    if isinstance(doc.get("fault"), dict):
        doc["fault"] = doc["fault"].get("message", doc["fault"])
    if "OS-EXT-STS:power_state" in doc:
        state = doc["OS-EXT-STS:power_state"]
        doc["OS-EXT-STS:power_state"] = POWER_STATES.get(state, state)
    return doc


def _show(server: dict[str, Any]) -> None:
    emit_properties(cli_context().fmt, server, _table_doc(server))


def _fault(server: dict[str, Any]) -> str:
    fault = server.get("fault")
    if isinstance(fault, dict):
        return str(fault.get("message") or fault)
    return str(fault or "no fault recorded")


def _flavor_id(client: ComputeClient, wanted: str) -> str:
    """Accept a flavor id or name (`2` or `m1.small`), as novaclient does."""
    flavors = client.flavors()
    for flavor in flavors:
        if str(flavor.get("id")) == wanted:
            return wanted
    for flavor in flavors:
        if flavor.get("name") == wanted:
            return str(flavor["id"])
    known = ", ".join(f"{f.get('id')} ({f.get('name')})" for f in flavors)
    raise RemoteError(404, f"no flavor with id or name {wanted!r}; known: {known}")


def _poll(client: ComputeClient, server_id: str) -> dict[str, Any]:
    line = StatusLine()
    while True:
        server = client.get(server_id)
        status = server.get("status", "?")
        task = server.get("OS-EXT-STS:task_state") or "-"
        if status in FINAL:
            line.done(f"Server {server_id} {status}")
            return server
        line.show(f"Server {server_id} {status} (task: {task})")
        time.sleep(POLL_INTERVAL)


@click.command("boot")
@click.option("--image", "image_ref", required=True, help="Image id or name.")
@click.option("--flavor", "flavor_ref", required=True, help="Flavor id or name (2 = m1.small).")
@click.option("--poll", is_flag=True, help="Wait until the server is ACTIVE or ERROR.")
@click.option("--key-name", help="Keypair whose public key the guest gets (config drive).")
@click.option("--user-data", type=click.File("rb"), help="File given to the guest as user data.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata item (repeatable).")
@click.option("--availability-zone", help="This host's zone (see [DEFAULT] "
              "default_availability_zone).")
@click.option("--config-drive", is_flag=True, help="Give the guest a config drive even "
              "without user data or a key.")
@click.argument("name")
@format_option
def boot(image_ref: str, flavor_ref: str, poll: bool, key_name: str | None,
         user_data: BinaryIO | None, meta: tuple[str, ...], availability_zone: str | None,
         config_drive: bool, name: str) -> None:
    """Boot a server from an image; exit 1 if --poll sees it end in ERROR."""
    client = cli_context().compute()
    image_id = resolve_image(cli_context().images(), image_ref)
    fields = _boot_fields(key_name, user_data, meta, availability_zone, config_drive)
    created = client.boot(name, image_id, _flavor_id(client, flavor_ref), **fields)
    # The 202 answer holds little more than the id; show the server as it is now.
    server = _poll(client, created["id"]) if poll else client.get(created["id"])
    _show(server)
    if server.get("status") == "ERROR":
        raise RemoteError(0, f"server {server['id']} failed: {_fault(server)}")


def _boot_fields(key_name: str | None, user_data: BinaryIO | None, meta: tuple[str, ...],
                 availability_zone: str | None, config_drive: bool) -> dict[str, Any]:
    """The optional server fields, as novaclient's `nova boot` sends them."""
    fields: dict[str, Any] = {}
    if key_name is not None:
        fields["key_name"] = key_name
    if user_data is not None:
        fields["user_data"] = base64.b64encode(user_data.read()).decode()
    if meta:
        fields["metadata"] = dict(_key_value(item) for item in meta)
    if availability_zone is not None:
        fields["availability_zone"] = availability_zone
    if config_drive:
        fields["config_drive"] = True
    return fields


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
    return key, value


@click.command("list")
@format_option
def list_servers() -> None:
    """List servers."""
    servers = cli_context().compute().list(detail=True)
    emit_list(cli_context().fmt, servers, [
        ("ID", "id"), ("Name", "name"), ("Status", "status"),
        ("Task State", lambda s: s.get("OS-EXT-STS:task_state") or "-"),
        ("Power State", lambda s: POWER_STATES.get(s.get("OS-EXT-STS:power_state"), "-")),
        ("Image", lambda s: _ref(s.get("image", ""))),
    ])


@click.command("show")
@click.argument("server_id")
@format_option
def show(server_id: str) -> None:
    """Show a server, its fault if any, and how its image arrived (SERVER_ID: id or name)."""
    client = cli_context().compute()
    _show(client.get(resolve_server(client, server_id)))


@click.command("delete")
@click.argument("server_ids", nargs=-1, required=True)
@format_option
def delete(server_ids: tuple[str, ...]) -> None:
    """Delete servers, by id or name (their instance directories go with them)."""
    client = cli_context().compute()
    delete_each(server_ids, lambda ref: client.delete(resolve_server(client, ref)))


@click.command("flavor-list")
@format_option
def flavor_list() -> None:
    """List flavors."""
    emit_list(cli_context().fmt, cli_context().compute().flavors(), [
        ("ID", "id"), ("Name", "name"), ("Memory_MiB", "ram"), ("Disk", "disk"),
        ("Ephemeral", lambda f: f.get("OS-FLV-EXT-DATA:ephemeral", 0)),
        ("Swap", lambda f: f.get("swap") or ""), ("VCPUs", "vcpus"),
        ("Is_Public", lambda f: f.get("os-flavor-access:is_public", True)),
    ])


@click.command("keypair-add")
@click.option("--pub-key", type=click.File("r"), help="Import this public key; without it a "
              "key is generated and its private half printed (once).")
@click.argument("name")
@format_option
def keypair_add(pub_key: TextIO | None, name: str) -> None:
    """Create a keypair (as `nova keypair-add`)."""
    made = cli_context().compute().keypair_create(name, pub_key.read() if pub_key else None)
    if "private_key" in made and cli_context().fmt == "table":
        click.echo(made["private_key"], nl=False)
        return
    emit_properties(cli_context().fmt, made, made)


@click.command("keypair-list")
@format_option
def keypair_list() -> None:
    """List your keypairs."""
    emit_list(cli_context().fmt, cli_context().compute().keypairs(), [
        ("Name", "name"), ("Type", lambda k: k.get("type", "ssh")),
        ("Fingerprint", "fingerprint")])


@click.command("keypair-delete")
@click.argument("names", nargs=-1, required=True)
@format_option
def keypair_delete(names: tuple[str, ...]) -> None:
    """Delete keypairs by name."""
    client = cli_context().compute()
    delete_each(names, client.keypair_delete)




def _act_on_each(refs: tuple[str, ...], verb: str, body: dict[str, Any]) -> None:
    """Ask for the action on every server, as `nova stop a b c` does: all are tried, each
    failure named (a stopped server's 409 says so), exit 1 if any failed."""
    client = cli_context().compute()
    failed = []
    for ref in refs:
        try:
            client.action(resolve_server(client, ref), body)
        except RemoteError as exc:
            failed.append(f"{ref}: {exc.message}")
    if failed:
        raise RemoteError(0, f"failed to {verb} " + "; ".join(failed))


@click.command("stop")
@click.argument("servers", nargs=-1, required=True)
def stop(servers: tuple[str, ...]) -> None:
    """Stop servers (a clean shutdown, then power off after shutdown_timeout)."""
    _act_on_each(servers, "stop", {"os-stop": None})


@click.command("start")
@click.argument("servers", nargs=-1, required=True)
def start(servers: tuple[str, ...]) -> None:
    """Start stopped servers."""
    _act_on_each(servers, "start", {"os-start": None})


@click.command("reboot")
@click.option("--hard", is_flag=True, help="Reset the guest instead of asking it to reboot.")
@click.argument("servers", nargs=-1, required=True)
def reboot(hard: bool, servers: tuple[str, ...]) -> None:
    """Reboot servers: SOFT (ACPI, then HARD if the guest ignores it) or --hard."""
    _act_on_each(servers, "reboot", {"reboot": {"type": "HARD" if hard else "SOFT"}})


@click.command("console-log")
@click.option("--length", type=int, default=None, help="Only the last N lines.")
@click.argument("server")
def console_log(length: int | None, server: str) -> None:
    """Print what a server's guest wrote to its serial console."""
    client = cli_context().compute()
    click.echo(client.console_output(resolve_server(client, server), length), nl=False)


COMMANDS = [boot, list_servers, show, delete, flavor_list, stop, start, reboot, console_log,
            keypair_add, keypair_list, keypair_delete]
