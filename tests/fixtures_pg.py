"""The machine's PostgreSQL (127.0.0.1:5432) for the scale-out tests: admin statements
such as creating and dropping a test database."""

from __future__ import annotations

import asyncio
import os

PG = os.environ.get("CONTINGENCY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_admin(sql: str) -> None:
    """Run one statement as the PostgreSQL superuser (outside a transaction)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())
