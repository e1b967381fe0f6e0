"""Print a PostgreSQL URL the tests can use as a superuser.

The machine's server on 127.0.0.1:5432 when it answers (CI and most developer boxes);
otherwise an embedded server managed by Cronium in the temp dir, so the suite
runs on a machine with nothing but Python.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import asyncpg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def main() -> int:
    if asyncio.run(_answers(DEFAULT_URL)):
        print(DEFAULT_URL)
        return 0
    if os.environ.get("CRONIUM_TEST_REQUIRE_ALL") == "1":
        print(f"PostgreSQL does not answer at {DEFAULT_URL}", file=sys.stderr)
        return 1
    from cronium.db.embedded import EmbeddedPostgres

    # Under /tmp: as root the server runs as an unprivileged user, who may not be able to
    # enter the checkout (e.g. under /root).
    data_dir = Path(tempfile.gettempdir()) / f"cronium-test-postgres-{os.getuid()}"
    server = EmbeddedPostgres(data_dir, database="postgres")
    url = server.start().replace("postgresql+asyncpg://", "postgresql://")
    print(
        f"using embedded PostgreSQL in {data_dir} (stop: pg_ctl -D {data_dir}/postgres/data stop)",
        file=sys.stderr,
    )
    print(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
