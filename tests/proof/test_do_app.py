"""The DigitalOcean jobs beyond the database cluster, through pydo against the local HTTPS API of
tests/proof/do_fake.py: the app spec as deployed, a deployment followed to ACTIVE with its logs, a
failing deployment, the rollback (leads only), backups and maintenance window, alert policies,
domains and certificates; 401, 404 and 429 as DO answers them."""
import datetime

import pytest
from django.utils import timezone

from checklist import job_actions
from checklist.actions import Refused
from checklist.models import AuditEvent, Evidence, ItemState
from checks import digitalocean, secret_values
from deploychecks.models import RunbookCheckSettings
from checks.report import CheckInputError
from tests.checklist.factories import complete_phase, gated
from tests.conftest import REPO, assert_secret_absent, ended, wait_for_run

from .conftest import open_through, proof_settings
from .do_fake import APP, CLUSTER, SECRET_VALUE, TOKEN, deployed_spec, policy, stamp

pytestmark = pytest.mark.django_db(transaction=True)


def checked_spec():
    import yaml

    return yaml.safe_load((REPO / "app-spec.yaml").read_text())


def test_the_deployed_spec_is_held_to_app_spec_yaml_without_showing_values(fake_do):
    do = digitalocean.client(TOKEN, fake_do.url)
    fake_do.throttle = 1  # one 429, retried by pydo after Retry-After
    found = digitalocean.app_settings(digitalocean.app(do, APP), checked_spec(),
                                      secret_values.looks_secret)
    assert found["env"]["ok"] and found["size"]["ok"], found
    spec = checked_spec()  # app-level envs and every component's own
    keys = len(spec["envs"]) + sum(len(c.get("envs", [])) for part in ("services", "workers", "jobs")
                                   for c in spec.get(part, []))
    assert keys >= 8
    assert found["env"]["reason"] == f"{keys} env key(s) of app-spec.yaml deployed, 2 typed SECRET"
    assert found["size"]["sizes"]["web"] == "apps-s-1vcpu-1gb"

    spec = deployed_spec()
    envs = {e["key"]: e for e in spec["envs"]}
    envs["SECRET_KEY"].update(type="GENERAL", value="plain-secret-value-123")
    envs["DEBUG"]["value"] = "true"
    spec["envs"] = [e for e in spec["envs"] if e["key"] != "CSRF_TRUSTED_ORIGINS"]
    spec["services"][0]["instance_size_slug"] = "apps-d-1vcpu-2gb"
    fake_do.active()["spec"] = spec
    found = digitalocean.app_settings(digitalocean.app(do, APP), checked_spec(),
                                      secret_values.looks_secret)
    assert not found["env"]["ok"] and found["env"]["problems"] == [
        "CSRF_TRUSTED_ORIGINS is missing", "DEBUG differs from app-spec.yaml",
        "SECRET_KEY is not typed SECRET"]
    assert "plain-secret-value-123" not in repr(found) and SECRET_VALUE not in repr(found)
    assert found["size"]["problems"] == ["web runs on apps-d-1vcpu-2gb, app-spec.yaml says "
                                         "apps-s-1vcpu-1gb"]
    with pytest.raises(CheckInputError, match=r"app nope: not found \(404\)"):
        digitalocean.app(do, "nope")
    with pytest.raises(CheckInputError, match=r"token was refused \(401\)"):
        digitalocean.app(digitalocean.client("dop_v1_wrong", fake_do.url), APP)


def test_a_deployment_is_followed_to_its_end_and_a_failure_named(fake_do):
    do = digitalocean.client(TOKEN, fake_do.url)
    phases = []
    dep = digitalocean.deploy(do, APP)
    ended_dep = digitalocean.follow(do, APP, dep["id"], timeout=30, poll=0, sleep=lambda s: None,
                                    on_phase=lambda phase, _: phases.append(phase))
    assert phases == ["BUILDING", "PENDING_DEPLOY", "DEPLOYING", "ACTIVE"]
    assert digitalocean.judge_deployment(ended_dep, 30)["ok"]
    texts = digitalocean.logs(do, APP, dep["id"])
    assert texts["BUILD"].startswith(f"BUILD log of {dep['id']}") and "DEPLOY" in texts
    archive = [r for r in fake_do.requests if r[1].startswith("/archive/")]
    assert len(archive) == 2 and all(auth is None for _, _, auth in archive)  # no token sent
    fake_do.archive_gone = True
    with pytest.raises(CheckInputError, match=r"cannot fetch the archived log \(HTTP 404\)"):
        digitalocean.logs(do, APP, dep["id"])
    fake_do.archive_gone = False

    fake_do.fail = "pip install exited with 1"
    dep = digitalocean.deploy(do, APP)
    verdict = digitalocean.judge_deployment(digitalocean.follow(
        do, APP, dep["id"], timeout=30, poll=0, sleep=lambda s: None), 30)
    assert not verdict["ok"] and verdict["reason"] == (
        f"deployment {dep['id']} ERROR: web Building service: pip install exited with 1 "
        "(cause: manual)")

    fake_do.fail = None
    clock = iter(range(100))
    dep = digitalocean.deploy(do, APP)
    stuck = digitalocean.follow(do, APP, dep["id"], timeout=1, poll=0, sleep=lambda s: None,
                                clock=lambda: next(clock))
    assert stuck["timed_out"] and "still BUILDING after 1s" in \
        digitalocean.judge_deployment(stuck, 1)["reason"]


