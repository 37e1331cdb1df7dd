#!/usr/bin/env python3
"""Turns bench/run.sh results (JSON lines) into docs/benchmarks.md, docs/benchmarks.svg and the
comparison table in README.md.

    python3 bench/report.py [RESULTS.jsonl...]   # default: every bench/results/*.jsonl
    python3 bench/report.py --check              # fails if the committed files differ

Figures are medians over the rounds; each server's figure is compared with the best peer (the
best server that is neither rfc6455 nor the raw TCP echo) and with raw TCP. Scenarios 8-10
(permessage-deflate) have their own tables and bars, compared with the best of the peers
configured for compression (uws-shared, uws-dedicated, ws-deflate); they appear only when the
results have them. The Autobahn row
of the README comes from bench/results/autobahn-peers.json (bench/autobahn-peers.sh). The
output depends only on those files, so it can be regenerated and checked. Standard library
only.
"""

import argparse
import glob
import html
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = "rfc6455"
RAW = "raw"
BASELINE = "rfc6455-baseline"
TWO_LOOPS = "rfc6455-2loops"
TWO_LOOPS_REUSEPORT = "rfc6455-2loops-reuseport"
NOT_PEERS = {OURS, RAW, BASELINE, TWO_LOOPS, TWO_LOOPS_REUSEPORT, "rfc6455-tls"}
SERVER_NAMES = {
    "rfc6455": "rfc6455",
    "rfc6455-baseline": "rfc6455, baseline build (RFC_BASELINE)",
    "rfc6455-2loops": "rfc6455 --threads 2 (two event loops, one acceptor)",
    "rfc6455-2loops-reuseport": "rfc6455 --threads 2 --balance reuseport",
    "tungstenite": "tungstenite (thread per connection)",
    "tokio-tungstenite": "tokio-tungstenite",
    "fastwebsockets": "fastwebsockets",
    "tokio-websockets": "tokio-websockets",
    "uws": "uWebSockets.js (node)",
    "ws": "ws (node)",
    "raw": "raw TCP echo (ceiling)",
    "uws-shared": "uWebSockets.js, SHARED_COMPRESSOR (node)",
    "uws-dedicated": "uWebSockets.js, DEDICATED_COMPRESSOR (node)",
    "ws-deflate": "ws, perMessageDeflate (node)",
    "rfc6455-tls": "rfc6455 over TLS (--tls-cert, cargo feature tls)",
    "uws-tls": "uWebSockets.js SSLApp (node), over TLS",
}
# The peers of the permessage-deflate scenarios.
DEFLATE_PEERS = {"uws-shared", "uws-dedicated", "ws-deflate"}

# id, title, metric, unit, higher is better, short name for the chart
SCENARIOS = [
    ("1", "echo, 100 connections × 20 B, 1 in flight", "msgs_per_s", "round trips/s", True, "echo 20 B"),
    ("2", "echo, 100 connections × 64 B, 32 in flight (pipelined)", "msgs_per_s", "round trips/s", True, "echo 64 B ×32"),
    ("3a", "echo, 200 connections × 16 KiB, 1 in flight", "mb_per_s", "MB/s", True, "echo 16 KiB"),
    ("3b", "echo, 10 connections × 1 MiB, 1 in flight", "mb_per_s", "MB/s", True, "echo 1 MiB"),
    ("4", "broadcast to 1,000 receivers × 64 B: highest publish rate with p99 ≤ 50 ms and nothing lost",
     "max_rate", "msgs/s", True, "broadcast"),
    ("5", "10,000 idle connections: server memory per connection", "bytes_per_conn", "bytes/conn", False, "idle memory"),
    ("6", "connect + upgrade + close", "handshakes_per_s", "handshakes/s", True, "connect"),
    ("7", "Autobahn 9.x (performance cases), total duration", "duration_ms", "ms", False, "Autobahn 9.x"),
    ("8", "permessage-deflate: echo, 100 connections × 1 KiB text, 32 in flight", "msgs_per_s", "round trips/s",
     True, "deflate echo 1 KiB"),
    ("9", "permessage-deflate: broadcast to 1,000 receivers × 1 KiB text: highest publish rate with p99 ≤ 50 ms "
     "and nothing lost", "max_rate", "msgs/s", True, "deflate broadcast"),
    ("10", "permessage-deflate: 10,000 idle connections, server memory per connection", "bytes_per_conn",
     "bytes/conn", False, "deflate idle"),
]
SC = {s[0]: s for s in SCENARIOS}
ECHO = {"1", "2", "3a", "3b"}
DEFLATE = {"8", "9", "10"}


def shown(path):
    """A results path as written in the report: relative to the repository when inside it."""
    full = os.path.abspath(path)
    return os.path.relpath(full, ROOT) if full.startswith(ROOT + os.sep) else full


def load(paths):
    metas, results, steps = [], [], []
    SCALEOUT.clear()
    STORM.clear()
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    print("%s:%d: not JSON, skipped" % (path, n), file=sys.stderr)
                    continue
                kind = obj.get("kind")
                if kind == "meta":
                    metas.append(obj)
                elif kind == "result":
                    results.append(obj)
                elif kind == "step":
                    steps.append(obj)
                elif kind == "scaleout":
                    SCALEOUT.append(obj)
                elif kind == "storm":
                    STORM.append(obj)
    return metas, results, steps


