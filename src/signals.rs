//! SIGINT and SIGTERM for the `rfc6455` command: a thread that waits for them with `sigwait`
//! and asks the event loop to shut down gracefully. A second signal exits at once.
//!
//! The signals are blocked in every thread (the mask is set before any other thread starts and
//! is inherited), so they are only ever taken by `sigwait` here: no handler runs in the middle
//! of the event loop.

use rfc6455::server::ShutdownHandle;

const SIG_BLOCK: i32 = 0;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// glibc's `sigset_t`: 1024 bits.
#[repr(C)]
struct SigSet([u64; 16]);

unsafe extern "C" {
    fn sigemptyset(set: *mut SigSet) -> i32;
    fn sigaddset(set: *mut SigSet, signal: i32) -> i32;
    fn pthread_sigmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigwait(set: *const SigSet, signal: *mut i32) -> i32;
}

/// The set {SIGINT, SIGTERM}, blocked in the calling thread (call before starting threads).
pub struct Signals(SigSet);

impl Signals {
    pub fn block() -> Signals {
        let mut set = SigSet([0; 16]);
        // SAFETY: `set` is a valid, writable sigset_t-sized buffer for each call; a null `old`
        // is allowed by pthread_sigmask.
        unsafe {
            sigemptyset(&mut set);
            sigaddset(&mut set, SIGINT);
            sigaddset(&mut set, SIGTERM);
            pthread_sigmask(SIG_BLOCK, &set, std::ptr::null_mut());
        }
        Signals(set)
    }

    /// Starts the thread that turns the first signal into a graceful shutdown.
    pub fn shut_down_on_signal(self, handle: ShutdownHandle) {
        std::thread::spawn(move || {
            let mut first = true;
            loop {
                let mut signal = 0;
                // SAFETY: the set was filled by `block`; `signal` is a valid out pointer.
                if unsafe { sigwait(&self.0, &mut signal) } != 0 {
                    return;
                }
                if !first {
                    eprintln!("rfc6455: second signal, exiting now");
                    std::process::exit(130);
                }
                first = false;
                eprintln!("rfc6455: signal {signal}: closing connections (1001), then exiting");
                handle.shutdown();
            }
        });
    }
}
