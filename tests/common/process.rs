//! The `rfc6455` binary run as a child process, for what needs a process of its own: its
//! memory (RSS from /proc), its descriptor limit, its CPU time, and signals.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Runs `rfc6455 <args> --listen 127.0.0.1:0` (under a descriptor limit if given) and waits
    /// for the address it prints.
    pub fn start(args: &[&str], fd_limit: Option<u32>) -> Process {
        Process::start_program(env!("CARGO_BIN_EXE_rfc6455"), args, fd_limit)
    }

    /// Runs the example `name` of this package (building it first if `cargo test` did not),
    /// with `<args> --listen 127.0.0.1:0`, and waits for the address it prints.
    pub fn start_example(name: &str, args: &[&str]) -> Process {
        let path = example_path(name);
        Process::start_program(path.to_str().unwrap(), args, None)
    }

    pub fn start_program(bin: &str, args: &[&str], fd_limit: Option<u32>) -> Process {
        let mut command = match fd_limit {
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\"")).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        command.args(args).args(["--listen", "127.0.0.1:0"]);
        let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let line = lines.next().expect("a banner line").unwrap();
        // "rfc6455 echo listening on ws://127.0.0.1:PORT/" or "... open http://127.0.0.1:PORT/"
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|host_port| host_port.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        // Keep draining stderr so the child never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Process { child, addr }
    }

    /// Resident anonymous memory, in bytes: the heap, stacks and buffers the server allocated.
    /// Not VmRSS, which also counts the pages of the binary's code as they are first run: a
    /// build with more features has more of them, and a test's first connections fault in
    /// over a MiB of code that is not memory the server took.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon");
        kb * 1024
    }

    /// User plus system CPU time so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the ")" that ends the command name; utime and stime are fields 14, 15.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // The kernel's USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// Sends a signal with kill(1).
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.unwrap().success());
    }

    /// Waits for the process to exit, up to `limit`; returns how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many bytes wait unread in the receive queue of the loopback TCP socket whose local port
/// is `local` and remote port is `remote` (from /proc/net/tcp), if there is one.
pub fn unread_bytes(local: u16, remote: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port =
        |address: &str| address.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (&local_address, &remote_address, &queues) =
            (fields.get(1)?, fields.get(2)?, fields.get(4)?);
        if port(local_address)? != local || port(remote_address)? != remote {
            return None;
        }
        let (_, rx) = queues.split_once(':')?;
        u64::from_str_radix(rx, 16).ok()
    })
}

/// The example `name` of this package, built (or found up to date) by cargo first: `cargo test
/// --test examples` alone does not build examples, and a stale one would be tested otherwise.
pub fn example_path(name: &str) -> std::path::PathBuf {
    // Examples land in `examples/` beside the package's binaries, in the same profile.
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_rfc6455")).parent().unwrap();
    let release = bin_dir.ends_with("release");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "--example", name]).current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cargo.arg("--release");
    }
    #[cfg(not(feature = "deflate"))]
    cargo.arg("--no-default-features");
    assert!(cargo.status().unwrap().success(), "cargo build --example {name}");
    bin_dir.join("examples").join(name)
}