# bench/scaleout.sh's records (kind "scaleout"), gathered by load().
SCALEOUT = []


def scaleout_section():
    """The chat's scale-out costs: the same broadcast load against each setup, medians."""
    if not SCALEOUT:
        return []
    setups = []
    for rec in SCALEOUT:
        if rec["setup"] not in setups:
            setups.append(rec["setup"])
    first = SCALEOUT[0]
    md = ["## Scale-out: event loops, processes, Redis (unpinned)", ""]
    md.append("`bench/scaleout.sh`: %d members, one sender publishing %s messages/s of the chat's own "
              "JSON (chat text, compressible), every delivery timed; medians over the rounds. "
              "*Through Redis* goes from the sender's process to the stream and back to the "
              "receivers' process. See [scaling.md](scaling.md)."
              % (first.get("receivers", 0), fmt(first.get("rate", 0))))
    md.append("")
    md.append("| setup | deliveries/s | p50 ms | p99 ms | deliveries lost | runs |")
    md.append("|---|---|---|---|---|---|")
    for setup in setups:
        runs = [r["result"] for r in SCALEOUT if r["setup"] == setup and isinstance(r.get("result"), dict)]
        if not runs:
            continue
        med = lambda key: statistics.median([r.get(key, 0) or 0 for r in runs])
        lost = sum(r.get("lost", 0) or 0 for r in runs)
        md.append("| %s | %s | %s | %s | %s | %d |" % (setup, fmt(med("deliveries_per_s")),
                  fmt(med("p50_us") / 1000), fmt(med("p99_us") / 1000), fmt(lost), len(runs)))
    md.append("")
    return md


# bench/storm.sh's records (kind "storm"), gathered by load().
STORM = []


def storm_section():
    """Join and reconnect storms: the chat against the echo server, medians over the rounds."""
    if not STORM:
        return []
    def runs(setup):
        return [r for r in STORM if r["setup"] == setup and isinstance(r.get("result"), dict)
                and r["result"].get("joined") == r.get("members")]
    def med(rows, f):
        vals = [f(r) for r in rows]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None
    members = STORM[0].get("members", 0)
    md = ["## A chat of %s: join and reconnect storms (unpinned)" % fmt(members), ""]
    md.append("`bench/storm.sh`: %s clients join a fresh server at once (200 handshakes in flight), "
              "stay 2 s and leave at once (a Close each); the load generator reads the server's CPU "
              "time and VmRSS from /proc through each phase. *Restarted*: once all are in, the chat "
              "is restarted (SIGTERM: every member gets 1001) and every member reconnects as the "
              "chat page does (a first retry at a random moment within 3 s, a doubling window after "
              "a failure, a 503's Retry-After honoured) to the new process on the same port. "
              "Medians over the rounds; *messages per member* is the most any member received while "
              "everyone joined (presence notices: one per interval, not one per join)."
              % fmt(members))
    md.append("")
    md.append("| setup | all in after s | server CPU s | bytes per member, settled (at the peak) "
              "| most messages per member | everyone left after s "
              "| VmRSS fresh → full → after all left, MB | runs |")
    md.append("|---|---|---|---|---|---|---|---|")
    setups = []
    for rec in STORM:
        if rec["setup"] not in setups:
            setups.append(rec["setup"])
    mb = lambda v: "–" if v is None else "%.1f" % (v / 1e6)
    for setup in setups:
        rows = runs(setup)
        if not rows:
            continue
        g = lambda key: med(rows, lambda r: r["result"].get(key))
        peak = med(rows, lambda r: (r["result"]["join_peak_rss"] - r["result"]["rss_before"])
                   / max(1, r["result"]["joined"]))
        md.append("| %s | %s | %s | %s (%s) | %s | %s | %s → %s → %s | %d |" % (
            setup, fmt(g("join_s")), fmt(g("join_server_cpu_s")), fmt(g("bytes_per_member")),
            fmt(peak),
            fmt(g("received_max")), fmt(g("leave_s")), mb(med(rows, lambda r: r.get("rss_fresh"))),
            mb(g("rss_full")), mb(g("rss_left")), len(rows)))
    echo, chat = runs("echo"), runs("chat")
    if echo and chat:
        e = lambda key: med(echo, lambda r: r["result"].get(key))
        c = lambda key: med(chat, lambda r: r["result"].get(key))
        ratio = lambda a, b: "–" if not a or not b else "%.2f×" % (a / b)
        fresh = med(chat, lambda r: r.get("rss_fresh"))
        md.append("")
        md.append("Against the goals: joining %s chat members took %s the time and %s the server CPU "
                  "of %s echo connections (goal: at most 2×); after everyone left, the chat's VmRSS "
                  "was %s its fresh size (goal: at most 2×); a member cost %s bytes against an echo "
                  "connection's %s, the difference being the member's chat state (its name, shared "
                  "with the chat's list of names, and its rate limit)." % (
                      fmt(members), ratio(c("join_s"), e("join_s")),
                      ratio(c("join_server_cpu_s"), e("join_server_cpu_s")), fmt(members),
                      ratio(c("rss_left"), fresh), fmt(c("bytes_per_member")),
                      fmt(e("bytes_per_member"))))
    restarted = [r for r in STORM if "reconnect_s" in r.get("result", {})]
    if restarted:
        g = lambda key: med(restarted, lambda r: r["result"].get(key))
        md.append("")
        md.append("After the restart, every member was back %s s after the first was dropped (median of "
                  "%d); the new process spent %s s of CPU and peaked at %s MB, and refused %s handshakes "
                  "with 503 (median)." % (fmt(g("reconnect_s")), len(restarted),
                                          fmt(g("reconnect_server_cpu_s")), mb(g("reconnect_peak_rss")),
                                          fmt(g("refused_reconnect"))))
    md.append("")
    return md


