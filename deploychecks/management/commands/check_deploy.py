"""check_deploy: run one deployment check from a shell.

    python manage.py check_deploy --list [--json]
    python manage.py check_deploy CHECK [options] [--json]

Exit codes: 0 every criterion passed, 1 the check found problems, 2 unusable input.
The options of each check come from checks.registry; `check_deploy CHECK --help` lists them.
"""
import argparse
import json

from django.core.management.base import BaseCommand, CommandError

from checks import registry
from checks.report import CheckInputError


class Command(BaseCommand):
    help = "Run a deployment check (env, app-spec, connectivity, performance, http)."
    requires_system_checks = []  # a check must run even where the app's own config is unfinished
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--list", action="store_true", help="list the checks and options")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        subparsers = parser.add_subparsers(dest="check", metavar="CHECK")
        for check in registry.CHECKS.values():
            sub = subparsers.add_parser(check.name, help=check.description,
                                        description=check.description)
            # SUPPRESS keeps the sub-parser from resetting a --json given before CHECK.
            sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                             help="print the report as JSON")
            for option in check.options:
                flag = "--" + option.name.replace("_", "-")
                kwargs = {"dest": f"opt_{option.name}", "help": option.help,
                          "default": None, "required": option.required}
                if option.kind == "bool":
                    kwargs["action"] = argparse.BooleanOptionalAction
                elif option.kind == "list":
                    kwargs["action"] = "append"
                    kwargs["metavar"] = option.name.upper()
                else:
                    kwargs["metavar"] = option.kind.upper()
                if option.default is not None and option.kind != "bool":
                    kwargs["help"] += f" (default: {option.default})"
                sub.add_argument(flag, **kwargs)

    def handle(self, *args, **opts):
        if opts["list"]:
            self._list(opts["json"])
            return
        name = opts.get("check")
        if not name:
            raise CommandError("name a check, or use --list", returncode=2)
        raw = {key[4:]: value for key, value in opts.items()
               if key.startswith("opt_") and value is not None}
        try:
            report = registry.run_check(name, **raw)
        except CheckInputError as exc:
            raise CommandError(f"{name}: {exc}", returncode=2) from None
        if opts["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            self._summary(report)
        if not report.ok:
            failed = sum(1 for c in report.criteria if not c.ok)
            raise CommandError(f"{name}: {failed} of {len(report.criteria)} criteria failed",
                               returncode=1)

    def _list(self, as_json):
        if as_json:
            self.stdout.write(json.dumps(registry.checks_as_data(), indent=2, default=str))
            return
        for check in registry.CHECKS.values():
            self.stdout.write(f"{check.name:<13} {check.description}")
            for option in check.options:
                flag = "--" + option.name.replace("_", "-")
                note = " (required)" if option.required else (
                    f" (default: {option.default})" if option.default is not None else "")
                self.stdout.write(f"    {flag:<28} {option.kind:<6} {option.help}{note}")

    def _summary(self, report):
        verdict = self.style.SUCCESS("PASS") if report.ok else self.style.ERROR("FAIL")
        self.stdout.write(f"{report.name}: {verdict}  {report.target}  ({report.duration_ms} ms)")
        width = max((len(c.name) for c in report.criteria), default=10)
        for c in report.criteria:
            mark = "ok  " if c.ok else self.style.ERROR("FAIL")
            line = f"  {c.name:<{width}}  {mark}  {_short(c.measured)}  (expected {_short(c.expected)})"
            self.stdout.write(line)
            if c.detail and not c.ok:
                self.stdout.write(f"  {'':<{width}}        {_short(c.detail, 160)}")
        if report.problems:
            self.stdout.write("problems:")
            for p in report.problems:
                where = f"{p.path} " if p.path else ""
                where += f"(line {p.line}) " if p.line else ""
                self.stdout.write(f"  - {where}{p.message}")


def _short(value, limit=80) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
