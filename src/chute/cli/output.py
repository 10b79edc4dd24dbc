"""Tables in the look of python-glanceclient / novaclient, or JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click

# glanceclient's print_dict wraps values at 80 columns.
MAX_VALUE_WIDTH = 80


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)  # None shows as "None", as in glanceclient


def property_table(doc: dict[str, Any]) -> str:
    """`Property | Value`, sorted by property, nested values as JSON (glanceclient print_dict)."""
    import prettytable  # only tables need it: not `-f json`, not a download

    table = prettytable.PrettyTable(["Property", "Value"])
    table.align = "l"
    table.max_width = MAX_VALUE_WIDTH
    for key, value in doc.items():
        table.add_row([key, _cell(value)])
    return table.get_string(sortby="Property")


def list_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    import prettytable

    table = prettytable.PrettyTable(list(columns))
    table.align = "l"
    for row in rows:
        table.add_row([_cell(v) for v in row])
    return table.get_string()


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def emit_properties(fmt: str, doc: dict[str, Any], table_doc: dict[str, Any] | None = None) -> None:
    """Print one resource: the raw document as JSON, or `table_doc` (a display-friendly
    version of it) as a Property/Value table."""
    if fmt == "json":
        emit_json(doc)
    else:
        click.echo(property_table(doc if table_doc is None else table_doc))


def emit_list(fmt: str, docs: list[dict[str, Any]], columns: Sequence[tuple[str, Any]]) -> None:
    """Print many resources; `columns` = (heading, key or function of the document)."""
    if fmt == "json":
        emit_json(docs)
        return
    rows = [[(get(doc) if callable(get) else doc.get(get, "")) for _h, get in columns]
            for doc in docs]
    click.echo(list_table([h for h, _g in columns], rows))