def tls_summary(sec):
    """rfc6455 over TLS against uWebSockets.js's SSLApp, scenario by scenario."""
    md = ["`bench/run.sh` with `SERVERS=rfc6455-tls,uws-tls`: both with the test certificate of "
          "`tests/data/tls` (ECDSA P-256), the load generator speaking TLS with rustls; the "
          "same scenarios as above. Goal: rfc6455 ahead of uWebSockets.js's `SSLApp`.", ""]
    md.append("| scenario | rfc6455 over TLS | uWebSockets.js SSLApp | rfc6455 / uWS | |")
    md.append("|---|---|---|---|---|")
    for sc in SC:
        ours, theirs = sec.value(sc, "rfc6455-tls"), sec.value(sc, "uws-tls")
        if ours is None and theirs is None:
            continue
        adv = sec.advantage(sc)
        verdict = "–" if adv is None else ("ahead" if adv >= 1.0 else "behind")
        md.append("| %s | %s | %s | %s | %s |" % (SC[sc][1], fmt(ours), fmt(theirs), fratio(adv), verdict))
    md.append("")
    return md


def valid(line):
    """The figure of one result line, or None when the run failed or was skipped."""
    r = line.get("result")
    if not r or line.get("error") or line.get("skipped") or r.get("skipped"):
        return None
    metric = SC[line["scenario"]][2]
    v = r.get(metric)
    if not isinstance(v, (int, float)):
        return None
    sc = line["scenario"]
    if sc in ECHO and (r.get("errors", 0) > 0 or r.get("open") != r.get("conns")):
        return None
    if sc == "5" and (r.get("errors", 0) > 0 or r.get("open") != r.get("conns")):
        return None
    if sc in ("8", "10") and (r.get("errors", 0) > 0 or r.get("open") != r.get("conns")
                              or r.get("deflate") is not True):
        return None
    if sc == "7" and r.get("cases", 0) == 0:
        return None
    return v


def median(values):
    return statistics.median(values) if values else None


def fmt(v, unit=""):
    if v is None:
        return "–"
    if unit == "MB/s":
        return "{:,.0f}".format(v) if v >= 100 else "{:,.1f}".format(v)
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    return "{:,.2f}".format(v).rstrip("0").rstrip(".")


def fcpu(v):
    return "–" if v is None else "{:.2f}".format(v)


def fwire(v):
    return "–" if v is None else ("{:.3f}".format(v) + (" (not compressed)" if v >= 0.95 else ""))


def fratio(v):
    return "–" if v is None else "{:.2f}×".format(v)


def is_tls(server):
    """The servers over TLS (bench/run.sh's rfc6455-tls and uws-tls): compared only with each
    other, in their own section."""
    return server.endswith("-tls")


class Section:
    """Everything for one of pinned / unpinned (or, with `tls`, the servers over TLS)."""

    def __init__(self, pinned, results, tls=False):
        self.pinned = pinned
        self.tls = tls
        self.rows = {}  # (scenario, server) -> dict
        by = {}
        for line in results:
            if bool(line.get("pinned")) != pinned or line.get("scenario") not in SC:
                continue
            if is_tls(line.get("server", "")) != tls:
                continue
            by.setdefault((line["scenario"], line["server"]), []).append(line)
        for key, lines in by.items():
            figures = [v for v in (valid(l) for l in lines) if v is not None]
            rs = [l["result"] for l in lines if valid(l) is not None]
            extra = lambda k: median([r[k] for r in rs if isinstance(r.get(k), (int, float))])
            metric = SC[key[0]][2]
            per_cpu = [r[metric] / (r["loadgen_cpu"] + r["server_cpu"]) for r in rs
                       if isinstance(r.get("loadgen_cpu"), (int, float)) and isinstance(r.get("server_cpu"), (int, float))
                       and r["loadgen_cpu"] + r["server_cpu"] > 0]
            pair = [r["loadgen_cpu"] + r["server_cpu"] for r in rs
                    if isinstance(r.get("loadgen_cpu"), (int, float)) and isinstance(r.get("server_cpu"), (int, float))]
            self.rows[key] = {
                "value": median(figures),
                "rounds": len(lines),
                "ok": len(figures),
                "p50": extra("p50_us"),
                "p99": extra("p99_us"),
                "loadgen_cpu": extra("loadgen_cpu"),
                "server_cpu": extra("server_cpu"),
                "per_cpu": median(per_cpu),
                "pair_cpu": median(pair),
                "autobahn_ok": extra("ok"),
                "autobahn_cases": extra("cases"),
                "errors": [l.get("error") for l in lines if l.get("error")][:2],
                "rx_ratio": extra("rx_ratio"),
                "best_p99": extra("best_p99_us"),
                "skipped": any((l.get("result") or {}).get("skipped") for l in lines),
            }

    def servers(self, sc):
        names = [s for (x, s) in self.rows if x == sc]
        order = list(SERVER_NAMES)
        return sorted(names, key=lambda s: (order.index(s) if s in order else 99, s))

    def value(self, sc, server):
        row = self.rows.get((sc, server))
        return row["value"] if row else None

    def best_peer(self, sc):
        higher = SC[sc][4]
        peers = [(s, self.value(sc, s)) for s in self.servers(sc) if s not in NOT_PEERS
                 and (s in DEFLATE_PEERS) == (sc in DEFLATE)]
        peers = [(s, v) for s, v in peers if v is not None]
        if not peers:
            return None, None
        return (max if higher else min)(peers, key=lambda p: p[1])

    def ratio(self, sc, server, ref):
        v = self.value(sc, server)
        if v is None or ref in (None, 0):
            return None
        return v / ref

    def advantage(self, sc):
        """rfc6455 against the best peer, > 1 meaning rfc6455 is better."""
        ours = self.value(sc, "rfc6455-tls" if self.tls else OURS)
        _, best = self.best_peer(sc)
        if ours is None or best is None or ours == 0 or best == 0:
            return None
        return ours / best if SC[sc][4] else best / ours

    def empty(self):
        return not self.rows


