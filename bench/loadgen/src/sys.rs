//! The few libc calls the load generator needs, declared by hand (no libc crate), and /proc.

use std::os::raw::{c_int, c_long};

#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

#[repr(C)]
struct Timeval {
    sec: c_long,
    usec: c_long,
}

/// `struct rusage` on Linux: two timevals then fourteen longs.
#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    rest: [c_long; 14],
}

const RLIMIT_NOFILE: c_int = 7;
const RUSAGE_SELF: c_int = 0;
const SC_CLK_TCK: c_int = 2;

unsafe extern "C" {
    fn getrlimit(resource: c_int, rlim: *mut Rlimit) -> c_int;
    fn setrlimit(resource: c_int, rlim: *const Rlimit) -> c_int;
    fn getrusage(who: c_int, usage: *mut Rusage) -> c_int;
    fn sysconf(name: c_int) -> c_long;
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
pub fn raise_nofile() -> u64 {
    let mut lim = Rlimit { cur: 0, max: 0 };
    // SAFETY: `lim` is a valid, writable `struct rlimit` (two rlim_t = u64 on Linux) that
    // outlives the call; RLIMIT_NOFILE is 7 on every Linux architecture we build for.
    if unsafe { getrlimit(RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.cur < lim.max {
        let want = Rlimit { cur: lim.max, max: lim.max };
        // SAFETY: `want` is a valid `struct rlimit` read by the call; raising the soft limit
        // up to the hard limit needs no privilege and cannot affect memory safety.
        if unsafe { setrlimit(RLIMIT_NOFILE, &want) } == 0 {
            return want.cur;
        }
    }
    lim.cur
}

/// This process's user + system CPU time, in seconds.
pub fn self_cpu_secs() -> f64 {
    let mut ru = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        rest: [0; 14],
    };
    // SAFETY: `ru` matches Linux's `struct rusage` layout (two `struct timeval` of two longs,
    // then fourteen longs), is writable and outlives the call.
    if unsafe { getrusage(RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let t = |tv: &Timeval| tv.sec as f64 + tv.usec as f64 / 1e6;
    t(&ru.utime) + t(&ru.stime)
}

/// Another process's user + system CPU time (all its threads), in seconds, from /proc.
pub fn pid_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After the name: state(3) ppid ... utime is field 14, stime 15 (1-based in proc(5)).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let tck = unsafe { sysconf(SC_CLK_TCK) };
    let tck = if tck > 0 { tck as f64 } else { 100.0 };
    Some((utime + stime) / tck)
}

/// VmRSS of a process, in bytes.
pub fn vm_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU use of this process and optionally of the server between two points in time.
pub struct CpuMeter {
    pid: Option<u32>,
    wall: std::time::Instant,
    me: f64,
    server: Option<f64>,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            pid,
            wall: std::time::Instant::now(),
            me: self_cpu_secs(),
            server: pid.and_then(pid_cpu_secs),
        }
    }

    /// `"loadgen_cpu":0.42,"server_cpu":0.57` (fractions of one core over the interval).
    pub fn json_fields(&self) -> String {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        let me = (self_cpu_secs() - self.me) / wall;
        let server = match (self.pid.and_then(pid_cpu_secs), self.server) {
            (Some(now), Some(then)) => format!("{:.3}", (now - then) / wall),
            _ => "null".into(),
        };
        format!("\"loadgen_cpu\":{me:.3},\"server_cpu\":{server}")
    }
}
