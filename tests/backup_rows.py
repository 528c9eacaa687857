"""Rows of a generated service's database, run with the service's own interpreter:

    python backup_rows.py PACKAGE seed URL COUNT   # COUNT rows spread over every table
    python backup_rows.py PACKAGE rows URL         # every table's rows as JSON
    python backup_rows.py PACKAGE write URL [N]    # insert items (N, or until stopped)
    python backup_rows.py PACKAGE sign MANIFEST KEY  # sign a manifest again with KEY

It reads the tables from the service's own models, so it fits every variant.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, insert, select
from sqlalchemy.ext.asyncio import create_async_engine


def _value(column: Any, table: str, number: int, parents: dict[str, list[int]]) -> Any:
    foreign = next(iter(column.foreign_keys), None)
    if foreign is not None:
        ids = parents[foreign.column.table.name]
        return ids[number % len(ids)]
    kind = getattr(column.type, "impl", column.type)  # a TypeDecorator (Timestamp): its impl
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 1, tzinfo=UTC)
    if isinstance(kind, Boolean):
        return number % 2 == 0
    if isinstance(kind, Integer):
        return number
    if isinstance(kind, String):
        text = f"{table}-{column.name}-{number}"
        return text[-(kind.length or 200) :]
    raise SystemExit(f"no value for {table}.{column.name} ({kind})")


async def seed(metadata: Any, url: str, count: int) -> None:
    tables = metadata.sorted_tables
    per_table = count // len(tables) + 1
    parents: dict[str, list[int]] = {}
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        for table in tables:
            rows = [
                {
                    column.name: _value(column, table.name, number, parents)
                    for column in table.columns
                    if not column.primary_key
                }
                for number in range(per_table)
            ]
            await connection.execute(insert(table), rows)
            parents[table.name] = list((await connection.scalars(select(table.c.id))).all())
    await engine.dispose()


async def rows(metadata: Any, url: str) -> None:
    engine = create_async_engine(url)
    found: dict[str, list[list[str]]] = {}
    async with engine.connect() as connection:
        for table in metadata.sorted_tables:
            result = await connection.execute(select(table))
            found[table.name] = sorted([str(value) for value in row] for row in result)
    await engine.dispose()
    print(json.dumps(found))


async def write(metadata: Any, url: str, limit: int | None) -> None:
    items = metadata.tables["items"]
    engine = create_async_engine(url)
    number = 0
    while limit is None or number < limit:
        async with engine.begin() as connection:
            await connection.execute(
                insert(items),
                {
                    "name": f"written-{number}",
                    "description": "during the backup",
                    "created_at": datetime.now(UTC),
                    "updated_at": datetime.now(UTC),
                },
            )
        print(number, flush=True)
        number += 1
    await engine.dispose()


def sign(package: str, path: str, key: str) -> None:
    """What a holder of the signing key can do: sign a manifest as the service would."""
    manifest = importlib.import_module(f"{package}.backup.manifest").Manifest
    with open(path, "rb") as file:
        signed = manifest.from_json(file.read()).signed(key)
    with open(path, "wb") as file:
        file.write(signed.to_json())


def main() -> None:
    package, action, url, *rest = sys.argv[1:]
    if action == "sign":
        sign(package, url, rest[0])
        return
    metadata = importlib.import_module(f"{package}.models").Base.metadata
    settings = importlib.import_module(f"{package}.settings").Settings
    url = settings(_env_file=None, database_url=url, jwt_secret_key="x" * 40).database_url
    if action == "seed":
        asyncio.run(seed(metadata, url, int(rest[0])))
    elif action == "rows":
        asyncio.run(rows(metadata, url))
    else:
        asyncio.run(write(metadata, url, int(rest[0]) if rest else None))


if __name__ == "__main__":
    main()
