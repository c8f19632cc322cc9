"""Logs in to faultline's Arrow Flight SQL listener with a user name and password (the ADBC
driver's Basic handshake; the password is the API token) and runs SQL.

Usage: flight_sql_login.py URI USER TOKEN SQL...
Prints one JSON line per statement: {"rows": [...]} or {"error": "<message>"}; a failed login
prints {"error": ...} once. Exits 0 unless the arguments are wrong.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_manager import DatabaseOptions


def main() -> int:
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    uri, user, token, statements = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    options = {DatabaseOptions.USERNAME.value: user, DatabaseOptions.PASSWORD.value: token}
    try:
        conn = flight_sql.connect(uri, db_kwargs=options)
    except Exception as err:  # noqa: BLE001 - the test asserts the message
        print(json.dumps({"error": str(err)}), flush=True)
        return 0
    with conn:
        for sql in statements:
            try:
                with conn.cursor() as cursor:
                    cursor.execute(sql)
                    rows = cursor.fetch_arrow_table().to_pylist()
                print(json.dumps({"rows": rows}, default=str), flush=True)
            except Exception as err:  # noqa: BLE001 - the test asserts the message
                print(json.dumps({"error": str(err)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
