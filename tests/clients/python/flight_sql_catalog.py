"""Prepared statements with parameters and the catalog calls of faultline's Flight SQL listener,
through the ADBC Flight SQL driver.

Usage: flight_sql_catalog.py URI TOKEN
Prints one JSON object with what the driver observed (rows, objects, schemas, info, errors).
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    uri, token = sys.argv[1], sys.argv[2]
    options = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
    out = {}
    with flight_sql.connect(uri, db_kwargs=options) as conn:
        sql = "SELECT project, title FROM events WHERE project = $1"
        with conn.cursor() as cur:
            cur.execute(sql, ("shop",))
            out["rows"] = cur.fetch_arrow_table().to_pylist()
            cur.execute(sql, ("web",))
            out["web_rows"] = cur.fetch_arrow_table().to_pylist()
            cur.execute("SELECT count(*) AS n FROM events WHERE project_id > $1", (0,))
            out["typed"] = cur.fetch_arrow_table().to_pylist()
            try:
                cur.execute("DELETE FROM events WHERE project = $1", ("shop",))
                out["delete"] = None
            except Exception as err:  # noqa: BLE001 - the test asserts the message
                out["delete"] = str(err)
        objects = []
        for catalog in conn.adbc_get_objects().read_all().to_pylist():
            for schema in catalog["catalog_db_schemas"] or []:
                for table in schema["db_schema_tables"] or []:
                    objects.append(
                        [
                            catalog["catalog_name"],
                            schema["db_schema_name"],
                            table["table_name"],
                            table["table_type"],
                            len(table["table_columns"] or []),
                        ]
                    )
        out["objects"] = objects
        schema = conn.adbc_get_table_schema("events")
        out["events_schema"] = {f.name: str(f.type) for f in schema}
        out["table_types"] = conn.adbc_get_table_types()
        info = conn.adbc_get_info()
        out["info"] = {k: info[k] for k in ("vendor_name", "vendor_version") if k in info}
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
