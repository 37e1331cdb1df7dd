//! storm: N members join at once (at most `--max-pending` handshakes in flight), stay, and
//! leave at once; the server's CPU and resident memory are read from /proc through each phase.
//!
//! With `--restart`, the server is restarted between the join and the leave (by the script
//! that runs this: `--ready-file` tells it when everyone is in, `--pid-file` holds the pid of
//! whichever server runs now), and every member reconnects as our chat page does: a first
//! retry at a random moment within `--retry-window`, then a doubling window, and a 503's
//! `Retry-After` honoured (plus up to a second of jitter).

use crate::modes::{Common, json_str};
use crate::net::{Conn, Gone, Handler, Net, Phase};
use crate::sys;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct StormOpts {
    pub conns: usize,
    pub settle: f64,
    pub restart: bool,
    pub ready_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub retry_window: f64,
}

struct StormH {
    /// Reconnects waiting for their moment: (when, slot).
    retries: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Failed attempts of each slot since it was last open.
    attempts: Vec<u32>,
    /// Text messages each slot received since the last phase began.
    received: Vec<u32>,
    /// Whether a slot that goes away comes back.
    coming_back: bool,
    first_drop: Option<Instant>,
    retry_window: Duration,
    rng: u64,
}

impl StormH {
    fn random(&mut self) -> f64 {
        // xorshift64*: enough to spread retries.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// When slot `idx` tries again after going away for `why`.
    fn retry_at(&mut self, idx: usize, why: Gone) -> Instant {
        let attempt = self.attempts[idx];
        self.attempts[idx] = attempt.saturating_add(1);
        let window = self.retry_window.as_secs_f64();
        let wait = match why {
            Gone::Busy(secs) if secs > 0 => f64::from(secs) + self.random(),
            _ if attempt == 0 => 0.1 + self.random() * (window - 0.1).max(0.0),
            _ => {
                let span = (window * 2f64.powi(attempt.min(8) as i32)).min(30.0);
                span * (0.5 + self.random() / 2.0)
            }
        };
        Instant::now() + Duration::from_secs_f64(wait)
    }
}

impl Handler for StormH {
    fn on_open(&mut self, idx: usize, _conn: &mut Conn, _now_ns: u64) {
        self.attempts[idx] = 0;
    }

    fn on_message(&mut self, idx: usize, _conn: &mut Conn, _now_ns: u64) {
        self.received[idx] = self.received[idx].saturating_add(1);
    }

    fn on_close_frame(&mut self, _idx: usize, conn: &mut Conn, _now_ns: u64) {
        let asked = conn.close_sent;
        conn.queue_close();
        conn.phase = Phase::Done;
        // Our own Close answered, or the server going away (a restart): not an error.
        conn.gone = Some(if asked || self.coming_back { Gone::Finished } else { Gone::Closed });
    }

    fn on_gone(&mut self, idx: usize, why: Gone, was_open: bool) {
        if !self.coming_back {
            return;
        }
        if was_open && self.first_drop.is_none() {
            self.first_drop = Some(Instant::now());
        }
        let at = self.retry_at(idx, why);
        self.retries.push(Reverse((at, idx)));
    }
}

/// One phase's figures: wall time, the server's CPU seconds, its largest VmRSS seen.
struct Took {
    secs: f64,
    cpu: f64,
    peak_rss: u64,
}

impl Took {
    fn json(&self, name: &str) -> String {
        format!(
            "\"{name}_s\":{:.3},\"{name}_server_cpu_s\":{:.3},\"{name}_peak_rss\":{}",
            self.secs, self.cpu, self.peak_rss
        )
    }
}

/// The server's pid: `--pid-file`'s when given (it changes on a restart), else `--pid`.
fn server_pid(c: &Common, o: &StormOpts) -> Option<u32> {
    match &o.pid_file {
        Some(path) => std::fs::read_to_string(path).ok()?.trim().parse().ok(),
        None => c.pid,
    }
}

/// Polls until `done` or `deadline`, connecting what is due (at most `max_pending` in
/// flight); the server's VmRSS is sampled every 50 ms.
fn run_until(
    net: &mut Net,
    h: &mut StormH,
    c: &Common,
    pid: u32,
    deadline: Instant,
    mut done: impl FnMut(&Net) -> bool,
) -> Result<(f64, u64), String> {
    let t0 = Instant::now();
    let mut peak = sys::vm_rss(pid).unwrap_or(0);
    let mut next_sample = t0;
    let mut next_reap = t0;
    let mut next_report = t0 + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if done(net) || now >= deadline {
            break;
        }
        while net.pending < c.max_pending {
            match h.retries.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            if let Some(Reverse((_, idx))) = h.retries.pop() {
                net.connect(idx, h);
            }
        }
        if now >= next_sample {
            peak = peak.max(sys::vm_rss(pid).unwrap_or(0));
            next_sample = now + Duration::from_millis(50);
        }
        if now >= next_reap {
            net.reap_timeouts(h);
            next_reap = now + Duration::from_millis(100);
        }
        if now >= next_report {
            eprintln!(
                "loadgen: storm: {} open, {} in progress, {} waiting to retry, {} refused (503)",
                net.open,
                net.pending,
                h.retries.len(),
                net.errors.busy
            );
            next_report = now + Duration::from_secs(1);
        }
        net.poll(Some(Duration::from_millis(20)), h).map_err(|e| e.to_string())?;
    }
    peak = peak.max(sys::vm_rss(pid).unwrap_or(0));
    Ok((t0.elapsed().as_secs_f64(), peak))
}

