"""Reach: the site checks stay on the deployed app a lead configured (pages and health are paths
on it, the http:// URL names its host), refused on save and again before a check runs; the
database checks use only the runbook's own target (a run cannot pass another)."""
import pytest

from checks import reach
from deploychecks.models import RunbookCheckSettings
from checklist.models import TaskRun

from .test_check_settings_views import post_settings

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("field,value,words", [
    ("http_paths", '["/", "https://evil.example.net/x"]', "must be a path on the deployed site"),
    ("http_paths", '["//evil.example.net/x"]', "must be a path on the deployed site"),
    ("health_path", "https://evil.example.net/healthz", "health path must be a path"),
    ("http_url", "http://evil.example.net/", "must name the deployed site's host"),
    ("deployed_url", "http://app.example.com", "must be an https:// URL"),
])
def test_settings_that_reach_beyond_the_app_are_refused(client, runbook, users, field, value,
                                                        words):
    client.force_login(users["lead"])
    response = post_settings(client, runbook, **{field: value})
    assert response.status_code == 400
    assert words in response.content.decode().replace("&#x27;", "'")
    assert not RunbookCheckSettings.objects.exists()


def test_paths_on_the_site_are_fine(client, runbook, users):
    client.force_login(users["lead"])
    response = post_settings(client, runbook, http_paths='["/", "/api/items?x=1"]',
                             http_url="http://app.example.com/")
    assert response.status_code == 200
    assert RunbookCheckSettings.objects.get().http_url == "http://app.example.com/"


def test_reach_problems_lists_each_escape():
    found = reach.problems("https://app.example.com/", "/healthz",
                           ["/ok", "http://x/", "//y"], "http://other.example.com/")
    assert len(found) == 3


@pytest.mark.django_db(transaction=True)
def test_a_check_refuses_old_settings_that_reach_elsewhere(runbook, users):
    from .test_deploy_jobs import open_deployment, run_here

    open_deployment(runbook, users)
    RunbookCheckSettings.objects.create(runbook=runbook, deployed_url="https://app.example.com/",
                                        http_paths=["https://evil.example.net/steal"])
    run = run_here(users["member"], runbook, "check-http")
    assert run.state == TaskRun.FAILED
    assert "reach beyond the deployed app" in run.error
    assert "check http:" not in run.log  # refused before the check ran (it logs its options)
