"""``recstack fleet``: the measuring nodes of a Ray cluster and their platforms (the ids
``--platforms`` takes)."""

from __future__ import annotations

from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import app, console
from recstack.cli.options import AddressOption, JsonOption


@app.command()
def fleet(address: AddressOption = None, as_json: JsonOption = False) -> None:
    """List the cluster's measuring nodes (those offering the recstack_slot resource) with
    the platform each reports: the platforms `--executor ray --platforms` chooses from."""
    from recstack.fleet import RayExecutor

    cluster = RayExecutor(address=address)
    rows = [{"node": node.node_id, "address": node.address, "cpus": node.cpus,
             "platform_id": node.platform_id, "platform": node.machine.description}
            for node in cluster.nodes]
    if as_json:
        fmt.print_json({"nodes": rows, "left_out": cluster.unreachable})
        return
    table = Table(header_style="bold")
    for column in ("node", "address", "cpus", "platform_id", "platform"):
        table.add_column(column, justify="right" if column == "cpus" else "left")
    for row in rows:
        table.add_row(row["node"][:12], row["address"], str(row["cpus"]), row["platform_id"],
                      row["platform"])
    console.print(table)
    platforms = len({row["platform_id"] for row in rows})
    console.print(f"{len(rows)} measuring node(s), {platforms} platform(s)", highlight=False)
    for why in cluster.unreachable:
        console.print(f"left out: {why}", highlight=False, markup=False)
