"""The `chute` command: one CLI for the images API, the compute API, and `chute up`.

Every failure ends as one line on stderr and exit status 1 - never a traceback - because the
CLI is run by people and by scripts, and neither can act on a stack dump.
"""

from __future__ import annotations

import sys

import click

from chute.cli import hosts, images, servers
from chute.cli.context import FORMATS, CliContext
from chute.errors import ChuteError, RemoteError

DEFAULT_IMAGE_URL = "http://127.0.0.1:9292"
DEFAULT_COMPUTE_URL = "http://127.0.0.1:8774"


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.option("--os-image-url", envvar="OS_IMAGE_URL", default=DEFAULT_IMAGE_URL,
              show_default=True, help="Images API endpoint [env: OS_IMAGE_URL].")
@click.option("--os-compute-url", envvar="OS_COMPUTE_URL", default=DEFAULT_COMPUTE_URL,
              show_default=True, help="Compute API endpoint [env: OS_COMPUTE_URL].")
@click.option("--os-auth-token", envvar=["OS_AUTH_TOKEN", "OS_TOKEN"], default=None,
              help="Token sent as X-Auth-Token [env: OS_AUTH_TOKEN, else OS_TOKEN].")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True, help="Output format.")
@click.version_option(package_name="chute", prog_name="chute")
@click.pass_context
def cli(ctx: click.Context, os_image_url: str, os_compute_url: str, os_auth_token: str | None,
        fmt: str) -> None:
    """Images (Glance v2 API) and servers (Nova v2.1 subset) from one command."""
    ctx.obj = CliContext(os_image_url, os_compute_url, os_auth_token or None, fmt)


@cli.command("up")
@click.option("--data-dir", default="./var", show_default=True,
              type=click.Path(file_okay=False),
              help="Where the database, the image store and the instances live.")
@click.option("--api-port", type=int, default=None,
              help="chute-api's port on the first start  [default: 9292]; later starts use "
                   "bind_port in DATA_DIR/chute-api.conf.")
@click.option("--compute-port", type=int, default=None,
              help="chute-compute's port on the first start  [default: 8774]; later starts "
                   "use bind_port in DATA_DIR/chute-compute.conf.")
@click.option("--show-locations", is_flag=True, default=False,
              help="Show each image's store path (locations, direct_url) to every API caller "
                   "(also turns them on in a kept chute-api.conf). Off: only the compute host "
                   "reads them, with the service token.")
@click.option("--compute-driver", type=click.Choice(["auto", "libvirt", "fake"]),
              default="auto", show_default=True,
              help="On the first start: libvirt (real guests), fake (disks only), or auto "
                   "(libvirt if it can run here, installing and starting it when chute runs "
                   "from its repository as root, else fake with a line saying why).")
@click.option("--keystone", is_flag=True, default=False,
              help="Run a real Keystone beside chute (installed on first use into "
                   "~/.cache/chute) and authenticate with it: DATA_DIR/openrc then logs "
                   "glance, nova and openstack in with a password. Without it: a tokens file.")
@click.option("--keystone-port", type=int, default=None,
              help="Keystone's port on the first start with --keystone  [default: 5000].")
def up(data_dir: str, api_port: int | None, compute_port: int | None,
       show_locations: bool, compute_driver: str, keystone: bool,
       keystone_port: int | None) -> None:
    """Run chute-api and chute-compute together on this machine (all-in-one)."""
    from chute.allinone import main as allinone_main  # only `up` needs it

    status = allinone_main(data_dir, api_port, compute_port, show_locations, compute_driver,
                           keystone, keystone_port)
    if status:
        sys.exit(status)


for _command in images.COMMANDS + servers.COMMANDS + hosts.COMMANDS:
    cli.add_command(_command)


def _fail(message: str, status: int = 1) -> int:
    click.echo(f"chute: error: {message}", err=True)
    return status


def _describe(exc: ChuteError) -> str:
    if isinstance(exc, RemoteError) and exc.status >= 400:
        return f"{exc.message} (HTTP {exc.status})"
    return exc.message


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the command, turning every failure into one line."""
    try:
        result = cli.main(args=argv, prog_name="chute", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        hint = f" (see 'chute {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else ""
        return _fail(f"{exc.format_message()}{hint}")
    except click.ClickException as exc:
        return _fail(exc.format_message())
    except click.exceptions.Abort:
        return _fail("aborted", 130)
    except ChuteError as exc:
        return _fail(_describe(exc))
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the promise is one line, whatever broke
        return _fail(f"unexpected {type(exc).__name__}: {exc}")
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