def test_upkeep_alerts_and_domains_are_judged(fake_do):
    do = digitalocean.client(TOKEN, fake_do.url)
    now = timezone.now()
    found = digitalocean.upkeep(do, CLUSTER, now)
    assert found["backups"]["ok"] and "daily backups at 03:30 UTC: 3 kept" in \
        found["backups"]["reason"]
    assert found["maintenance"] == {"ok": True, "reason": "maintenance window tuesday 01:00:00 "
                                    "UTC", "window": {"day": "tuesday", "hour": "01:00:00",
                                                      "pending": False}}
    fake_do.backups = [{"created_at": stamp(now - datetime.timedelta(hours=75)),
                        "size_gigabytes": 0.4}]
    fake_do.clusters[CLUSTER]["database"]["maintenance_window"] = None
    found = digitalocean.upkeep(do, CLUSTER, now)
    assert not found["backups"]["ok"] and "75 hours old" in found["backups"]["reason"]
    assert not found["maintenance"]["ok"]

    found = digitalocean.alert_policies(do, CLUSTER)
    assert found["monitoring"]["ok"] and found["memory_disk"]["ok"]
    fake_do.policies[2] = policy("v1/dbaas/alerts/disk_utilization_alerts", email=())
    fake_do.policies[0] = policy("v1/dbaas/alerts/cpu_alerts", entities=("another-cluster",))
    found = digitalocean.alert_policies(do, CLUSTER)
    assert not found["memory_disk"]["ok"] and found["memory_disk"]["reason"] == (
        "memory alert GreaterThan 80 over 5m; the disk alert policy is disabled or notifies "
        "nobody")
    assert "no cpu alert policy for the cluster" in found["monitoring"]["reason"]

    app = digitalocean.app(do, APP)
    found = digitalocean.domains(app, now, 14)
    assert found["domain"] == {"ok": True, "domains": "app.mingus.example",
                               "reason": "app.mingus.example ACTIVE"}
    assert found["certificate"]["ok"] and "valid 80 more days" in found["certificate"]["reason"]
    found = digitalocean.domains(app, now + datetime.timedelta(days=70), 14)
    assert not found["certificate"]["ok"] and "(fewer than 14)" in found["certificate"]["reason"]
    app["domains"][1]["phase"] = "CONFIGURING"
    found = digitalocean.domains(app, now, 14)
    assert not found["domain"]["ok"] and not found["certificate"]["ok"]


def _earned(runbook, text, run):
    return ItemState.objects.get(runbook=runbook, item__text=text).earned_run_id == run.pk


@pytest.mark.worker
def test_the_do_jobs_on_a_worker(runbook, users, do_worker, fake_do):
    RunbookCheckSettings.objects.create(runbook=runbook,
                                        app_spec_path=str(REPO / "app-spec.yaml"))
    ps = proof_settings(runbook, do_api_endpoint=fake_do.url, do_app_id=APP,
                        do_database_id=CLUSTER)
    ps.set_do_token(TOKEN)
    ps.save()
    member, lead = users["member"], users["lead"]

    def run(kind, user=member):
        return wait_for_run(job_actions.start_job(user, runbook, kind), ended)

    done = run("do-app")
    assert done.state == "succeeded", done.error + done.log
    assert _earned(runbook, "Environment variables configured in DO", done)
    assert _earned(runbook, "App instance size selected (Basic/Pro)", done)
    done = run("do-domain")
    assert done.state == "succeeded" and _earned(runbook, "SSL certificates configured", done)

    open_through(runbook, users, 2)  # Deployment opens
    fake_do.fail = "pip install exited with 1"
    done = run("do-deploy")
    assert done.state == "failed" and "ERROR: web Building service: pip install exited with 1" \
        in done.error
    fake_do.fail = None
    done = run("do-deploy")
    assert done.state == "succeeded", done.error + done.log
    assert "phase ACTIVE" in done.log
    for text in ("Digital Ocean App Platform deployment triggered", "Deployment logs monitored"):
        assert _earned(runbook, text, done)
    logs = Evidence.objects.get(run=done, name__startswith="do-deploy-dep-")
    assert len(logs.sha256) == 64 and logs.size > 0

    complete_phase(runbook, gated(runbook)[2], member)  # Post-Deployment opens
    from checklist import actions

    actions.sign_off(lead, runbook, gated(runbook)[2], "ok")
    for kind, texts in (("do-upkeep", ("Automated backup schedule configured",
                                       "Database maintenance tasks scheduled")),
                        ("do-alerts", ("Disk space and memory alerts",))):
        done = run(kind)
        assert done.state == "succeeded", done.error + done.log
        assert all(_earned(runbook, t, done) for t in texts)

    # The rollback changes production: a member is refused (403, audited), a lead runs it.
    denied = AuditEvent.objects.filter(action="denied").count()
    with pytest.raises(Refused) as refused:
        job_actions.start_job(member, runbook, "do-rollback")
    assert refused.value.decision.status == 403
    assert AuditEvent.objects.filter(action="denied").count() == denied + 1
    active = fake_do.active()["id"]
    done = run("do-rollback", lead)
    assert done.state == "succeeded", done.error + done.log
    assert (f"active deployment {active}; rolling back to {fake_do.active()['cloned_from']}"
            in done.log) and fake_do.active()["cloned_from"] == "dep-2-live"
    for text in ("Stop application deployment", "Revert to previous database configuration",
                 "Update application configuration"):
        assert _earned(runbook, text, done)
    assert_secret_absent(TOKEN)
    assert_secret_absent(SECRET_VALUE)
