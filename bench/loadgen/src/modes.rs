//! The four measurements. Each runs its own loop on one [`Net`], bounded in time, and returns
//! one JSON object.

use crate::Target;
use crate::hist::Histogram;
use crate::net::{Conn, Gone, Handler, MIN_PAYLOAD, Net, Phase, find_stamp, payload};
use crate::sys::{self, CpuMeter};
use std::time::{Duration, Instant};

/// Settings every mode has.
pub struct Common {
    pub target: Target,
    pub pid: Option<u32>,
    pub max_pending: usize,
    pub connect_timeout: f64,
    pub nofile: u64,
    /// `--deflate`: offer permessage-deflate, require it, compress at this zlib level.
    pub deflate: Option<u8>,
    /// `wss://`: the TLS configuration (`--ca-file`).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Common {
    fn net(&self, clock: crate::net::Clock) -> Result<Net, String> {
        let t = &self.target;
        let mut net = Net::with_deflate(t.addr, &t.host, &t.path, clock, self.deflate)
            .map_err(|e| e.to_string())?;
        net.tls = self.tls.clone();
        Ok(net)
    }
}

const SEC: u64 = 1_000_000_000;

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

fn latency_fields(h: &Histogram) -> String {
    format!(
        "\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"mean_us\":{:.1}",
        us(h.quantile(0.5)),
        us(h.quantile(0.9)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max()),
        h.mean() / 1e3
    )
}

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Opens slots `from..to`, at most `max_pending` handshakes in progress at once, until every
/// one is open or failed, or the connect timeout passes (the rest are dropped as timeouts).
fn open_all(
    net: &mut Net,
    h: &mut impl Handler,
    from: usize,
    to: usize,
    c: &Common,
) -> Result<f64, String> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(c.connect_timeout);
    let mut next = from;
    let mut last_report = t0;
    let mut last_reap = t0;
    loop {
        while next < to && net.pending < c.max_pending {
            net.connect(next, h);
            next += 1;
        }
        if next == to && net.pending == 0 {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            eprintln!("loadgen: connect timeout: {} of {} open", net.open, to - from);
            for idx in from..to {
                if matches!(&net.conns.get(idx), Some(Some(conn)) if conn.phase != Phase::Open) {
                    if let Some(Some(conn)) = net.conns.get_mut(idx) {
                        conn.gone = Some(Gone::Timeout);
                    }
                    net.remove(idx, h);
                }
            }
            break;
        }
        net.poll(Some(Duration::from_millis(50)), h).map_err(|e| e.to_string())?;
        if now.duration_since(last_reap) >= Duration::from_millis(100) {
            net.reap_timeouts(h);
            last_reap = now;
        }
        if now.duration_since(last_report) >= Duration::from_secs(1) {
            eprintln!(
                "loadgen: opening: {} open, {} in progress, {} errors",
                net.open,
                net.pending,
                net.errors.total()
            );
            last_report = now;
        }
    }
    Ok(t0.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// echo

pub struct EchoOpts {
    pub conns: usize,
    pub size: usize,
    pub window: u32,
    pub duration: f64,
    pub warmup: f64,
    pub count: Option<u64>,
    /// `--text`: compressible English after the stamp, not `x` padding.
    pub text: bool,
}

struct EchoH {
    size: u64,
    text: bool,
    sending: bool,
    from_ns: u64,
    to_ns: u64,
    hist: Histogram,
    measured: u64,
    all: u64,
    bad: u64,
}

impl Handler for EchoH {
    fn on_open(&mut self, _idx: usize, conn: &mut Conn, _now_ns: u64) {
        conn.set_message(payload(self.size as usize, self.text));
    }

    #[inline]
    fn on_message(&mut self, _idx: usize, conn: &mut Conn, now_ns: u64) {
        conn.inflight = conn.inflight.saturating_sub(1);
        match find_stamp(conn.rx.prefix()) {
            Some(t) if conn.rx.msg_len == self.size && t <= now_ns => {
                self.all += 1;
                if now_ns >= self.from_ns && now_ns < self.to_ns {
                    self.hist.record(now_ns - t);
                    self.measured += 1;
                }
            }
            _ => self.bad += 1,
        }
        if self.sending {
            conn.owed += 1;
        }
    }
}

pub fn echo(c: Common, o: EchoOpts) -> Result<String, String> {
    let clock = crate::net::Clock::new();
    let mut net = c.net(clock)?;
    // An echo starts with its stamp: keep only that much of each message.
    net.keep = MIN_PAYLOAD;
    let mut h = EchoH {
        size: o.size as u64,
        text: o.text,
        sending: false,
        from_ns: u64::MAX,
        to_ns: u64::MAX,
        hist: Histogram::default(),
        measured: 0,
        all: 0,
        bad: 0,
    };
    let open_s = open_all(&mut net, &mut h, 0, o.conns, &c)?;
    let opened = net.open;
    if opened == 0 {
        return Err(format!("no connection could be opened ({})", net.errors.json()));
    }
    eprintln!(
        "loadgen: echo: {opened} connections open in {open_s:.2}s; warmup {}s, measuring {}s",
        o.warmup, o.duration
    );
    let start = clock.now_ns();
    h.from_ns = start + (o.warmup * 1e9) as u64;
    h.to_ns = h.from_ns + (o.duration * 1e9) as u64;
    h.sending = true;
    for idx in 0..net.slots() {
        if let Some(Some(conn)) = net.conns.get_mut(idx) {
            conn.owed = o.window;
        }
        net.flush(idx, &mut h);
    }
    let mut cpu: Option<CpuMeter> = None;
    let mut next_report = start + SEC;
    let mut stopped_at = h.to_ns;
    loop {
        let now = clock.now_ns();
        if cpu.is_none() && now >= h.from_ns {
            cpu = Some(CpuMeter::start(c.pid));
        }
        if now >= h.to_ns {
            break;
        }
        if o.count.is_some_and(|n| h.measured >= n) {
            stopped_at = now;
            break;
        }
        if net.open == 0 {
            stopped_at = now;
            eprintln!("loadgen: echo: every connection is gone");
            break;
        }
        if now >= next_report {
            eprintln!(
                "loadgen: echo: {:.0}s: {} round trips ({} measured), {} open",
                (now - start) as f64 / 1e9,
                h.all,
                h.measured,
                net.open
            );
            next_report += SEC;
        }
        let mut wake = h.to_ns.min(next_report);
        if now < h.from_ns {
            wake = wake.min(h.from_ns);
        }
        net.poll(Some(Duration::from_nanos(wake.saturating_sub(now))), &mut h)
            .map_err(|e| e.to_string())?;
    }
    h.sending = false;
    let cpu = cpu.unwrap_or_else(|| CpuMeter::start(c.pid));
    let secs = (stopped_at.saturating_sub(h.from_ns)) as f64 / 1e9;
    let secs = secs.max(1e-9);
    let rate = h.measured as f64 / secs;
    let json = format!(
        "{{\"mode\":\"echo\",\"url\":{},\"conns\":{},\"open\":{},\"size\":{},\"window\":{},\"warmup_s\":{},\"duration_s\":{:.3},\
         \"messages\":{},\"msgs_per_s\":{:.1},\"mb_per_s\":{:.3},{},\"bad_messages\":{},\"errors\":{},\"error_detail\":{},{},\"open_s\":{:.3},\"nofile\":{},\"text\":{},{}}}",
        json_str(&c.target.url),
        o.conns,
        opened,
        o.size,
        o.window,
        o.warmup,
        secs,
        h.measured,
        rate,
        rate * o.size as f64 / 1e6,
        latency_fields(&h.hist),
        h.bad,
        net.errors.total() + h.bad,
        net.errors.json(),
        cpu.json_fields(),
        open_s,
        c.nofile,
        o.text,
        net.z.json_fields()
    );
    Ok(json)
}

// ---------------------------------------------------------------------------------------------
// broadcast

pub struct BroadcastOpts {
    pub receivers: usize,
    pub size: usize,
    pub rate: f64,
    pub duration: f64,
    pub grace: f64,
    pub warmup: f64,
    pub p99_limit_ms: Option<f64>,
    pub quiet_ms: f64,
    pub text: bool,
    /// `--inflate-all`: inflate every delivery, even the same bytes again (no memo).
    pub inflate_all: bool,
    /// `--sender-url`: the sender connects here, not to `--url` (another process of a chat
    /// shared through Redis).
    pub sender: Option<crate::Target>,
}

struct BcH {
    sender: usize,
    /// Deliveries of messages stamped before this (warmup, or none sent yet) are not counted.
    measure_from_ns: u64,
    hist: Histogram,
    received: u64,
    over_limit: u64,
    limit_ns: u64,
    skipped: u64,
    sender_received: u64,
    last_rx_ns: u64,
    /// When the last counted delivery arrived.
    last_counted_ns: u64,
    receivers_lost: u64,
}

impl Handler for BcH {
    #[inline]
    fn on_message(&mut self, idx: usize, conn: &mut Conn, now_ns: u64) {
        self.last_rx_ns = now_ns;
        if idx == self.sender {
            self.sender_received += 1;
            return;
        }
        match find_stamp(conn.rx.prefix()) {
            Some(t) if t >= self.measure_from_ns && t <= now_ns => {
                self.received += 1;
                self.last_counted_ns = now_ns;
                let lat = now_ns - t;
                self.hist.record(lat);
                if lat > self.limit_ns {
                    self.over_limit += 1;
                }
            }
            _ => self.skipped += 1,
        }
    }

    fn on_gone(&mut self, idx: usize, _why: Gone, was_open: bool) {
        if was_open && idx != self.sender {
            self.receivers_lost += 1;
        }
    }
}

/// The sender stops stamping new frames while this much is still unwritten.
const SENDER_BACKLOG_CAP: usize = 8 << 20;

pub fn broadcast(c: Common, o: BroadcastOpts) -> Result<String, String> {
    let clock = crate::net::Clock::new();
    let mut net = c.net(clock)?;
    net.z.memo_on = !o.inflate_all;
    let n = o.receivers;
    net.other_addr = o.sender.as_ref().map(|t| (n, t.addr));
    let mut h = BcH {
        sender: n,
        measure_from_ns: u64::MAX,
        hist: Histogram::default(),
        received: 0,
        over_limit: 0,
        limit_ns: o.p99_limit_ms.map_or(u64::MAX, |ms| (ms * 1e6) as u64),
        skipped: 0,
        sender_received: 0,
        last_rx_ns: 0,
        last_counted_ns: 0,
        receivers_lost: 0,
    };
    let open_s = open_all(&mut net, &mut h, 0, n, &c)?;
    let receivers_open = net.open;
    open_all(&mut net, &mut h, n, n + 1, &c)?;
    if !matches!(&net.conns.get(n), Some(Some(conn)) if conn.phase == Phase::Open) {
        return Err(format!("the sender connection could not be opened ({})", net.errors.json()));
    }
    eprintln!("loadgen: broadcast: {receivers_open} receivers + 1 sender open in {open_s:.2}s");
    // Let the join notices (our chat's presence messages) drain before publishing.
    let quiet_ns = (o.quiet_ms * 1e6) as u64;
    let quiet_until = clock.now_ns() + 10 * SEC;
    h.last_rx_ns = clock.now_ns();
    loop {
        let now = clock.now_ns();
        if now.saturating_sub(h.last_rx_ns) >= quiet_ns || now >= quiet_until {
            break;
        }
        net.poll(Some(Duration::from_millis(10)), &mut h).map_err(|e| e.to_string())?;
    }
    if let Some(Some(sender)) = net.conns.get_mut(n) {
        sender.set_message(payload(o.size, o.text));
    }
    // Warmup: publish at the rate, count nothing.
    let warm_start = clock.now_ns();
    let warm_end = warm_start + (o.warmup * 1e9) as u64;
    let mut warm_sent = 0u64;
    loop {
        let now = clock.now_ns();
        if now >= warm_end {
            break;
        }
        let due = (((now - warm_start) as f64 / 1e9) * o.rate) as u64 + 1;
        if due > warm_sent {
            if let Some(Some(sender)) = net.conns.get_mut(n)
                && sender.backlog() < SENDER_BACKLOG_CAP
            {
                sender.owed += (due - warm_sent) as u32;
            }
            warm_sent = due;
            net.flush(n, &mut h);
        }
        let next_due = warm_start + ((warm_sent as f64 / o.rate) * 1e9) as u64;
        let wake = next_due.min(warm_end).max(now);
        net.poll(Some(Duration::from_nanos(wake - now)), &mut h).map_err(|e| e.to_string())?;
    }
    let start = clock.now_ns();
    h.measure_from_ns = start;
    let dur_ns = (o.duration * 1e9) as u64;
    let end = start + dur_ns;
    let planned = (o.rate * o.duration).round().max(1.0) as u64;
    let abort_over = o.p99_limit_ms.map(|_| 0.01 * planned as f64 * receivers_open as f64);
    let mut scheduled = 0u64;
    let mut unsent = 0u64;
    let mut aborted = false;
    let mut next_report = start + SEC;
    let cpu = CpuMeter::start(c.pid);
    loop {
        let now = clock.now_ns();
        let due = if now >= end {
            planned
        } else {
            ((((now - start) as f64 / 1e9) * o.rate) as u64 + 1).min(planned)
        };
        if due > scheduled {
            let new = due - scheduled;
            scheduled = due;
            match net.conns.get_mut(n) {
                Some(Some(sender)) if sender.backlog() < SENDER_BACKLOG_CAP => {
                    sender.owed += new as u32;
                    net.flush(n, &mut h);
                }
                _ => unsent += new,
            }
        }
        if now >= end {
            break;
        }
        if abort_over.is_some_and(|limit| h.over_limit as f64 > limit) {
            eprintln!("loadgen: broadcast: p99 is already past the limit; stopping early");
            aborted = true;
            break;
        }
        if now >= next_report {
            eprintln!(
                "loadgen: broadcast: {:.0}s: sent {}, delivered {}",
                (now - start) as f64 / 1e9,
                scheduled - unsent,
                h.received
            );
            next_report += SEC;
        }
        let next_due = start + ((scheduled as f64 / o.rate) * 1e9) as u64;
        let wake = next_due.min(end).min(next_report).max(now);
        net.poll(Some(Duration::from_nanos(wake - now)), &mut h).map_err(|e| e.to_string())?;
    }
    let send_end = clock.now_ns();
    let send_secs = (send_end - start) as f64 / 1e9;
    let expected = scheduled * receivers_open as u64;
    let grace_end = send_end + (o.grace * 1e9) as u64;
    while !aborted && h.received < expected {
        let now = clock.now_ns();
        if now >= grace_end {
            break;
        }
        net.poll(Some(Duration::from_nanos((grace_end - now).min(50_000_000))), &mut h)
            .map_err(|e| e.to_string())?;
    }
    let sent = scheduled - unsent;
    let lost = expected as i64 - h.received as i64;
    // Deliveries per second over the time they took: from the first send to the last delivery
    // (stragglers in the grace period included), never less than the sending time.
    let delivery_secs = (h.last_counted_ns.max(send_end) - start) as f64 / 1e9;
    let json = format!(
        "{{\"mode\":\"broadcast\",\"url\":{},\"receivers\":{},\"receivers_open\":{},\"sender_counted\":false,\"size\":{},\"rate\":{},\
         \"warmup_s\":{},\"warmup_sent\":{},\"duration_s\":{:.3},\"scheduled\":{},\"sent\":{},\"unsent\":{},\"expected\":{},\"received\":{},\"lost\":{},\
         \"deliveries_per_s\":{:.1},\"achieved_rate\":{:.1},{},\"over_limit\":{},\"aborted\":{},\"skipped_frames\":{},\
         \"sender_received\":{},\"receivers_gone\":{},\"errors\":{},\"error_detail\":{},{},\"open_s\":{:.3},\"text\":{},{}}}",
        json_str(&c.target.url),
        n,
        receivers_open,
        o.size,
        o.rate,
        o.warmup,
        warm_sent,
        send_secs,
        scheduled,
        sent,
        unsent,
        expected,
        h.received,
        lost,
        h.received as f64 / delivery_secs.max(1e-9),
        sent as f64 / send_secs.max(1e-9),
        latency_fields(&h.hist),
        h.over_limit,
        aborted,
        h.skipped,
        h.sender_received,
        h.receivers_lost,
        net.errors.total(),
        net.errors.json(),
        cpu.json_fields(),
        open_s,
        o.text,
        net.z.json_fields()
    );
    Ok(json)
}

// ---------------------------------------------------------------------------------------------
// connect

struct ConnectH {
    running: bool,
    hist: Histogram,
    completed: u64,
    free: Vec<usize>,
    cycle_timeout: Duration,
}

impl Handler for ConnectH {
    fn on_open(&mut self, _idx: usize, conn: &mut Conn, _now_ns: u64) {
        conn.queue_close();
        conn.deadline = Some(Instant::now() + self.cycle_timeout);
    }

    fn on_message(&mut self, _idx: usize, _conn: &mut Conn, _now_ns: u64) {}

    fn on_close_frame(&mut self, _idx: usize, conn: &mut Conn, _now_ns: u64) {
        conn.phase = Phase::Done;
        conn.gone = Some(Gone::Finished);
        if self.running {
            self.completed += 1;
            self.hist.record(conn.started.elapsed().as_nanos() as u64);
        }
    }

    fn on_gone(&mut self, idx: usize, _why: Gone, _was_open: bool) {
        self.free.push(idx);
    }
}

pub fn connect(c: Common, workers: usize, duration: f64) -> Result<String, String> {
    let clock = crate::net::Clock::new();
    let mut net = Net::new(c.target.addr, &c.target.host, &c.target.path, clock)
        .map_err(|e| e.to_string())?;
    net.tls = c.tls.clone();
    net.handshake_timeout = Duration::from_secs(5);
    let mut h = ConnectH {
        running: true,
        hist: Histogram::default(),
        completed: 0,
        free: Vec::with_capacity(workers),
        cycle_timeout: Duration::from_secs(5),
    };
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(duration);
    let cpu = CpuMeter::start(c.pid);
    for i in 0..workers {
        net.connect(i, &mut h);
    }
    let mut restart = Vec::with_capacity(workers);
    let mut last_reap = t0;
    let mut next_report = t0 + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_report {
            eprintln!("loadgen: connect: {} cycles, {} errors", h.completed, net.errors.total());
            next_report += Duration::from_secs(1);
        }
        let wake = end.min(now + Duration::from_millis(100));
        net.poll(Some(wake - now), &mut h).map_err(|e| e.to_string())?;
        if now.duration_since(last_reap) >= Duration::from_millis(100) {
            net.reap_timeouts(&mut h);
            last_reap = now;
        }
        std::mem::swap(&mut restart, &mut h.free);
        for idx in restart.drain(..) {
            if Instant::now() < end {
                net.connect(idx, &mut h);
            }
        }
    }
    h.running = false;
    let secs = t0.elapsed().as_secs_f64();
    let json = format!(
        "{{\"mode\":\"connect\",\"url\":{},\"conns\":{},\"duration_s\":{:.3},\"handshakes\":{},\"handshakes_per_s\":{:.1},\
         \"cycle_p50_us\":{},\"cycle_p99_us\":{},\"errors\":{},\"error_detail\":{},{}}}",
        json_str(&c.target.url),
        workers,
        secs,
        h.completed,
        h.completed as f64 / secs,
        us(h.hist.quantile(0.5)),
        us(h.hist.quantile(0.99)),
        net.errors.total(),
        net.errors.json(),
        cpu.json_fields()
    );
    Ok(json)
}

