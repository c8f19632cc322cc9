"""DuckDB side of `query-bench`: the same questions on the same Parquet files.

Reads {"root": DIR, "reps": N, "queries": [[name, sql], ...]} on stdin; `events` and `rollups`
are views over DIR/events/**/*.parquet and DIR/rollups/**/*.parquet. Prints
{name: {"wall": median ms, "cpu": median CPU ms of the process}} (or {name: null} with the error on
stderr) as JSON on stdout.
"""

import json
import statistics
import sys
import time

import duckdb


def main() -> int:
    spec = json.load(sys.stdin)
    root = spec["root"]
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{root}/events/**/*.parquet')"
    )
    con.execute(
        f"CREATE VIEW rollups AS SELECT * FROM read_parquet('{root}/rollups/**/*.parquet')"
    )
    out = {}
    for name, sql in spec["queries"]:
        try:
            wall, cpu = [], []
            for i in range(spec["reps"] + 1):
                started = time.perf_counter()
                cpu_started = time.process_time()
                con.execute(sql).fetchall()
                if i > 0:
                    wall.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - cpu_started) * 1000)
            out[name] = {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}
        except Exception as err:  # noqa: BLE001 - reported, the run goes on
            print(f"duckdb: {name}: {err}", file=sys.stderr)
            out[name] = None
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
