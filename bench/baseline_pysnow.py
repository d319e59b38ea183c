"""The baseline an admin would write instead of the connector: pysnow pulling
the same tables with the same page size into SQLite. Prints one JSON line."""

import json
import os
import sqlite3
import sys
import time

import pysnow
import requests

os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
TABLES = ["sysevent", "sys_audit", "sys_audit_delete", "syslog_transaction", "sys_user", "sys_user_has_role"]


def main():
    sim = json.loads(sys.argv[1])
    since = sys.argv[2]  # 'YYYY-MM-DD hh:mm:ss'
    page = int(sys.argv[3])
    db = sqlite3.connect(sys.argv[4])
    db.execute("CREATE TABLE IF NOT EXISTS events (source_table TEXT, sys_id TEXT, created TEXT, raw TEXT, PRIMARY KEY (source_table, sys_id))")
    client = pysnow.OAuthClient(client_id=sim["client_id"], client_secret=sim["client_secret"],
                                host=sim["instance_url"].split("://", 1)[1], use_ssl=False)
    client.set_token(client.generate_token(sim["username"], sim["password"]))
    started = time.time()
    calls = rows = 0
    for table in TABLES:
        resource = client.resource(api_path="/table/" + table)
        offset = 0
        while True:
            query = "sys_created_on>=%s^ORDERBYsys_created_on^ORDERBYsys_id" % since
            calls += 1
            try:
                records = list(resource.get(query=query, limit=page, offset=offset).all())
            except (pysnow.exceptions.NoResults, requests.exceptions.HTTPError) as e:
                # The v1 Table API answers an empty page with 404.
                if isinstance(e, requests.exceptions.HTTPError) and e.response.status_code != 404:
                    raise
                records = []
            db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
                           [(table, r["sys_id"], r["sys_created_on"], json.dumps(r)) for r in records])
            db.commit()
            rows += len(records)
            if len(records) < page:
                break
            offset += page
    print(json.dumps({"seconds": time.time() - started, "events": rows, "calls": calls}))


main()
