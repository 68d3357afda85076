"""Runs ClickHouse statements in chdb (current ClickHouse, in process) for the Rust tests.

Reads {"setup": [sql], "inserts": [[table, jsoneachrow_body]], "after_inserts": [sql],
"queries": [sql]} as JSON on stdin ("after_inserts" optional: statements run once the rows
are in); writes {"results": [{"rows": tsv} | {"error": message}]} (one per query) on stdout.
Setup or insert errors end the run with exit code 2 and the message on stderr.
"""

import json
import sys

from chdb import session


def main() -> int:
    job = json.load(sys.stdin)
    sess = session.Session()
    sess.query("CREATE DATABASE IF NOT EXISTS footfall")
    sess.query("USE footfall")
    try:
        for sql in job["setup"]:
            sess.query(sql)
        for table, body in job["inserts"]:
            if body:
                sess.query(f"INSERT INTO {table} FORMAT JSONEachRow {body}")
        for sql in job.get("after_inserts", []):
            sess.query(sql)
    except Exception as e:  # noqa: BLE001 - any failure here is the test's failure
        print(f"setup failed: {e}", file=sys.stderr)
        return 2
    results = []
    for sql in job["queries"]:
        try:
            results.append({"rows": str(sess.query(sql, "TabSeparated"))})
        except Exception as e:  # noqa: BLE001 - reported per statement
            results.append({"error": str(e)})
    json.dump({"results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
