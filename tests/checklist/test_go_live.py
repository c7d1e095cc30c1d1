import pytest
from django.test import override_settings

from checklist import actions, rules
from checklist.models import AuditEvent

from .factories import gated, sign_off_through, hand_states, states_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed(runbook, users):
    sign_off_through(runbook, 4, users["member"], users["lead"])
    return runbook


def block(runbook):
    return rules.status_block(rules.RunbookFacts.load(runbook))


def test_go_live_needs_two_different_leads_besides_the_requester(signed, users, django_user_model):
    from tests.conftest import make_user

    lead3 = make_user("lead3", "lead")
    actions.request_go_live(users["lead"], signed, "window tonight")
    assert block(signed).go_live_state == "awaiting approval"
    actions.approve_go_live(users["lead2"], signed)
    assert not block(signed).go_live_authorized
    assert block(signed).missing == ["Go-live needs 1 more lead approval(s)."]
    actions.approve_go_live(lead3, signed)
    b = block(signed)
    assert b.go_live_authorized and b.go_live_state == "authorized" and b.missing == []
    assert AuditEvent.objects.filter(action="go-live-authorized").count() == 1


def test_requester_cannot_approve_their_own_go_live(signed, users):
    actions.request_go_live(users["lead"], signed)
    with pytest.raises(actions.Refused) as exc:
        actions.approve_go_live(users["lead"], signed)
    assert exc.value.status == 403
    assert "different lead" in str(exc.value)
    assert AuditEvent.objects.filter(action="denied").last().after["attempted"] == "go-live-approve"


def test_a_lead_cannot_approve_twice(signed, users):
    actions.request_go_live(users["lead"], signed)
    actions.approve_go_live(users["lead2"], signed)
    with pytest.raises(actions.Refused):
        actions.approve_go_live(users["lead2"], signed)
    assert block(signed).approvals == 1


@override_settings(GO_LIVE_APPROVALS_REQUIRED=1)
def test_the_number_of_approvals_is_a_setting(signed, users):
    actions.request_go_live(users["lead"], signed)
    actions.approve_go_live(users["lead2"], signed)
    assert block(signed).go_live_authorized


def test_go_live_cannot_be_requested_before_all_phases_are_signed_off(runbook, users):
    sign_off_through(runbook, 3, users["member"], users["lead"])
    with pytest.raises(actions.Refused) as exc:
        actions.request_go_live(users["lead"], runbook)
    assert "every gated phase" in str(exc.value)


@override_settings(GO_LIVE_APPROVALS_REQUIRED=1)
def test_withdrawing_a_sign_off_voids_the_go_live_authorization(signed, users):
    actions.request_go_live(users["lead"], signed)
    actions.approve_go_live(users["lead2"], signed)
    assert block(signed).go_live_authorized
    with pytest.raises(actions.Refused) as refused:
        actions.untick(users["member"], hand_states(signed, gated(signed)[3])[0])
    assert refused.value.decision.withdraws[-1].startswith("the authorized go-live request by lead")
    actions.untick(users["member"], hand_states(signed, gated(signed)[3])[0], confirm=True,
                   reason="smoke test failed")
    b = block(signed)
    assert not b.go_live_authorized and b.go_live_state == "not requested"


def test_an_admin_who_is_not_a_lead_cannot_be_the_second_approver(signed, users):
    actions.request_go_live(users["lead"], signed)
    actions.approve_go_live(users["lead2"], signed)
    with pytest.raises(actions.Refused) as exc:
        actions.approve_go_live(users["admin"], signed)
    assert exc.value.status == 403 and "lead group" in str(exc.value)
    assert not block(signed).go_live_authorized
    assert AuditEvent.objects.filter(action="denied", actor=users["admin"],
                                     after__attempted="go-live-approve").exists()


def test_an_approval_counts_only_while_its_approver_is_a_lead(signed, users):
    from tests.conftest import make_user

    lead3 = make_user("lead3", "lead")
    actions.request_go_live(users["lead"], signed)
    actions.approve_go_live(users["lead2"], signed)
    actions.approve_go_live(lead3, signed)
    assert block(signed).go_live_authorized
    lead3.groups.clear()  # left the lead group: the approval no longer counts
    b = block(signed)
    assert not b.go_live_authorized and b.approvals == 1
