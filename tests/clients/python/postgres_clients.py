"""Drives faultline's PostgreSQL listener with real drivers, the way applications and BI tools do.

Usage: postgres_clients.py CLIENT PORT TOKEN
CLIENT is one of:
  psycopg     psycopg 3: server-side parameter binding (prepare=True), binary results, a
              transaction, errors with their SQLSTATE
  asyncpg     asyncpg: extended protocol only, binary format, typed parameters, type introspection
  sqlalchemy  SQLAlchemy over postgresql+psycopg://: what Superset / Metabase-like tools run to
              connect, list tables and columns, then query with a bound parameter
  bad-token   psycopg with a wrong token: the error a user sees
Prints one JSON object with what the client observed; the Rust test asserts on it.
"""

import asyncio
import datetime
import json
import sys


def jsonable(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return {"type": type(value).__name__, "iso": value.isoformat()}
    return value


def conninfo(port, token):
    return f"host=127.0.0.1 port={port} user=bi dbname=faultline password={token} sslmode=disable"


def psycopg_client(port, token):
    import psycopg

    out = {}
    with psycopg.connect(conninfo(port, token), autocommit=True) as conn:
        out["server_version"] = conn.info.server_version
        sql = (
            "SELECT project, title, count(*) AS n, max(received) AS last "
            "FROM events WHERE project = %s GROUP BY project, title"
        )
        with conn.cursor(binary=True) as cur:
            cur.execute(sql, ["shop"], prepare=True)
            out["columns"] = [[d.name, d.type_code] for d in cur.description]
            out["rows"] = [[jsonable(v) for v in row] for row in cur.fetchall()]
            # The same prepared statement with another value: the other tenant's project.
            cur.execute(sql, ["web"], prepare=True)
            out["web_rows"] = cur.fetchall()
            cur.execute(
                "SELECT count(*) AS n FROM events WHERE project_id <> %s AND level = %s",
                [-1, "error"],
                prepare=True,
            )
            out["typed_params"] = cur.fetchall()
        with conn.cursor() as cur:
            cur.execute("SELECT event_count, regressed FROM issues WHERE title LIKE %s", ["shop%"])
            out["text_rows"] = cur.fetchall()
            cur.execute("SELECT version()")
            out["version"] = cur.fetchone()[0]
            cur.execute("SHOW standard_conforming_strings")
            out["show"] = cur.fetchone()[0]
            cur.execute(
                "SELECT table_name FROM information_schema.tables ORDER BY table_name"
            )
            out["information_schema"] = [r[0] for r in cur.fetchall()]
            cur.execute(
                "SELECT c.relname FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s ORDER BY 1",
                ["public"],
            )
            out["pg_class"] = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT datname FROM pg_catalog.pg_database")
            out["pg_database"] = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT nspname FROM pg_catalog.pg_namespace ORDER BY 1")
            out["pg_namespace"] = [r[0] for r in cur.fetchall()]
            cur.execute("SET application_name = 'superset'")
            cur.execute("SELECT current_setting('application_name'), current_schema()")
            out["settings"] = list(cur.fetchone())
        errors = {}
        for name, bad in [
            ("syntax", "SELEC 1"),
            ("undefined_table", "SELECT * FROM secrets"),
            ("copy", "COPY events TO '/tmp/leak.parquet'"),
            ("ddl", "CREATE TABLE t (a int)"),
            ("file", "SELECT * FROM read_csv('/etc/passwd')"),
            ("df_settings", "SELECT * FROM information_schema.df_settings"),
        ]:
            try:
                with conn.cursor() as cur:
                    cur.execute(bad, prepare=True)
                errors[name] = None
            except psycopg.Error as err:
                errors[name] = [err.sqlstate, err.diag.message_primary]
        out["errors"] = errors
    # Not in autocommit: psycopg wraps statements in BEGIN ... ROLLBACK.
    with psycopg.connect(conninfo(port, token)) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM events")
            out["in_transaction"] = cur.fetchone()[0]
        conn.rollback()
    return out


async def asyncpg_main(port, token):
    import asyncpg

    conn = await asyncpg.connect(
        host="127.0.0.1", port=port, user="bi", password=token, database="faultline", ssl=False
    )
    out = {}
    try:
        stmt = await conn.prepare(
            "SELECT project, title, count(*) AS n, max(received) AS last "
            "FROM events WHERE project = $1 GROUP BY project, title"
        )
        out["parameters"] = [t.name for t in stmt.get_parameters()]
        out["attributes"] = [[a.name, a.type.name] for a in stmt.get_attributes()]
        rows = await stmt.fetch("shop")
        out["rows"] = [[jsonable(v) for v in r.values()] for r in rows]
        out["web_rows"] = [list(r.values()) for r in await stmt.fetch("web")]
        out["typed"] = await conn.fetchval(
            "SELECT count(*) FROM events WHERE project_id > $1 AND received < $2",
            0,
            datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1),
        )
        out["pg_type"] = await conn.fetchval(
            "SELECT typname FROM pg_catalog.pg_type WHERE oid = $1", 20
        )
        try:
            await conn.fetch("SELECT * FROM faultline.public.events_project_2")
            out["undefined_table"] = None
        except asyncpg.PostgresError as err:
            out["undefined_table"] = [err.sqlstate, str(err)]
        try:
            await conn.execute("DROP TABLE events")
            out["drop"] = None
        except asyncpg.PostgresError as err:
            out["drop"] = [err.sqlstate, str(err)]
    finally:
        await conn.close()
    return out


def sqlalchemy_client(port, token):
    import sqlalchemy as sa

    url = f"postgresql+psycopg://bi:{token}@127.0.0.1:{port}/faultline"
    engine = sa.create_engine(url)
    out = {}
    inspector = sa.inspect(engine)
    out["schemas"] = inspector.get_schema_names()
    out["tables"] = sorted(inspector.get_table_names())
    columns = inspector.get_columns("events")
    out["events_columns"] = {c["name"]: str(c["type"]) for c in columns}
    out["issues_columns"] = [c["name"] for c in inspector.get_columns("issues")]
    with engine.connect() as conn:
        result = conn.execute(
            sa.text("SELECT project, count(*) AS n FROM events WHERE project = :p GROUP BY project"),
            {"p": "shop"},
        )
        out["rows"] = [list(r) for r in result]
        # A query built from the reflected column names, as a chart builder does.
        names = [c["name"] for c in columns]
        events = sa.table("events", *[sa.column(n) for n in names])
        query = sa.select(events.c.title).where(events.c.project == sa.bindparam("p"))
        out["core_rows"] = [list(r) for r in conn.execute(query, {"p": "web"})]
    engine.dispose()
    return out


def bad_token(port, _token):
    import psycopg

    try:
        psycopg.connect(conninfo(port, "flt_not_a_token")).close()
        return {"error": None}
    except psycopg.OperationalError as err:
        return {"error": str(err)}


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    client, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if client == "psycopg":
        out = psycopg_client(port, token)
    elif client == "asyncpg":
        out = asyncio.run(asyncpg_main(port, token))
    elif client == "sqlalchemy":
        out = sqlalchemy_client(port, token)
    elif client == "bad-token":
        out = bad_token(port, token)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
