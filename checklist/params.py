"""Typed job parameters: what a run may pass, checked before anything is queued.

A job kind declares its parameters (`JobKind.params`, a tuple of `Param`). What a run may pass is
only ever a knob of the run itself (how many samples, iterations, requests): SQL, file paths,
hosts, URLs, the TLS requirement, thresholds and rules come from the settings a lead saved through
an audited action, never from a run (docs/trust-boundary.md has the table).

`validate(user, kind, raw)` is the one check the API, the Run button and `manage.py run_job` all
reach through `job_actions.start_job`: it answers the cleaned parameters and a `rules.Decision`. Unknown,
ill-typed and out-of-bounds parameters are refused with 400, a lead-only parameter passed by
someone who is not a lead with 403; the reason names the parameter but never echoes its value
(a value may be a secret, and the reason lands in a 'denied' audit event).
"""
import math
from dataclasses import dataclass

from . import rules, secrets_at_rest

MEMBER, LEAD = "member", "lead"
TYPES = ("int", "float", "bool", "choice", "str")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # one of TYPES
    help: str = ""
    min: float | None = None  # bounds for int and float, inclusive
    max: float | None = None
    choices: tuple = ()  # for "choice"
    max_length: int = 100  # for "str"
    who: str = MEMBER  # who may set it: MEMBER (anyone who may run the job) or LEAD
    secret: bool = False  # kept encrypted on the run, masked wherever it is shown

    def __post_init__(self):
        if self.type not in TYPES or self.who not in (MEMBER, LEAD):
            raise ValueError(f"parameter {self.name}: bad type {self.type!r} or who {self.who!r}")

    def describe(self):
        """The bounds in words, for refusals and the docs table."""
        if self.type == "choice":
            return "one of " + ", ".join(self.choices)
        if self.type in ("int", "float"):
            return f"a{'n integer' if self.type == 'int' else ' number'} from {self.min:g} to {self.max:g}"
        if self.type == "bool":
            return "true or false"
        return f"text of at most {self.max_length} characters"


class _Bad(Exception):
    pass


def _coerce(param, value):
    """The typed value, or _Bad. Strings are accepted (a form or `--param K=V`), bools are not
    numbers, and a float with a fraction is not an integer."""
    if param.type == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _Bad()
    if param.type in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _Bad()
        try:
            number = float(value) if param.type == "float" or isinstance(value, float) else int(
                str(value).strip())
        except (ValueError, OverflowError):
            raise _Bad() from None
        if not math.isfinite(number):
            raise _Bad()
        if param.type == "int":
            if number != int(number):
                raise _Bad()
            number = int(number)
        if not param.min <= number <= param.max:
            raise _Bad()
        return number
    if not isinstance(value, str) or "\x00" in value:
        raise _Bad()
    if param.type == "choice":
        if value not in param.choices:
            raise _Bad()
        return value
    if len(value) > param.max_length:
        raise _Bad()
    return value


def validate(user, kind, raw):
    """(cleaned parameters, Decision) for `raw` passed to a run of `kind` by `user`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, rules.Decision(False, "'params' must be an object of parameter names to "
                                         "values.", 400)
    declared = {p.name: p for p in kind.params}
    cleaned = {}
    for name in sorted(raw, key=str):
        param = declared.get(name)
        if param is None:
            allowed = ", ".join(declared) if declared else "none"
            return {}, rules.Decision(False, f"Unknown parameter '{str(name)[:60]}' for "
                                             f"{kind.name} (it takes: {allowed}).", 400)
        try:
            cleaned[name] = _coerce(param, raw[name])
        except _Bad:
            return {}, rules.Decision(False, f"Parameter '{name}' of {kind.name} must be "
                                             f"{param.describe()}.", 400)
    for name in cleaned:
        decision = rules.can_set_param(user, declared[name])
        if not decision:
            return {}, decision
    return cleaned, rules.ALLOW


# --- how a run keeps its parameters -------------------------------------------------------------
# The Celery message carries only the run id; the parameters live on the TaskRun row. A secret
# parameter is kept as {"encrypted": <Fernet token>} (the target URL's key) and shown as ***.
ENCRYPTED = "encrypted"


def for_storage(kind, cleaned):
    """`cleaned` as the TaskRun row keeps it: secret parameters encrypted."""
    declared = {p.name: p for p in kind.params}
    return {k: ({ENCRYPTED: secrets_at_rest.encrypt(str(v), secrets_at_rest.TARGET)}
                if declared[k].secret else v)
            for k, v in cleaned.items()}


def from_storage(stored):
    """(parameters, secret values) for the worker, decrypted from the row."""
    params, secrets = {}, []
    for key, value in (stored or {}).items():
        if isinstance(value, dict) and set(value) == {ENCRYPTED}:
            value = secrets_at_rest.decrypt(value[ENCRYPTED], secrets_at_rest.TARGET)
            secrets.append(value)
        params[key] = value
    return params, secrets


def shown(stored):
    """The row's parameters as pages, the API, exports and audit events show them."""
    return {k: ("***" if isinstance(v, dict) and set(v) == {ENCRYPTED} else v)
            for k, v in (stored or {}).items()}
