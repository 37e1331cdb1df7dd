#!/usr/bin/env python3
"""Check an Autobahn|TestSuite report (index.json) for the rfc6455 server or client.

Usage:
    python3 scripts/autobahn_check.py [INDEX_JSON] [--side server|client] [--agent NAME]
                                      [--markdown FILE] [--tester TEXT]

--side server (the default) reads a fuzzingclient report, INDEX_JSON defaulting to
autobahn/reports/servers/index.json; --side client reads a fuzzingserver report, defaulting to
autobahn/reports/clients/index.json. Both have the layout
{agent: {case_id: {"behavior", "behaviorClose", "duration" (ms), "reportfile", ...}}}.
--markdown FILE rewrites that side's part of FILE (between its BEGIN/END markers), keeping the
other side's.

Exit status 0 only if exactly EXPECTED_CASES cases (all 517) are present and every one of them
has behavior and behaviorClose in {OK, INFORMATIONAL}; 1 otherwise; 2 on bad input.
Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys

# Number of cases of autobahntestsuite 25.10.1 when the spec selects cases ["*"]: 1:16 2:11
# 3:7 4:10 5:20 6:145 7:37 9:54 10:1 12:90 13:126 (the suite has no sections 8 and 11; 12 and
# 13 are permessage-deflate). If a wstest upgrade changes the case set, update these numbers
# together.
EXPECTED_PER_SECTION = {1: 16, 2: 11, 3: 7, 4: 10, 5: 20, 6: 145, 7: 37, 8: 0, 9: 54, 10: 1,
                        11: 0, 12: 90, 13: 126}
EXPECTED_CASES = sum(EXPECTED_PER_SECTION.values())
SECTIONS = range(1, 14)

PASSING = ("OK", "INFORMATIONAL")
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
DEFAULT_AGENT = "rfc6455"
SIDES = {
    "server": {"script": "scripts/autobahn.sh", "reports": "servers",
               "title": "The server: `wstest -m fuzzingclient` against `%s`",
               "spec": "autobahn/fuzzingclient.json"},
    "client": {"script": "scripts/autobahn-client.sh", "reports": "clients",
               "title": "The client: `examples/autobahn_client.rs` against "
                        "`wstest -m fuzzingserver`",
               "spec": "autobahn/fuzzingserver.json"},
}


def case_key(case_id):
    """Numeric sort key for ids like '6.4.10'."""
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def section_of(case_id):
    head = case_id.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def classify(behavior, behavior_close):
    """One column per case from its two verdicts, worst first.

    Anything other than the known good/soft verdicts (FAILED, WRONG CODE, UNCLEAN,
    FAILED BY CLIENT, missing, ...) counts as FAILED.
    """
    pair = (behavior, behavior_close)
    known = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED")
    if any(v not in known for v in pair):
        return "FAILED"
    for verdict in ("UNIMPLEMENTED", "NON-STRICT", "INFORMATIONAL"):
        if verdict in pair:
            return verdict
    return "OK"


def wstest_version():
    try:
        out = subprocess.run(["wstest", "--autobahnversion"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [l.strip() for l in out.stdout.splitlines() if l.strip()]
    if out.returncode != 0 or not lines:
        return None
    return ", ".join(lines)


def analyse(cases):
    """Return (rows, bad, in_scope, other_ids, nine_ms)."""
    rows = {s: dict({c: 0 for c in COLUMNS}, cases=0) for s in SECTIONS}
    bad = []
    in_scope = []
    other_ids = []
    nine_ms = 0
    for case_id in sorted(cases, key=case_key):
        result = cases[case_id]
        sec = section_of(case_id)
        if sec not in rows:
            other_ids.append(case_id)
            continue
        in_scope.append(case_id)
        behavior = result.get("behavior")
        behavior_close = result.get("behaviorClose")
        rows[sec]["cases"] += 1
        rows[sec][classify(behavior, behavior_close)] += 1
        if behavior not in PASSING or behavior_close not in PASSING:
            bad.append((case_id, result))
        if sec == 9:
            nine_ms += int(result.get("duration") or 0)
    return rows, bad, in_scope, other_ids, nine_ms


def table_lines(rows, markdown):
    header = ("Section", "Cases", "Expected") + COLUMNS
    body = []
    totals = dict({c: 0 for c in COLUMNS}, cases=0)
    for sec in SECTIONS:
        r = rows[sec]
        if r["cases"] == 0 and EXPECTED_PER_SECTION.get(sec, 0) == 0:
            continue  # the suite has no such section
        body.append((str(sec), str(r["cases"]), str(EXPECTED_PER_SECTION.get(sec, 0)))
                    + tuple(str(r[c]) for c in COLUMNS))
        for k in totals:
            totals[k] += r[k]
    body.append(("Total", str(totals["cases"]), str(EXPECTED_CASES))
                + tuple(str(totals[c]) for c in COLUMNS))
    if markdown:
        out = ["| " + " | ".join(header) + " |",
               "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
        for row in body:
            cells = list(row)
            if cells[0] == "Total":
                cells = ["**%s**" % c for c in cells]
            out.append("| " + " | ".join(cells) + " |")
        return out
    widths = [max(len(header[i]), *(len(r[i]) for r in body)) for i in range(len(header))]
    fmt = "  ".join("%%%ds" % w if i else "%%-%ds" % w for i, w in enumerate(widths))
    out = [fmt % header, fmt % tuple("-" * w for w in widths)]
    out += [fmt % r for r in body]
    return out


def bad_line(case_id, result):
    return "%-8s behavior=%-13s behaviorClose=%-16s remoteCloseCode=%-5s duration=%s ms  %s" % (
        case_id, result.get("behavior"), result.get("behaviorClose"),
        result.get("remoteCloseCode"), result.get("duration"), result.get("reportfile", ""))


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("index", nargs="?", help="path to wstest's index.json")
    ap.add_argument("--side", choices=sorted(SIDES), default="server",
                    help="which role the report tests (default: %(default)s)")
    ap.add_argument("--agent", default=DEFAULT_AGENT,
                    help="agent name in index.json (default: %(default)s)")
    ap.add_argument("--markdown", metavar="FILE", help="also write a markdown summary to FILE")
    ap.add_argument("--command", metavar="TEXT", default="rfc6455 echo",
                    help="the server's command line, for the summary (default: %(default)s)")
    ap.add_argument("--tester", metavar="TEXT",
                    help="the tester's version for the summary (default: ask wstest)")
    args = ap.parse_args(argv)
    if args.index is None:
        args.index = os.path.join(root, "autobahn", "reports", SIDES[args.side]["reports"],
                                  "index.json")

    try:
        with open(args.index, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("autobahn_check: cannot read %s: %s" % (args.index, e), file=sys.stderr)
        return 2
    if not isinstance(index, dict) or args.agent not in index:
        agents = sorted(index) if isinstance(index, dict) else []
        print("autobahn_check: agent %r not in %s (agents present: %s)"
              % (args.agent, args.index, ", ".join(agents) or "none"), file=sys.stderr)
        return 2

    rows, bad, in_scope, other_ids, nine_ms = analyse(index[args.agent])
    count_ok = len(in_scope) == EXPECTED_CASES
    passed = count_ok and not bad

    print("Autobahn|TestSuite results for agent %r (%s)" % (args.agent, args.index))
    print()
    for line in table_lines(rows, markdown=False):
        print(line)
    print()
    print("9.x total duration: %d ms (%.1f s)" % (nine_ms, nine_ms / 1000.0))
    if other_ids:
        print("Ignored %d case(s) outside the known sections (first: %s)."
              % (len(other_ids), other_ids[0]))
    for sec in SECTIONS:
        if rows[sec]["cases"] != EXPECTED_PER_SECTION.get(sec, 0):
            print("warning: section %d has %d case(s), expected %d"
                  % (sec, rows[sec]["cases"], EXPECTED_PER_SECTION.get(sec, 0)))
    print()
    if not count_ok:
        print("FAIL: %d case(s) in the report, expected exactly %d"
              % (len(in_scope), EXPECTED_CASES))
    if bad:
        print("FAIL: %d case(s) not OK/INFORMATIONAL in behavior and behaviorClose:" % len(bad))
        for case_id, result in bad:
            print("  " + bad_line(case_id, result))
    if passed:
        print("PASS: all %d cases are OK or INFORMATIONAL" % EXPECTED_CASES)

    if args.markdown:
        tester = args.tester or wstest_version()
        section = side_markdown(args.side, tester, rows, bad, in_scope, index[args.agent],
                                passed, args.command)
        write_markdown(args.markdown, args.side, section)
        print("wrote %s" % args.markdown)

    return 0 if passed else 1


def side_markdown(side, version, rows, bad, in_scope, cases, passed, command="rfc6455 echo"):
    """One side's part of docs/conformance.md: what the run found, and nothing that changes
    from run to run (no date, commit or durations), so that CI can fail when the committed
    file differs."""
    info = SIDES[side]
    title = info["title"] % command if "%s" in info["title"] else info["title"]
    lines = ["## " + title, ""]
    lines.append("- Tester: %s" % (version or "wstest (version not available)"))
    lines.append("- Spec: `%s`; written by `%s`" % (info["spec"], info["script"]))
    lines.append("- Result: **%s** (%d of %d expected cases, sections 12 and 13 "
                 "(permessage-deflate) included, %d not OK/INFORMATIONAL)"
                 % ("PASS" if passed else "FAIL", len(in_scope), EXPECTED_CASES, len(bad)))
    lines.append("")
    lines += table_lines(rows, markdown=True)
    lines.append("")
    informational = [c for c in in_scope
                     if classify(cases[c].get("behavior"), cases[c].get("behaviorClose"))
                     == "INFORMATIONAL"]
    if informational:
        lines.append("INFORMATIONAL (the suite records what happened, with no verdict): %s."
                     % ", ".join(informational))
        lines.append("")
    if bad:
        lines.append("Cases not OK/INFORMATIONAL:")
        lines.append("")
        lines.append("| Case | behavior | behaviorClose | remoteCloseCode |")
        lines.append("|---|---|---|---:|")
        for case_id, r in bad:
            lines.append("| %s | %s | %s | %s |" % (case_id, r.get("behavior"),
                         r.get("behaviorClose"), r.get("remoteCloseCode")))
        lines.append("")
    return lines


def marker(side, end=False):
    if end:
        return "<!-- END %s -->" % side
    return "<!-- BEGIN %s: written by %s -->" % (side, SIDES[side]["script"])


def write_markdown(path, side, section):
    """Rewrites `side`'s part of the file, keeping the other side's part as it was."""
    parts = {}
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
        for name in SIDES:
            start, end = old.find(marker(name)), old.find(marker(name, end=True))
            if start >= 0 and end > start:
                body = old[start + len(marker(name)):end].strip("\n").split("\n")
                parts[name] = body
    except OSError:
        pass
    parts[side] = section
    lines = ["# Autobahn|TestSuite conformance", ""]
    lines.append("Both roles run Autobahn's 517 cases. Each part below is written by its "
                 "script on every run, from the run's own report; CI runs both and fails if "
                 "this file then differs from the committed one. A case counts in the worst "
                 "column of its two verdicts (behavior and closing behavior); WRONG CODE, "
                 "UNCLEAN and FAILED BY CLIENT count as FAILED.")
    lines.append("")
    for name in ("server", "client"):
        lines.append(marker(name))
        lines += parts.get(name) or ["## " + SIDES[name]["title"].replace("%s", "rfc6455 echo"), "",
                                     "Not run yet: `%s`." % SIDES[name]["script"], ""]
        while lines and lines[-1] == "":
            lines.pop()
        lines.append(marker(name, end=True))
        lines.append("")
    lines.append("## Reproduce")
    lines.append("")
    lines.append("```sh")
    lines.append("scripts/autobahn.sh          # the server; rewrites its part of this file")
    lines.append("scripts/autobahn-client.sh   # the client; rewrites its part of this file")
    lines.append("```")
    lines.append("")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
