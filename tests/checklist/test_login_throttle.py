"""Login throttling an attacker cannot turn against the team: failures lock the (username,
address) pair only; unknown usernames never lock a real one; the address comes from the
trusted proxy's X-Forwarded-For entry (TRUSTED_PROXY_COUNT), never from what the client wrote."""
import pytest
from django.test import override_settings
from django.urls import reverse

from checklist.middleware import client_address

pytestmark = pytest.mark.django_db

LIMIT = override_settings(AXES_FAILURE_LIMIT=5, AXES_LOCKOUT_CALLABLE="checklist.views.lockout")


def attempt(client, username, password, **meta):
    client.logout()
    return client.post(reverse("login"), {"username": username, "password": password}, **meta)


def fail(client, username, times=5, **meta):
    for _ in range(times):
        assert attempt(client, username, "wrong", **meta).status_code in (200, 429)


@LIMIT
def test_failures_lock_only_that_username_from_that_address(client, users):
    fail(client, "member", REMOTE_ADDR="10.0.0.1")
    locked = attempt(client, "member", "pw-member", REMOTE_ADDR="10.0.0.1")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "this account from this address is blocked" in text
    assert "other accounts, and this account from other addresses, are not affected" in text
    # The same account from elsewhere, and another account from the same address, log in.
    assert attempt(client, "member", "pw-member", REMOTE_ADDR="10.0.0.2").status_code == 302
    assert attempt(client, "lead", "pw-lead", REMOTE_ADDR="10.0.0.1").status_code == 302


@LIMIT
def test_unknown_usernames_never_lock_a_real_one(client, users):
    for name in ("ghost", "ghost2", "root", "admin1", "x"):
        fail(client, name, REMOTE_ADDR="10.0.0.3")
    assert attempt(client, "member", "pw-member", REMOTE_ADDR="10.0.0.3").status_code == 302


@LIMIT
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_address_is_the_proxys_entry_not_the_clients(client, users):
    proxy = {"REMOTE_ADDR": "10.0.0.254"}
    fail(client, "member", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.9", **proxy)
    # A forged leftmost entry does not get the attacker a fresh address...
    assert attempt(client, "member", "pw-member", HTTP_X_FORWARDED_FOR="5.5.5.5, 203.0.113.9",
                   **proxy).status_code == 429
    # ... and another client behind the same proxy is not locked out.
    assert attempt(client, "member", "pw-member", HTTP_X_FORWARDED_FOR="198.51.100.7",
                   **proxy).status_code == 302


@override_settings(TRUSTED_PROXY_COUNT=0, CLIENT_ADDR_HEADER="")
def test_without_a_trusted_proxy_the_forwarded_header_is_ignored(rf):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4", REMOTE_ADDR="10.0.0.5")
    assert client_address(request) == "10.0.0.5"


@override_settings(TRUSTED_PROXY_COUNT=2, CLIENT_ADDR_HEADER="")
def test_two_proxies_take_the_second_entry_from_the_right(rf):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.1, 10.1.1.1",
                     REMOTE_ADDR="10.0.0.9")
    assert client_address(request) == "192.0.2.1"
    garbage = rf.get("/", HTTP_X_FORWARDED_FOR="not-an-ip, x", REMOTE_ADDR="10.0.0.9")
    assert client_address(garbage) == ""