def bars(sec):
    """The issue's bars: (bar, requirement, verdict, detail)."""
    out = []

    def r(sc, ref):
        if ref == "raw":
            return sec.ratio(sc, OURS, sec.value(sc, RAW))
        return sec.ratio(sc, OURS, sec.best_peer(sc)[1])

    def verdict(conds):
        if any(c is None for c in conds):
            return "no data"
        return "met" if all(conds) else "**not met**"

    def ge(x, limit):
        return None if x is None else x >= limit

    a = r("1", "raw")
    out.append(("echo 100×20 B, 1 in flight", "≥ 0.95 × raw TCP", verdict([ge(a, 0.95)]),
                "%s raw TCP" % fratio(a)))
    b, c = r("2", "peer"), r("2", "raw")
    out.append(("echo 100×64 B, 32 in flight", "≥ 1.0 × best peer and ≥ 0.9 × raw TCP",
                verdict([ge(b, 1.0), ge(c, 0.9)]), "%s best peer, %s raw TCP" % (fratio(b), fratio(c))))
    d, e = r("3a", "raw"), r("3b", "raw")
    out.append(("echo 200×16 KiB and 10×1 MiB", "≥ 0.9 × raw TCP", verdict([ge(d, 0.9), ge(e, 0.9)]),
                "16 KiB: %s, 1 MiB: %s raw TCP" % (fratio(d), fratio(e))))
    f = r("4", "peer")
    out.append(("broadcast 1,000 × 64 B, max rate with p99 ≤ 50 ms, nothing lost", "≥ 1.0 × best peer",
                verdict([ge(f, 1.0)]), "%s best peer" % fratio(f)))
    g = sec.value("5", OURS)
    out.append(("10,000 idle connections", "≤ 512 bytes per connection",
                verdict([None if g is None else g <= 512]), "%s bytes" % fmt(g)))
    h = r("6", "peer")
    out.append(("connect + upgrade + close", "≥ 1.0 × best peer", verdict([ge(h, 1.0)]), "%s best peer" % fratio(h)))
    ours7, best7 = sec.value("7", OURS), sec.best_peer("7")[1]
    out.append(("Autobahn 9.x total duration", "≤ fastest peer's",
                verdict([None if ours7 is None or best7 is None else ours7 <= best7]),
                "%s ms vs %s ms" % (fmt(ours7), fmt(best7))))
    return out


def deflate_bars(sec):
    """The permessage-deflate bars (scenarios 8-10): (bar, requirement, verdict, detail)."""
    def verdict(cond):
        return "no data" if cond is None else ("met" if cond else "**not met**")

    out = []
    a = sec.advantage("8")
    out.append(("echo 100×1 KiB text, 32 in flight", "≥ 1.0 × best peer",
                verdict(None if a is None else a >= 1.0), "%s best peer" % fratio(a)))
    b = sec.advantage("9")
    ours9, best9 = sec.value("9", OURS), sec.best_peer("9")[1]
    if b is None and best9 == 0 and ours9 is not None:
        # No peer passed any rate of the search: ahead of it if rfc6455 passed one.
        out.append(("broadcast 1,000 × 1 KiB text, max rate with p99 ≤ 50 ms, nothing lost", "≥ 1.0 × best peer",
                    verdict(ours9 > 0), "%s msgs/s, no peer passed a rate" % fmt(ours9)))
    else:
        out.append(("broadcast 1,000 × 1 KiB text, max rate with p99 ≤ 50 ms, nothing lost", "≥ 1.0 × best peer",
                    verdict(None if b is None else b >= 1.0), "%s best peer" % fratio(b)))
    c = sec.value("10", OURS)
    out.append(("10,000 idle connections, deflate negotiated", "≤ 512 bytes per connection",
                verdict(None if c is None else c <= 512), "%s bytes" % fmt(c)))
    return out


