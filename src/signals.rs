//! SIGINT and SIGTERM for the `rfc6455` command: a thread that waits for them with `sigwait`
//! and asks the event loop to shut down gracefully (the client: to close with 1001). A second
//! signal exits at once.
//!
//! The signals are blocked in every thread (the mask is set before any other thread starts and
//! is inherited), so they are only ever taken by `sigwait` here: no handler runs in the middle
//! of the event loop.

use rfc6455::server::ServerHandle;
use std::mem::MaybeUninit;

/// The set {SIGINT, SIGTERM}, blocked in the calling thread (call before starting threads).
pub struct Signals(libc::sigset_t);

impl Signals {
    pub fn block() -> Signals {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given; sigaddset and pthread_sigmask
        // take that initialised set; a null `old` set is allowed by pthread_sigmask.
        let set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            let mut set = set.assume_init();
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        Signals(set)
    }

    /// Starts the thread that turns the first signal into a graceful shutdown.
    pub fn shut_down_on_signal(self, handle: ServerHandle) {
        self.on_signal(move |signal| {
            eprintln!("rfc6455: signal {signal}: closing connections (1001), then exiting");
            handle.shutdown();
        });
    }

    /// Starts the thread that calls `first` on the first signal, and exits on the second.
    pub fn on_signal(self, mut first_signal: impl FnMut(i32) + Send + 'static) {
        std::thread::spawn(move || {
            let mut first = true;
            loop {
                let mut signal = 0;
                // SAFETY: the set was filled by `block`; `signal` is a valid out pointer.
                if unsafe { libc::sigwait(&self.0, &mut signal) } != 0 {
                    return;
                }
                if !first {
                    eprintln!("rfc6455: second signal, exiting now");
                    std::process::exit(130);
                }
                first = false;
                first_signal(signal);
            }
        });
    }
}
