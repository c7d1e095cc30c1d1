"""Which job could earn an item, guessed from its text: a small rule table a lead accepts or
ignores on the checklist's page (one click binds). Plain Python, no Django.

Each rule is (pattern, kinds): the first kinds are the likelier; "kind/part" names one part of a
kind that judges items one by one (a success criterion, a rollback trigger). Suggestions never bind anything
by themselves; a lead's click goes through actions.bind_item.
"""
import re

RULES = [
    (r"\bback(ed)? ?up\b|\bbackups?\b", ("backup",)),
    (r"\brestor(e|ed|ation)\b", ("restore-test",)),
    (r"\bhealth ?checks?\b", ("check-http",)),
    (r"\b(ssl|tls|https|certificate)\b", ("check-http", "check-connectivity")),
    (r"\bsecurity headers?\b|\bresponse times?\b|\bload test", ("check-http",)),
    (r"\bmigrations? (executed|run|ran|applied|complete)|\b(run|execute) the migration|\bmigrate\b",
     ("migrate",)),
    (r"\bdry[- ]?run\b", ("dry-run",)),
    (r"\bvalidat(e|ed|ion)\b|\brow counts?\b|\bdata (integrity|loss)\b", ("validate",)),
    (r"\bassess(ment|ed)?\b", ("assess",)),
    (r"\bschema\b", ("schema",)),
    (r"\brollback\b|\broll back\b", ("rollback-rehearsal",)),
    (r"\benvironment variables?\b|\benv vars?\b|\bsecrets? configured\b", ("check-env",)),
    (r"\bapp[- ]?spec\b", ("check-app-spec",)),
    (r"\bconnect(ion|ivity|s)?\b|\bconnection pool", ("check-connectivity",)),
    (r"\b(query|queries|performance|latency|baseline)\b", ("check-performance",)),
    # Success criteria and rollback triggers are parts of one job each ("kind/part").
    (r"\bpage loads?\b", ("success-criteria/page_load",)),
    (r"\bapi response", ("success-criteria/api_response",)),
    (r"\bquery (times?|latency)\b", ("success-criteria/db_query",)),
    (r"\bpool utili[sz]ation\b", ("success-criteria/pool_utilization",)),
    (r"\b(database|db) uptime\b", ("success-criteria/db_uptime",)),
    (r"(?<!database )(?<!db )\buptime\b", ("success-criteria/app_uptime",)),
    (r"\b(zero|no) data loss\b", ("success-criteria/zero_data_loss",)),
    (r"\bdata corruption\b", ("rollback-triggers/data-corruption",)),
    (r"\bperformance degrad", ("rollback-triggers/performance-degradation",)),
    (r"\bsecurity (vulnerabilit|breach|incident)", ("rollback-triggers/security",)),
    (r"\berror rate\b|\bseverely impacted\b", ("rollback-triggers/error-rate",)),
    (r"\bclean ?up\b|\barchiv(e|ed)\b", ("cleanup",)),
]
_COMPILED = [(re.compile(pattern, re.I), kinds) for pattern, kinds in RULES]


def suggest(text, known=None, exclude=()):
    """Bindings that might earn an item reading `text`, likeliest first: a job kind, or
    "kind/part" for one success criterion or rollback trigger. Only `known` kinds (all when
    None), never a kind in `exclude` (already bound)."""
    found = []
    for pattern, kinds in _COMPILED:
        if pattern.search(text or ""):
            found += [k for k in kinds if k not in found]
    return [k for k in found
            if (known is None or k.partition("/")[0] in known) and k.partition("/")[0] not in exclude]