def sanity(sec):
    warnings = []
    if sec.pinned:
        pairs = [sec.rows[(sc, s)]["pair_cpu"] for sc in ECHO for s in sec.servers(sc)
                 if sec.rows[(sc, s)]["pair_cpu"] is not None]
        if pairs and median(pairs) < 0.9:
            warnings.append("the server and the load generator together used only %.2f of their CPU "
                            "(median over the echo runs): something else was running, so figures "
                            "are low and noisy; compare the per-CPU-second column" % median(pairs))
    for sc in sorted(ECHO):
        raw = sec.value(sc, RAW)
        if raw is None:
            if sec.servers(sc):
                warnings.append("%s: no raw TCP figure, so the load generator cannot be checked" % SC[sc][1])
            continue
        for s in sec.servers(sc):
            v = sec.value(sc, s)
            if s != RAW and v is not None and v >= raw:
                warnings.append(
                    "%s: %s (%s) is not below raw TCP (%s): the load generator may be the bottleneck"
                    % (SC[sc][1], s, fmt(v, SC[sc][3]), fmt(raw, SC[sc][3])))
    return warnings


def table(sec, sc):
    _, title, metric, unit, higher, _ = SC[sc]
    best_name, best = sec.best_peer(sc)
    raw = sec.value(sc, RAW)
    lines = []
    better = "higher" if higher else "lower"
    lines.append("### %s %s" % (sc, title))
    lines.append("")
    head = ["server", "%s (median, %s is better)" % (unit, better), "× best peer"]
    if raw is not None:
        head.append("× raw TCP")
    if sc in ECHO:
        head += ["per CPU-second", "p50 µs", "p99 µs", "loadgen CPU", "server CPU"]
    if sc == "6":
        head += ["loadgen CPU", "server CPU"]
    if sc == "7":
        head += ["cases OK"]
    if sc == "8":
        head += ["per CPU-second", "p50 µs", "p99 µs", "loadgen CPU", "server CPU", "server's wire / payload"]
    if sc == "9":
        head += ["p99 ms at that rate", "loadgen CPU", "server CPU", "server's wire / payload"]
    head += ["runs ok"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for s in sec.servers(sc):
        row = sec.rows[(sc, s)]
        v = row["value"]
        name = SERVER_NAMES.get(s, s)
        if s == OURS:
            name = "**%s**" % name
        if s == best_name:
            name += " (best peer)"
        cells = [name, fmt(v, unit) if not row["skipped"] else "skipped", fratio(sec.ratio(sc, s, best))]
        if raw is not None:
            cells.append(fratio(sec.ratio(sc, s, raw)))
        if sc in ECHO:
            cells += [fmt(row["per_cpu"], unit), fmt(row["p50"]), fmt(row["p99"]),
                      fcpu(row["loadgen_cpu"]), fcpu(row["server_cpu"])]
        if sc == "6":
            cells += [fcpu(row["loadgen_cpu"]), fcpu(row["server_cpu"])]
        if sc == "7":
            cells += ["%s / %s" % (fmt(row["autobahn_ok"]), fmt(row["autobahn_cases"]))]
        if sc == "8":
            cells += [fmt(row["per_cpu"], unit), fmt(row["p50"]), fmt(row["p99"]),
                      fcpu(row["loadgen_cpu"]), fcpu(row["server_cpu"]), fwire(row["rx_ratio"])]
        if sc == "9":
            cells += [fmt(None if row["best_p99"] is None else row["best_p99"] / 1000),
                      fcpu(row["loadgen_cpu"]), fcpu(row["server_cpu"]), fwire(row["rx_ratio"])]
        cells += ["%d / %d" % (row["ok"], row["rounds"])]
        lines.append("| " + " | ".join(cells) + " |")
    if sc in ECHO:
        lines.append("")
        lines.append("*per CPU-second*: the figure divided by the CPU time the server and the load "
                     "generator used together (cores); CPU columns are fractions of one core.")
    if sc == "4":
        lines.append("")
        lines.append("The rate search doubles the publish rate until a step fails, then bisects; "
                     "every step starts a fresh server. The sender's own copies are not counted; "
                     "expected deliveries = messages sent × 1,000. The steps are listed below.")
    if sc == "8":
        lines.append("")
        lines.append("Every connection negotiated permessage-deflate (the load generator offers "
                     "`permessage-deflate; client_max_window_bits` and counts a refusal as an error) "
                     "and sends every message compressed (at its `--deflate-level`, `DEFLATE_LEVEL` in "
                     "`bench/run.sh`, 1 by default); *server's wire / "
                     "payload*: the compressed bytes the server sent over the bytes they inflate to. "
                     "*per CPU-second* and the CPU columns as above.")
    if sc == "9":
        lines.append("")
        lines.append("Scenario 4's search with 1 KiB compressible text, every receiver and the sender "
                     "having negotiated permessage-deflate; the CPU, p99 and wire / payload columns are "
                     "those of the highest passing step. The load generator inflates a message once "
                     "when the server sends every receiver the same compressed bytes (without context "
                     "takeover), and every delivery when it does not. The steps are listed below.")
    if sc == "10":
        lines.append("")
        lines.append("As scenario 5, with every connection having negotiated permessage-deflate.")
    failed = [(s, sec.rows[(sc, s)]["errors"]) for s in sec.servers(sc) if sec.rows[(sc, s)]["errors"]]
    if failed:
        lines.append("")
        for s, errs in failed:
            lines.append("- %s failed a run: `%s`" % (s, errs[0].replace("`", "'")[:300]))
    lines.append("")
    return lines


def svg_chart(sections, path):
    rows = [sc for sc in SC if any(sec.advantage(sc) is not None for sec in sections)]
    if not rows:
        rows = [sc for sc in SC][:1]
    series = [(sec, "pinned (1 CPU)" if sec.pinned else "unpinned", "#2b6cb0" if sec.pinned else "#90cdf4")
              for sec in sections]
    values = [sec.advantage(sc) for sec in sections for sc in rows]
    vmax = max([2.0] + [v for v in values if v is not None])
    vmax = min(vmax, 10.0)
    left, right, top, bar_h, gap = 150, 70, 60, 16, 14
    width = 760
    plot_w = width - left - right
    group_h = bar_h * len(series) + gap
    height = top + group_h * len(rows) + 50
    x = lambda v: left + plot_w * min(v, vmax) / vmax
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="12">' % (width, height, width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="15" font-weight="bold">rfc6455 against the best peer, per scenario</text>' % left,
           '<text x="%d" y="40" fill="#555">ratio, &gt; 1 means rfc6455 is better (faster, or less memory)</text>' % left]
    # grid
    step = 0.5 if vmax <= 3 else 1.0
    t = 0.0
    while t <= vmax + 1e-9:
        gx = x(t)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%s"/>'
                   % (gx, top - 6, gx, height - 40, "#c53030" if abs(t - 1) < 1e-9 else "#e2e8f0",
                      "1.5" if abs(t - 1) < 1e-9 else "1"))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g</text>' % (gx, height - 26, t))
        t += step
    for i, sc in enumerate(rows):
        y0 = top + i * group_h
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                   % (left - 8, y0 + bar_h * len(series) / 2 + 4, html.escape(SC[sc][5])))
        for j, (sec, _, color) in enumerate(series):
            v = sec.advantage(sc)
            y = y0 + j * bar_h
            if v is None:
                out.append('<text x="%d" y="%.1f" fill="#999">no data</text>' % (left + 4, y + bar_h - 4))
                continue
            out.append('<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="%s"/>'
                       % (left, y + 1, max(x(v) - left, 1), bar_h - 2, color))
            out.append('<text x="%.1f" y="%.1f" fill="#222">%.2f×%s</text>'
                       % (x(v) + 4, y + bar_h - 4, v, "" if v <= vmax else " (clipped)"))
    ly = height - 10
    lx = left
    for _, label, color in series:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (lx, ly - 10, color))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 16, ly, html.escape(label)))
        lx += 150
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="*")
    ap.add_argument("--md", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--svg", default=os.path.join(ROOT, "docs", "benchmarks.svg"))
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    ap.add_argument("--autobahn", default=os.path.join(ROOT, "bench", "results", "autobahn-peers.json"))
    ap.add_argument("--check", action="store_true",
                    help="write nothing; fail if the committed files differ from what the results give")
    args = ap.parse_args()
    paths = args.results
    if not paths:
        paths = sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*.jsonl")))
        if not paths:
            sys.exit("report.py: no results file given and none in bench/results/")
    if args.check:
        sys.exit(check(paths, args))
    write_all(paths, args.md, args.svg, args.readme, args.autobahn)


def check(paths, args):
    """1 when a committed file differs from what the results give, with the files named."""
    with tempfile.TemporaryDirectory() as tmp:
        md, svg, readme = (os.path.join(tmp, n) for n in ("benchmarks.md", "benchmarks.svg", "README.md"))
        with open(args.readme, encoding="utf-8") as f, open(readme, "w", encoding="utf-8") as g:
            g.write(f.read())
        write_all(paths, md, svg, readme, args.autobahn)
        stale = []
        for mine, theirs in ((md, args.md), (svg, args.svg), (readme, args.readme)):
            with open(mine, encoding="utf-8") as f, open(theirs, encoding="utf-8") as g:
                if f.read() != g.read():
                    stale.append(shown(theirs))
    if stale:
        print("report.py: %s differ(s) from what %s give(s): run python3 bench/report.py and commit"
              % (", ".join(stale), ", ".join(shown(p) for p in paths)), file=sys.stderr)
        return 1
    print("report.py: docs/benchmarks.md, docs/benchmarks.svg and the README table match %s"
          % ", ".join(shown(p) for p in paths), file=sys.stderr)
    return 0


def write_all(paths, md_path, svg_path, readme_path, autobahn_path):
    metas, results, steps = load(paths)
    if not results:
        sys.exit("report.py: no results in %s" % ", ".join(paths))
    meta = metas[0] if metas else {}
    plain = [s for s in (Section(True, results), Section(False, results)) if not s.empty()]
    tls = [s for s in (Section(True, results, True), Section(False, results, True)) if not s.empty()]
    sections = plain + tls

    md = ["# Benchmarks", ""]
    md.append("Generated by `bench/report.py` from %s (committed, so that this page can be "
              "regenerated and checked: `python3 bench/report.py --check`). Every figure is the "
              "median over the rounds; each server was started fresh for each run." % (
                  ", ".join("`%s`" % shown(p) for p in paths)))
    md.append("")
    md.append("## Machine and command")
    md.append("")
    md.append("| | |")
    md.append("|---|---|")
    md.append("| CPU | %s |" % meta.get("cpu", "?"))
    md.append("| cores | %s |" % meta.get("cores", "?"))
    md.append("| kernel | %s |" % meta.get("kernel", "?"))
    md.append("| rustc | %s |" % meta.get("rustc", "?"))
    md.append("| node | %s |" % (meta.get("node") or "not installed"))
    md.append("| run started | %s |" % meta.get("started", "?"))
    md.append("| rounds, seconds per measurement | %s, %s (after %s s warmup) |"
              % (meta.get("rounds", "?"), meta.get("duration", "?"), meta.get("warmup", "?")))
    md.append("")
    md.append("To reproduce (from the repository root):")
    md.append("")
    md.append("```sh")
    md.append(meta.get("command", "bench/run.sh"))
    md.append("python3 bench/report.py RESULTS.jsonl   # this page (and the README table), from the results")
    md.append("```")
    md.append("")
    md.append("The load generator (`bench/loadgen`, one thread) runs on the same machine as the server; "
              "*pinned* means both were bound to the same single CPU with `taskset`, so the load "
              "generator's own CPU time is taken from the server's. The raw TCP echo answers the "
              "upgrade and then returns every byte unparsed: it is the ceiling this load generator "
              "can measure. See `bench/README.md`.")
    md.append("")
    md.append("![rfc6455 against the best peer](benchmarks.svg)")
    md.append("")

    for sec in sections:
        title = "Pinned (server and load generator on one CPU)" if sec.pinned else "Unpinned"
        if sec.tls:
            title = "Over TLS (wss://), " + ("pinned" if sec.pinned else "unpinned")
        md.append("## %s" % title)
        md.append("")
        if sec.tls:
            md.extend(tls_summary(sec))
            for sc in SC:
                if sec.servers(sc):
                    md.extend(table(sec, sc))
            continue
        # A section of rfc6455's own setups only (its event loops): no peer, no raw TCP, so no
        # bars to meet; scaling.md reads it.
        own_only = all(server in NOT_PEERS - {RAW} for sc in SC for server in sec.servers(sc))
        if own_only:
            md.append("rfc6455's own setups only (one event loop against two), without peers or raw "
                      "TCP: what a second event loop costs or gives on this machine "
                      "([scaling.md](scaling.md#measuring-the-costs)).")
            md.append("")
        else:
            md.append("### The bars rfc6455 has to meet")
            md.append("")
            md.append("| bar | requirement | rfc6455 | verdict |")
            md.append("|---|---|---|---|")
            for bar, req, verdict, detail in bars(sec):
                md.append("| %s | %s | %s | %s |" % (bar, req, detail, verdict))
            md.append("")
        warnings = [] if own_only else sanity(sec)
        if warnings:
            md.append("**Checks failed** (raw TCP must beat every server in the echo scenarios; "
                      "the pinned CPU must be ours):")
            md.append("")
            for w in warnings:
                md.append("- warning: %s" % w)
                print("report.py: warning (%s): %s" % ("pinned" if sec.pinned else "unpinned", w), file=sys.stderr)
            md.append("")
        elif any(sec.value(sc, RAW) is not None for sc in ECHO):
            md.append("Load generator check: raw TCP beat every server in every echo scenario measured.")
            md.append("")
        if any(sec.servers(sc) for sc in DEFLATE):
            md.append("### The bars rfc6455 has to meet: permessage-deflate")
            md.append("")
            md.append("| bar | requirement | rfc6455 | verdict |")
            md.append("|---|---|---|---|")
            for bar, req, verdict, detail in deflate_bars(sec):
                md.append("| %s | %s | %s | %s |" % (bar, req, detail, verdict))
            md.append("")
        for sc in SC:
            if sec.servers(sc):
                md.extend(table(sec, sc))
        # The broadcast searches, step by step.
        for bsc, label in (("4", "Broadcast"), ("9", "permessage-deflate broadcast")):
            st = [s for s in steps if bool(s.get("pinned")) == sec.pinned and s.get("scenario", "4") == bsc]
            if not st:
                continue
            md.append("%s search steps (rate in msgs/s: p99, deliveries lost; ✓ pass, ✗ fail), by round:" % label)
            md.append("")
            for server in sec.servers(bsc):
                for rnd in sorted({s["round"] for s in st if s["server"] == server}):
                    parts = []
                    for s in st:
                        if s["server"] != server or s["round"] != rnd:
                            continue
                        r = s.get("result") or {}
                        p99 = r.get("p99_us")
                        if r.get("aborted"):
                            what = "p99 past %s ms, stopped early" % fmt(p99 / 1000) if p99 is not None else "stopped early"
                        elif p99 is not None:
                            what = "%s ms, %s lost" % (fmt(p99 / 1000), r.get("lost", "–"))
                        else:
                            what = "failed"
                        parts.append("%s: %s%s" % (s.get("rate"), what, " ✓" if s.get("pass") else " ✗"))
                    md.append("- %s, round %d: %s" % (server, rnd, "; ".join(parts)))
            md.append("")

    md.extend(scaleout_section())
    md.extend(storm_section())
    with open(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(md).rstrip() + "\n")
    # The chart compares with peers: sections of rfc6455's own setups only have nothing to show.
    svg_chart([s for s in plain if any(s.advantage(sc) is not None for sc in SC)] or plain, svg_path)
    pinned = [sec for sec in sections if sec.pinned] or sections
    readme_table(pinned[0], load_autobahn(autobahn_path), readme_path, paths)
    print("report.py: wrote %s, %s and the table in %s" % (shown(md_path), shown(svg_path), shown(readme_path)),
          file=sys.stderr)


README_BEGIN = "<!-- BEGIN generated by bench/report.py: do not edit by hand -->"
README_END = "<!-- END generated by bench/report.py -->"
# The servers of the README's table, in its order.
README_SERVERS = ["rfc6455", "tungstenite", "fastwebsockets", "uws", "ws", "raw"]
README_HEADS = {"rfc6455": "rfc6455", "tungstenite": "tungstenite", "fastwebsockets": "fastwebsockets",
                "uws": "uWebSockets (node)", "ws": "ws (node)", "raw": "raw TCP ceiling"}
README_ROWS = [
    ("1", "echo 100 × 20 B, round trips/s"),
    ("2", "echo 100 × 64 B, 32 in flight, round trips/s"),
    ("3a", "echo 200 × 16 KiB, MB/s"),
    ("3b", "echo 10 × 1 MiB, MB/s"),
    ("4", "broadcast to 1,000, max msgs/s with p99 ≤ 50 ms"),
    ("5", "memory per idle connection (lower is better)"),
    ("6", "connect + upgrade + close, per second"),
    ("7", "Autobahn 9.x, total ms (lower is better)"),
]
SANS_IO = {"rfc6455": "yes", "tungstenite": "no (blocking streams)", "fastwebsockets": "no (tokio)",
           "uws": "no (C++ loop)", "ws": "no", "raw": "–"}


def load_autobahn(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def strict_misses(autobahn, server):
    """NON-STRICT plus FAILED cases of sections 1-10 in the committed Autobahn run."""
    peer = (autobahn or {}).get("peers", {}).get(server)
    if not peer:
        return None
    counts = peer.get("by_verdict_1_10") or {}
    return counts.get("NON-STRICT", 0) + counts.get("FAILED", 0)


def readme_table(sec, autobahn, path, paths):
    """Rewrites the block between README_BEGIN and README_END in the README."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return
    if README_BEGIN not in text or README_END not in text:
        print("report.py: no generated block in %s; its table is not written" % shown(path), file=sys.stderr)
        return
    servers = [s for s in README_SERVERS if any((sc, s) in sec.rows for sc, _ in README_ROWS) or s == OURS]
    lines = [README_BEGIN, ""]
    lines.append("| | " + " | ".join(README_HEADS[s] for s in servers) + " |")
    lines.append("|---|" + "---|" * len(servers))
    for sc, label in README_ROWS:
        higher = SC[sc][4]
        unit = SC[sc][3]
        values = {s: sec.value(sc, s) for s in servers}
        contenders = [(s, v) for s, v in values.items() if v is not None and s != RAW]
        best = (max if higher else min)(contenders, key=lambda p: p[1])[0] if contenders else None
        cells = []
        for s in servers:
            v = values[s]
            if v is None:
                cells.append("(no broadcast)" if sc == "4" and s in ("tungstenite", "fastwebsockets") else "–")
                continue
            cell = fmt(v, unit) + (" B" if sc == "5" else "")
            cells.append("**%s**" % cell if s == best else cell)
        lines.append("| %s | %s |" % (label, " | ".join(cells)))
    cells = []
    misses = {s: strict_misses(autobahn, s) for s in servers if s != RAW}
    known = [v for v in misses.values() if v is not None]
    for s in servers:
        v = misses.get(s)
        if s == RAW or v is None:
            cells.append("–")
        else:
            cells.append("**%d**" % v if known and v == min(known) else str(v))
    lines.append("| Autobahn 1–10 strict (NON-STRICT or FAILED cases) | %s |" % " | ".join(cells))
    lines.append("| sans-I/O core, no async runtime | %s |" % " | ".join(SANS_IO.get(s, "–") for s in servers))
    lines.append("")
    # Where rfc6455 is not ahead, from the same figures.
    misses_text = []
    for sc in ("1", "2", "3a", "3b"):
        r = sec.ratio(sc, OURS, sec.value(sc, RAW))
        if r is not None:
            misses_text.append("%s %s of raw TCP" % (SC[sc][5], fratio(r)))
    behind = []
    for sc, _ in README_ROWS:
        name, best = sec.best_peer(sc)
        adv = sec.advantage(sc)
        if adv is not None and adv < 1:
            behind.append("%s (%s: %s of it)" % (SC[sc][5], SERVER_NAMES.get(name, name), fratio(adv)))
    suite = (autobahn or {}).get("suite", "the same suite")
    lines.append("Figures from %s (pinned: server and load generator on one CPU; medians of the rounds), "
                 "regenerated by `python3 bench/report.py`; the Autobahn row from "
                 "`bench/results/autobahn-peers.json` (%s, every server run the same way: "
                 "`bench/autobahn-peers.sh`). Against raw TCP, rfc6455 reaches: %s. %s"
                 % (", ".join("`%s`" % shown(p) for p in paths), suite, "; ".join(misses_text) or "–",
                    ("Where a peer is ahead: %s." % "; ".join(behind)) if behind
                    else "No peer is ahead of it in any row."))
    lines.append("")
    lines.append(README_END)
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    main()
