"""Reads faultline's Parquet files directly, as docs/operations.md shows, and prints JSON.

Usage: read_parquet.py OBJECT_STORE_ROOT
"""

import json
import sys

import duckdb
import pyarrow.parquet as pq

root = sys.argv[1]
glob = f"{root}/events/**/*.parquet"
con = duckdb.connect()
source = f"read_parquet('{glob}', hive_partitioning = true)"
total, distinct = con.execute(
    f"SELECT count(*), count(DISTINCT event_id) FROM {source}"
).fetchone()
projects = con.execute(
    f"SELECT project, project_id, proj, count(*) FROM {source} GROUP BY ALL ORDER BY project"
).fetchall()
# What pandas.read_parquet does with a directory: pyarrow with hive partition discovery.
table = pq.read_table(f"{root}/events", columns=["event_id", "project", "proj", "date"])
print(
    json.dumps(
        {
            "events": total,
            "distinct_events": distinct,
            "projects": [
                {"project": name, "project_id": pid, "proj": key, "events": n}
                for name, pid, key, n in projects
            ],
            "pyarrow_events": table.num_rows,
            "pyarrow_projects": sorted(set(table.column("project").to_pylist())),
        }
    )
)
