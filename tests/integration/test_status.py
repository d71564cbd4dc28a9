"""salt-run cluster.status against a real master and its four minions
(gateway, master, node1, node2 on loopback): a row per accepted minion as
JSON, and the table as text."""

from tests.integration.conftest import HOSTS


def test_status_json_has_a_row_per_accepted_minion(synced, salt_run_cli):
    ret = salt_run_cli.run("cluster.status")
    assert ret.returncode == 0, ret
    assert isinstance(ret.data, list), ret.data
    rows = {row["host"]: row for row in ret.data}
    assert set(HOSTS) <= set(rows), sorted(rows)
    for host, roles in HOSTS.items():
        row = rows[host]
        assert row["accepted"] is True and row["answering"] is True, row
        assert row["roles"] == roles, row
        # the loopback cidr of these tests: every member's address is this machine's
        assert row["address"] is not None and row["address"].startswith("127."), row
        # health ran: a verdict, and a one-line reason for each failed check
        assert isinstance(row["healthy"], bool), row
        assert row["healthy"] is (not row["failed"]), row
        assert all(isinstance(why, str) and why and "\n" not in why for why in row["failed"].values()), row
        # the master answered for the hostfile, the gateway for the upstream
        assert list(row["hostfile"]) in ([], ["master"]) and list(row["upstream"]) in ([], ["gateway"]), row


def test_status_table(synced, salt_run_cli):
    ret = salt_run_cli.run("cluster.status", "table=True")
    assert ret.returncode == 0, ret
    # the table comes with salt-run's txt outputter, whatever --out the CLI
    # was given (salt-factories passes --out=json): it is the text on stdout
    text = ret.stdout
    assert text.strip(), ret
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["HOST", "ROLES", "ADDRESS", "MINION", "HEALTH"]
    hosts = {line.split()[0] for line in lines[1:] if line and not line.startswith(" ")}
    assert set(HOSTS) <= hosts, text
    assert any(line.startswith("hostfile: ") for line in lines), text
    assert any(line.startswith("upstream: ") for line in lines), text
