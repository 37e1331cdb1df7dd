#!/usr/bin/env python3
"""Summarize Autobahn|TestSuite runs of the benchmark peers into one JSON file.

Used by bench/autobahn-peers.sh; Python 3 standard library only.

    autobahn_peers.py peer --name NAME --index INDEX_JSON --into LINES_FILE
                           [--seconds N] [--command CMD] [--note TEXT]...
        appends one JSON line (NAME's summary) to LINES_FILE; INDEX_JSON may be missing
        (wstest wrote no report), which gives a record with total 0 and a note. Exit status 3
        when the record has a note (an incomplete or odd run), 0 otherwise.

    autobahn_peers.py write --out FILE --suite SUITE [--date YYYY-MM-DD] LINES_FILE
        writes FILE: {"suite", "date", "cases": "*", "peers": {NAME: summary}}. Peers of an
        existing FILE that this run did not cover are kept when FILE's suite and cases are
        the same as this run's (each peer's record carries its own "date").

    autobahn_peers.py table [FILE]
        prints FILE (default bench/results/autobahn-peers.json) as markdown: sections 1-10
        per peer, then all cases.

A peer's summary: total, by_verdict, by_section ({"1": {...}, ...}), not_ok ({case:
"behavior/behaviorClose"} for the cases counted NON-STRICT, UNIMPLEMENTED or FAILED), and
besides: by_verdict_1_10 (sections 1-10 only, the ones scripts/autobahn_check.py gates our own
server on), date, seconds (wall clock of the wstest run), command, and note when something
was off (a time limit, a crash, fewer cases than expected), and cut_off: the case the peer
was killed in, which is not counted (its verdict would be the kill's, not the peer's).

Classification is scripts/autobahn_check.py's own `classify` (imported from that file, not
copied): a case counts in the worst of its behavior and behaviorClose; anything other than
OK, NON-STRICT, INFORMATIONAL or UNIMPLEMENTED (FAILED, WRONG CODE, UNCLEAN, FAILED BY
CLIENT, missing) counts as FAILED.
"""

import argparse
import ast
import datetime
import importlib.util
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK_PATH = os.path.join(ROOT, "scripts", "autobahn_check.py")
DEFAULT_OUT = os.path.join(ROOT, "bench", "results", "autobahn-peers.json")

# Number of cases that cases ["*"] selects in autobahntestsuite 25.10.1 (sections 1-10: 301,
# as in scripts/autobahn_check.py; 12 and 13, permessage-deflate: 216). A run with fewer gets
# a note. Update together with the suite.
EXPECTED_ALL = 517
NOT_OK = ("NON-STRICT", "UNIMPLEMENTED", "FAILED")