/// A phase: runs until `done`, timed, with the server's CPU over it.
fn phase(
    net: &mut Net,
    h: &mut StormH,
    c: &Common,
    pid: u32,
    done: impl FnMut(&Net) -> bool,
) -> Result<Took, String> {
    let cpu0 = sys::pid_cpu_secs(pid).unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs_f64(c.connect_timeout);
    let (secs, peak_rss) = run_until(net, h, c, pid, deadline, done)?;
    let cpu = sys::pid_cpu_secs(pid).unwrap_or(0.0) - cpu0;
    Ok(Took { secs, cpu, peak_rss })
}

fn settle(net: &mut Net, h: &mut StormH, c: &Common, pid: u32, secs: f64) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    run_until(net, h, c, pid, deadline, |_| false)?;
    sys::vm_rss(pid).ok_or_else(|| format!("cannot read VmRSS of pid {pid} (did it exit?)"))
}

/// The most and the mean messages a member received.
fn received(h: &StormH) -> (u32, f64) {
    let max = h.received.iter().copied().max().unwrap_or(0);
    let sum: u64 = h.received.iter().map(|&n| u64::from(n)).sum();
    (max, sum as f64 / h.received.len().max(1) as f64)
}

pub fn storm(c: Common, o: StormOpts) -> Result<String, String> {
    let n = o.conns;
    let pid = server_pid(&c, &o).ok_or("storm needs --pid or a readable --pid-file")?;
    let clock = crate::net::Clock::new();
    let t = &c.target;
    let mut net = Net::new(t.addr, &t.host, &t.path, clock).map_err(|e| e.to_string())?;
    net.tls = c.tls.clone();
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = since_epoch.map_or(0, |d| d.as_nanos() as u64) ^ u64::from(std::process::id());
    let mut h = StormH {
        retries: (0..n).map(|idx| Reverse((Instant::now(), idx))).collect(),
        attempts: vec![0; n],
        received: vec![0; n],
        coming_back: true,
        first_drop: None,
        retry_window: Duration::from_secs_f64(o.retry_window),
        rng: seed | 1,
    };
    let rss_before = sys::vm_rss(pid).ok_or_else(|| format!("cannot read VmRSS of pid {pid}"))?;
    let join = phase(&mut net, &mut h, &c, pid, |net| net.open == n)?;
    let joined = net.open;
    eprintln!("loadgen: storm: {joined} of {n} in after {:.2}s", join.secs);
    let rss_joined = settle(&mut net, &mut h, &c, pid, o.settle)?;
    let (join_max, join_mean) = received(&h);
    let busy_join = net.errors.busy;
    let errors_join = net.errors.total() - busy_join;
    let mut fields = vec![
        join.json("join"),
        format!(
            "\"joined\":{joined},\"rss_before\":{rss_before},\"rss_joined\":{rss_joined},\
             \"bytes_per_member\":{:.1},\"received_max\":{join_max},\"received_mean\":{join_mean:.2},\
             \"refused_join\":{busy_join},\"errors_join\":{errors_join}",
            (rss_joined as f64 - rss_before as f64) / joined.max(1) as f64
        ),
    ];
    let mut pid = pid;
    if o.restart {
        h.received.iter_mut().for_each(|r| *r = 0);
        if let Some(ready) = &o.ready_file {
            std::fs::write(ready, "in\n").map_err(|e| format!("{}: {e}", ready.display()))?;
        }
        // Until the first member is dropped (the old server going away), then until everyone is
        // back on the new one; the new server's CPU and peak VmRSS are all of its life so far.
        let deadline = Instant::now() + Duration::from_secs_f64(c.connect_timeout);
        run_until(&mut net, &mut h, &c, pid, deadline, |net| net.open < n)?;
        let dropped = h.first_drop.unwrap_or_else(Instant::now);
        let deadline = Instant::now() + Duration::from_secs_f64(c.connect_timeout);
        run_until(&mut net, &mut h, &c, pid, deadline, |net| net.open == n)?;
        let since_drop = dropped.elapsed().as_secs_f64();
        pid = server_pid(&c, &o).ok_or("no new server pid in --pid-file")?;
        let cpu = sys::pid_cpu_secs(pid).unwrap_or(0.0);
        let hwm = sys::vm_hwm(pid).unwrap_or(0);
        eprintln!("loadgen: storm: {} of {n} back {since_drop:.2}s after the drop", net.open);
        let rss_back = settle(&mut net, &mut h, &c, pid, o.settle)?;
        fields.push(format!(
            "\"back\":{},\"reconnect_s\":{since_drop:.3},\"reconnect_server_cpu_s\":{cpu:.3},\
             \"reconnect_peak_rss\":{hwm},\"rss_back\":{rss_back},\"refused_reconnect\":{}",
            net.open,
            net.errors.busy - busy_join
        ));
    }
    // Everyone leaves at once: a Close each, and the server's answer.
    h.coming_back = false;
    h.retries.clear();
    let open_before_leave = net.open;
    let rss_full = sys::vm_rss(pid).unwrap_or(0);
    for idx in 0..net.slots() {
        if let Some(Some(conn)) = net.conns.get_mut(idx)
            && conn.phase == Phase::Open
        {
            conn.queue_close();
            net.flush(idx, &mut h);
        }
    }
    let leave = phase(&mut net, &mut h, &c, pid, |net| net.open == 0)?;
    let rss_left = settle(&mut net, &mut h, &c, pid, o.settle)?;
    fields.push(leave.json("leave"));
    fields.push(format!(
        "\"left_from\":{open_before_leave},\"rss_full\":{rss_full},\"rss_left\":{rss_left},\
         \"errors\":{},\"error_detail\":{}",
        net.errors.total() - net.errors.busy,
        net.errors.json()
    ));
    Ok(format!(
        "{{\"mode\":\"storm\",\"url\":{},\"conns\":{n},\"max_pending\":{},{}}}",
        json_str(&c.target.url),
        c.max_pending,
        fields.join(",")
    ))
}