// ---------------------------------------------------------------------------------------------
// idle

struct IdleH;

impl Handler for IdleH {
    fn on_message(&mut self, _idx: usize, _conn: &mut Conn, _now_ns: u64) {}
}

pub fn idle(c: Common, conns: usize, settle: f64) -> Result<String, String> {
    let pid = c.pid.expect("checked by the caller");
    let clock = crate::net::Clock::new();
    let mut net = c.net(clock)?;
    let mut h = IdleH;
    let before = sys::vm_rss(pid).ok_or_else(|| format!("cannot read VmRSS of pid {pid}"))?;
    let open_s = open_all(&mut net, &mut h, 0, conns, &c)?;
    let opened = net.open;
    eprintln!("loadgen: idle: {opened} of {conns} open in {open_s:.2}s; settling {settle}s");
    let settle_end = Instant::now() + Duration::from_secs_f64(settle);
    loop {
        let now = Instant::now();
        if now >= settle_end {
            break;
        }
        net.poll(Some(settle_end - now), &mut h).map_err(|e| e.to_string())?;
    }
    let after =
        sys::vm_rss(pid).ok_or_else(|| format!("cannot read VmRSS of pid {pid} (did it exit?)"))?;
    let still_open = net.open;
    let per_conn = if opened > 0 { (after as f64 - before as f64) / opened as f64 } else { 0.0 };
    let json = format!(
        "{{\"mode\":\"idle\",\"url\":{},\"conns\":{},\"open\":{},\"open_after_settle\":{},\"settle_s\":{},\"rss_before\":{},\
         \"rss_after\":{},\"bytes_per_conn\":{:.1},\"errors\":{},\"error_detail\":{},\"open_s\":{:.3},{}}}",
        json_str(&c.target.url),
        conns,
        opened,
        still_open,
        settle,
        before,
        after,
        per_conn,
        net.errors.total(),
        net.errors.json(),
        open_s,
        net.z.json_fields()
    );
    drop(net);
    Ok(json)
}
