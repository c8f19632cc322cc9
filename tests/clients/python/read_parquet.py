"""Reads faultline's Parquet files directly, as docs/operations.md shows, and prints JSON.

Usage: read_parquet.py OBJECT_STORE_ROOT
"""

import json
import sys

import duckdb

root = sys.argv[1]
glob = f"{root}/events/**/*.parquet"
con = duckdb.connect()
source = f"read_parquet('{glob}', hive_partitioning = true)"
total, distinct = con.execute(
    f"SELECT count(*), count(DISTINCT event_id) FROM {source}"
).fetchone()
projects = con.execute(
    f"SELECT project, project_id, count(*) FROM {source} GROUP BY ALL ORDER BY project"
).fetchall()
print(
    json.dumps(
        {
            "events": total,
            "distinct_events": distinct,
            "projects": [
                {"project": name, "project_id": pid, "events": n}
                for name, pid, n in projects
            ],
        }
    )
)
