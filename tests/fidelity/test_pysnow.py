"""The simulator against pysnow, a ServiceNow client library we did not write:
OAuth password grant, an encoded query with >= and ORDERBY built by pysnow's
QueryBuilder, paged by offset, compared with the simulator's ground truth."""

import datetime
import json
import os
import subprocess
import urllib.request

import pysnow
import pytest

# requests-oauthlib refuses plain http; the simulator listens on loopback.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SIM = os.environ.get("SNC_SIM_BIN", os.path.join(ROOT, "target", "release", "snc-sim"))


@pytest.fixture(scope="module")
def sim():
    proc = subprocess.Popen(
        [SIM, "--listen", "127.0.0.1:0", "--days", "3", "--events-per-day", "1000", "--seed", "42"],
        stdout=subprocess.PIPE,
        text=True,
    )
    banner = json.loads(proc.stdout.readline())
    yield banner
    proc.terminate()
    proc.wait(timeout=10)


def truth(sim, table, since):
    url = "%s/__sim/truth?table=%s&from=%s" % (
        sim["instance_url"],
        table,
        int(since.replace(tzinfo=datetime.timezone.utc).timestamp()),
    )
    with urllib.request.urlopen(url) as r:
        return json.load(r)["sys_ids"]


def oauth_client(sim):
    client = pysnow.OAuthClient(
        client_id=sim["client_id"],
        client_secret=sim["client_secret"],
        host=sim["instance_url"].split("://", 1)[1],
        use_ssl=False,
    )
    token = client.generate_token(sim["username"], sim["password"])
    assert token["token_type"] == "Bearer"
    assert token["refresh_token"]
    client.set_token(token)
    return client


def test_oauth_query_with_orderby_and_ge_paged_matches_ground_truth(sim):
    client = oauth_client(sim)
    since = datetime.datetime.utcnow().replace(microsecond=0) - datetime.timedelta(days=2)
    query = (
        pysnow.QueryBuilder()
        .field("sys_created_on").greater_than_or_equal(since)
        .AND().field("sys_created_on").order_ascending()
        .AND().field("sys_id").order_ascending()
    )
    events = client.resource(api_path="/table/sysevent")
    page_size = 150
    seen, pages = [], 0
    while True:
        response = events.get(query=query, limit=page_size, offset=pages * page_size,
                              fields=["sys_id", "sys_created_on", "name"])
        try:
            rows = list(response.all())
        except pysnow.exceptions.NoResults:
            rows = []
        if not rows:
            break
        pages += 1
        seen.extend(r["sys_id"] for r in rows)
        if len(rows) < page_size:
            break
    expected = truth(sim, "sysevent", since)
    assert pages >= 3
    assert len(expected) > 2 * page_size
    assert seen == expected


def test_wrong_password_is_refused_the_way_servicenow_refuses(sim):
    client = pysnow.OAuthClient(
        client_id=sim["client_id"],
        client_secret=sim["client_secret"],
        host=sim["instance_url"].split("://", 1)[1],
        use_ssl=False,
    )
    with pytest.raises(pysnow.exceptions.TokenCreateError) as err:
        client.generate_token(sim["username"], "not-the-password")
    assert "access_denied" in str(err.value)


def test_basic_auth_client_reads_admin_role_by_dot_walk(sim):
    client = pysnow.Client(
        host=sim["instance_url"].split("://", 1)[1],
        user=sim["username"],
        password=sim["password"],
        use_ssl=False,
    )
    roles = client.resource(api_path="/table/sys_user_has_role")
    rows = list(roles.get(query="user.user_name=%s^role.name=admin" % sim["username"], limit=1).all())
    assert len(rows) == 1
