#!/usr/bin/env python3
"""Writes every alert's `runbook_url` from one pattern, the way the kubernetes-mixin's
`runbookURLPattern` does: RUNBOOK_URL_PATTERN below, `{alert}` standing for the alert's name.

    python3 prometheus/runbook_urls.py           # rewrite the runbook_url lines
    python3 prometheus/runbook_urls.py --check   # exit 1 if one differs (CI: `task lint`)
    python3 prometheus/runbook_urls.py --pattern 'https://git.example.com/shop/stormproof/-/blob/main/docs/runbooks/{alert}.md'

It rewrites the `runbook_url:` lines of prometheus/rules/alerts.yml (under each `- alert:`) and
of prometheus/tests/*.test.yml (under each `alertname:`), and nothing else, so the rule files
stay the commented YAML that Prometheus, promtool and k8s/generate read. Run k8s/generate after
a change. The check also holds the runbooks to the alerts: every alert has
docs/runbooks/<alert>.md and a row in docs/runbooks/README.md, and every runbook an alert.

The default is the runbook's path in this repository: it resolves in every clone and fork, on
whatever host serves it, and no address is made up. To link a host instead, change the pattern
here (one line), run this, then k8s/generate. Standard library only.
"""
import argparse
import json
import pathlib
import re
import sys

RUNBOOK_URL_PATTERN = "docs/runbooks/{alert}.md"

ROOT = pathlib.Path(__file__).resolve().parent.parent
ALERTS = ROOT / "prometheus" / "rules" / "alerts.yml"
TESTS = ROOT / "prometheus" / "tests"
RUNBOOKS = ROOT / "docs" / "runbooks"

ALERT_LINE = re.compile(r"^\s*- alert:\s*(\S+)\s*$")
ALERTNAME_LINE = re.compile(r"^\s*alertname:\s*(\S+)\s*$")
RUNBOOK_LINE = re.compile(r"^(\s*runbook_url:\s*)(.*?)\s*$")


def scalar(url, quoted):
    """The URL as YAML: double-quoted when asked for, or when a plain scalar would not do."""
    plain = re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_./:%?=&#~+-]*", url)
    return json.dumps(url) if quoted or not plain else url


def rewrite(text, name_line, pattern, quoted):
    """`text` with each runbook_url line set for the alert named by the last `name_line`
    (the tests quote every annotation; the rules quote only what needs it)."""
    lines, name = [], None
    for line in text.splitlines(keepends=True):
        named = name_line.match(line)
        if named:
            name = named.group(1)
        found = RUNBOOK_LINE.match(line)
        if found and name:
            url = pattern.format(alert=name)
            end = "\n" if line.endswith("\n") else ""
            line = f"{found.group(1)}{scalar(url, quoted)}{end}"
        lines.append(line)
    return "".join(lines)


def alerts_and_runbook_lines(text):
    """(alert names in order, {alert: number of runbook_url lines under it})."""
    names, counts, name = [], {}, None
    for line in text.splitlines():
        named = ALERT_LINE.match(line)
        if named:
            name = named.group(1)
            if name not in names:
                names.append(name)
            counts.setdefault(name, 0)
        elif RUNBOOK_LINE.match(line) and name:
            counts[name] += 1
    return names, counts


def problems_with_runbooks(text):
    names, counts = alerts_and_runbook_lines(text)
    rules = len(re.findall(r"^\s*- alert:", text, re.M))
    problems = []
    if sum(counts.values()) != rules:
        problems.append(f"{ALERTS.relative_to(ROOT)}: {rules} alert rules, "
                        f"{sum(counts.values())} runbook_url lines: every rule needs one")
    index = (RUNBOOKS / "README.md").read_text()
    for name in names:
        if not (RUNBOOKS / f"{name}.md").is_file():
            problems.append(f"{name}: no runbook docs/runbooks/{name}.md")
        if f"[{name}]({name}.md)" not in index:
            problems.append(f"{name}: no row in docs/runbooks/README.md")
    for path in sorted(RUNBOOKS.glob("*.md")):
        if path.name != "README.md" and path.stem not in names:
            problems.append(f"docs/runbooks/{path.name}: no alert of that name in alerts.yml")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a runbook_url differs from the pattern, or a runbook is missing")
    parser.add_argument("--pattern", default=RUNBOOK_URL_PATTERN,
                        help="the URL of a runbook, {alert} standing for the alert's name "
                             f"(default: {RUNBOOK_URL_PATTERN})")
    args = parser.parse_args()
    if "{alert}" not in args.pattern:
        parser.error("--pattern needs {alert}, where the alert's name goes")

    files = [(ALERTS, ALERT_LINE, False)]
    files += [(path, ALERTNAME_LINE, True) for path in sorted(TESTS.glob("*.yml"))]
    stale = []
    for path, name_line, quoted in files:
        text = path.read_text()
        wanted = rewrite(text, name_line, args.pattern, quoted)
        if wanted != text:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(wanted)
    problems = problems_with_runbooks(ALERTS.read_text())
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check and stale:
        print(f"runbook_url not from {args.pattern!r} in: {', '.join(stale)}; "
              "run `python3 prometheus/runbook_urls.py`, then k8s/generate", file=sys.stderr)
        return 1
    if not args.check and stale:
        print(f"rewrote {', '.join(stale)}; now run k8s/generate")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