def load_check():
    sys.dont_write_bytecode = True  # no scripts/__pycache__ from this import
    spec = importlib.util.spec_from_file_location("autobahn_check", CHECK_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK = load_check()
COLUMNS = CHECK.COLUMNS  # ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
classify = CHECK.classify
case_key = CHECK.case_key
section_of = CHECK.section_of


def zero():
    return {c: 0 for c in COLUMNS}


def summarize(cases):
    """cases: {case_id: {"behavior", "behaviorClose", ...}} of one agent."""
    by_verdict = zero()
    by_verdict_1_10 = zero()
    by_section = {}
    not_ok = {}
    for case_id in sorted(cases, key=case_key):
        result = cases[case_id] or {}
        behavior = result.get("behavior")
        behavior_close = result.get("behaviorClose")
        verdict = classify(behavior, behavior_close)
        sec = section_of(case_id)
        key = str(sec) if sec is not None else case_id.split(".", 1)[0]
        by_verdict[verdict] += 1
        by_section.setdefault(key, zero())[verdict] += 1
        if sec is not None and 1 <= sec <= 10:
            by_verdict_1_10[verdict] += 1
        if verdict in NOT_OK:
            not_ok[case_id] = "%s/%s" % (behavior, behavior_close)
    by_section = {k: by_section[k] for k in sorted(by_section, key=case_key)}
    return {"total": len(cases), "by_verdict": by_verdict, "by_verdict_1_10": by_verdict_1_10,
            "by_section": by_section, "not_ok": not_ok}


def run_order(log_path):
    """The case ids in the order wstest ran them, from its 'Cases = [...]' line."""
    if not log_path:
        return []
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Cases = ["):
                    return [str(c) for c in ast.literal_eval(line.split("=", 1)[1].strip())]
    except (OSError, ValueError, SyntaxError):
        pass
    return []


def cmd_peer(args):
    notes = list(args.note or [])
    cases = {}
    try:
        with open(args.index, encoding="utf-8") as f:
            index = json.load(f)
        if args.name in index:
            cases = index[args.name]
        elif len(index) == 1:
            cases = next(iter(index.values()))
            notes.append("agent %r not in index.json; used its only agent %r"
                         % (args.name, next(iter(index))))
        else:
            notes.append("agent %r not in index.json (agents: %s)"
                         % (args.name, ", ".join(sorted(index)) or "none"))
    except FileNotFoundError:
        notes.append("wstest wrote no index.json: no results")
    except (OSError, ValueError) as e:
        notes.append("cannot read index.json: %s" % e)
    cut = None
    if args.killed:
        order = run_order(args.log)
        done = [c for c in order if c in cases]
        if done:
            # wstest ends the case whose connection the kill cut, with a verdict of its own:
            # the last case of the run's order that has a result is that one.
            cut = done[-1]
            left = len(order) - order.index(cut) - 1
            notes.append("%s: the peer was killed during case %s, which is not counted; "
                         "the %d case(s) after it did not run" % (args.killed, cut, left))
            cases = {k: v for k, v in cases.items() if k != cut}
        else:
            notes.append("%s: the peer was killed%s" % (
                args.killed, "" if order else " (the order of the run is unknown)"))
    record = summarize(cases)
    if record["total"] and record["total"] != EXPECTED_ALL:
        notes.append("%d of the %d cases of the suite have results" % (record["total"], EXPECTED_ALL))
    elif record["total"]:
        for sec, expected in CHECK.EXPECTED_PER_SECTION.items():
            got = sum(record["by_section"].get(str(sec), zero()).values())
            if got != expected:
                notes.append("section %d: %d cases, expected %d" % (sec, got, expected))
    record["date"] = args.date or datetime.date.today().isoformat()
    if args.seconds is not None:
        record["seconds"] = args.seconds
    if args.command:
        record["command"] = args.command
    if cut:
        record["cut_off"] = cut
    if notes:
        record["note"] = "; ".join(notes)
    with open(args.into, "a", encoding="utf-8") as f:
        f.write(json.dumps({"name": args.name, "record": record}) + "\n")
    v = record["by_verdict"]
    print("%s: %d cases: %s%s" % (args.name, record["total"],
                                  ", ".join("%s %d" % (c, v[c]) for c in COLUMNS),
                                  ("; note: " + record["note"]) if notes else ""))
    return 3 if notes else 0


def dumps(value, indent=0):
    """JSON with two-space indentation, but a dict of at most five scalars on one line
    (the verdict counts), so that the file reads (and diffs) one section per line."""
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, dict) and value and (
            len(value) > 5 or not all(isinstance(v, scalar) for v in value.values())):
        pad = "  " * (indent + 1)
        items = ["%s%s: %s" % (pad, json.dumps(k), dumps(v, indent + 1)) for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    return json.dumps(value, separators=(", ", ": "))


def cmd_write(args):
    date = args.date or datetime.date.today().isoformat()
    peers = {}
    if os.path.exists(args.out):
        try:
            with open(args.out, encoding="utf-8") as f:
                old = json.load(f)
            if old.get("suite") == args.suite and old.get("cases") == "*":
                peers.update(old.get("peers") or {})
            else:
                print("autobahn_peers: %s is from another suite (%r); its peers are dropped"
                      % (args.out, old.get("suite")), file=sys.stderr)
        except (OSError, ValueError) as e:
            print("autobahn_peers: ignoring unreadable %s: %s" % (args.out, e), file=sys.stderr)
    with open(args.lines, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                peers[item["name"]] = item["record"]
    doc = {"suite": args.suite, "date": date, "cases": "*", "peers": peers}
    parent = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(parent, exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(doc) + "\n")
    os.replace(tmp, args.out)
    print("wrote %s (%d peers)" % (args.out, len(peers)))
    return 0


def cmd_table(args):
    with open(args.file, encoding="utf-8") as f:
        doc = json.load(f)
    print("Suite: %s; date: %s" % (doc.get("suite"), doc.get("date")))
    print()
    header = "| peer | " + " | ".join(COLUMNS) + " | NON-STRICT and FAILED cases |"
    for title, key, scope in (("Sections 1-10", "by_verdict_1_10", range(1, 11)),
                              ("All cases", "by_verdict", None)):
        print("%s:" % title)
        print()
        print(header)
        print("|---|" + "---:|" * len(COLUMNS) + "---|")
        for name, r in doc["peers"].items():
            v = r.get(key) or zero()
            # NON-STRICT and FAILED cases by id (UNIMPLEMENTED ones are many: counted only)
            bad = [c for c in sorted(r.get("not_ok", {}), key=case_key)
                   if (scope is None or section_of(c) in scope)
                   and classify(*r["not_ok"][c].split("/", 1)) != "UNIMPLEMENTED"]
            print("| %s | %s | %s |" % (name, " | ".join(str(v[c]) for c in COLUMNS),
                                        ", ".join(bad)))
        print()
    for name, r in doc["peers"].items():
        extra = ["%s s" % r["seconds"]] if "seconds" in r else []
        if r.get("note"):
            extra.append("note: " + r["note"])
        print("- %s: %d cases%s" % (name, r["total"], (", " + "; ".join(extra)) if extra else ""))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("peer", help="summarize one peer's index.json into a lines file")
    p.add_argument("--name", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--into", required=True)
    p.add_argument("--seconds", type=int)
    p.add_argument("--command")
    p.add_argument("--date")
    p.add_argument("--note", action="append")
    p.add_argument("--killed", metavar="REASON",
                   help="the peer was killed mid-run for REASON (a time limit, a hang): the "
                        "case it was killed in is left out of the counts (cut_off)")
    p.add_argument("--log", metavar="WSTEST_LOG",
                   help="wstest's output (its 'Cases = [...]' line gives the order of the run)")
    w = sub.add_parser("write", help="write the JSON file from a lines file")
    w.add_argument("--out", default=DEFAULT_OUT)
    w.add_argument("--suite", required=True)
    w.add_argument("--date")
    w.add_argument("lines")
    t = sub.add_parser("table", help="print the JSON file as markdown tables")
    t.add_argument("file", nargs="?", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    return {"peer": cmd_peer, "write": cmd_write, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
