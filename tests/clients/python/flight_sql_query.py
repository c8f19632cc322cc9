"""Runs SQL against faultline's Arrow Flight SQL listener with the ADBC Flight SQL driver.

Usage: flight_sql_query.py URI TOKEN SQL...
Prints one JSON line per statement: {"rows": [...], "schema": {"col": "type"}} or
{"error": "<message>"}. Exits 0 unless the arguments are wrong.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    uri, token, statements = sys.argv[1], sys.argv[2], sys.argv[3:]
    options = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
    with flight_sql.connect(uri, db_kwargs=options) as conn:
        for sql in statements:
            try:
                with conn.cursor() as cursor:
                    cursor.execute(sql)
                    table = cursor.fetch_arrow_table()
                schema = {f.name: str(f.type) for f in table.schema}
                rows = table.to_pylist()
                print(json.dumps({"rows": rows, "schema": schema}, default=str), flush=True)
            except Exception as err:  # noqa: BLE001 - the test asserts the message
                print(json.dumps({"error": str(err)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
