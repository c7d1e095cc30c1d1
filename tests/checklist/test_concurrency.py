"""Two people acting on the same item at the same moment, on real PostgreSQL connections."""
import threading

import pytest
from django.db import connection, connections

from checklist import actions
from checklist.models import AuditEvent, ItemNote, ItemState

from .factories import gated, hand_states, states_of

pytestmark = pytest.mark.django_db(transaction=True)


def _race(calls):
    """Run each call in its own thread (own database connection), released together."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, fn):
        try:
            barrier.wait()
            results[i] = ("ok", fn())
        except actions.Refused as refused:
            results[i] = ("refused", refused)
        except Exception as exc:  # surfaced by the assertions below
            results[i] = ("error", exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.fail("concurrency tests need PostgreSQL: set DATABASE_URL=postgres://...")


def test_two_ticks_at_once_give_one_tick_and_one_clear_refusal(runbook, users):
    st = hand_states(runbook, gated(runbook)[0])[0]
    results = _race([
        lambda: actions.tick(users["member"], st, "from member"),
        lambda: actions.tick(users["lead"], st, "from lead"),
    ])
    kinds = sorted(r[0] for r in results)
    assert kinds == ["ok", "refused"], results
    refused = next(r[1] for r in results if r[0] == "refused")
    assert "Already ticked by" in str(refused)
    st.refresh_from_db()
    assert st.checked and st.version == 1
    assert AuditEvent.objects.filter(action="tick", item=st.item).count() == 1


def test_many_notes_at_once_are_all_kept(runbook, users):
    st = hand_states(runbook, gated(runbook)[0])[0]
    results = _race([
        (lambda n=n: actions.add_note(users["member" if n % 2 else "lead"], st, f"note {n}"))
        for n in range(8)
    ])
    assert all(r[0] == "ok" for r in results), results
    assert sorted(ItemNote.objects.filter(state=st).values_list("text", flat=True)) == [
        f"note {n}" for n in range(8)
    ]


def test_ticks_on_different_items_at_once_are_all_applied_and_chained(runbook, users):
    states = hand_states(runbook, gated(runbook)[0])[:6]  # three in the seed's first phase
    assert len(states) >= 3
    results = _race([(lambda s=s: actions.tick(users["member"], s)) for s in states])
    assert all(r[0] == "ok" for r in results), results
    assert ItemState.objects.filter(pk__in=[s.pk for s in states],
                                    checked=True).count() == len(states)
    from checklist.audit import verify_chain

    ok, checked, broken, reason = verify_chain()
    assert ok, (broken, reason)


def test_stale_version_is_refused_not_overwritten(runbook, users):
    st = hand_states(runbook, gated(runbook)[0])[0]
    seen_version = st.version
    actions.tick(users["member"], st)
    actions.untick(users["lead"], st, "not yet")
    with pytest.raises(actions.Refused) as exc:
        actions.tick(users["member"], st, expected_version=seen_version)
    assert exc.value.status == 409 and "since you loaded it" in str(exc.value)
