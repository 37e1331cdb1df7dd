//! The few libc calls the load generator needs (through the libc crate), and /proc.

use std::mem::MaybeUninit;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable `struct rlimit` that outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: `want` is a valid `struct rlimit` read by the call; raising the soft limit
        // up to the hard limit needs no privilege and cannot affect memory safety.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// This process's user + system CPU time, in seconds.
pub fn self_cpu_secs() -> f64 {
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the `struct rusage` it is given, which outlives the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: zero-initialised and then filled by getrusage: every field is a plain integer.
    let ru = unsafe { ru.assume_init() };
    let t = |tv: &libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(&ru.ru_utime) + t(&ru.ru_stime)
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
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
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

/// VmHWM (the largest VmRSS so far) of a process, in bytes.
pub fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
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
