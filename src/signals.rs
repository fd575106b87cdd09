//! SIGTERM and SIGINT without signal handlers: both are blocked in every
//! thread and one thread takes them with `sigwait`, so shutdown runs as
//! ordinary code instead of inside an async-signal context.

use std::io;
use std::mem::MaybeUninit;

/// The termination signals, blocked.
pub struct Termination {
    set: libc::sigset_t,
}

/// Blocks SIGTERM and SIGINT in the calling thread and in every thread it
/// starts afterwards (the mask is inherited). Call it first, before any
/// thread exists.
pub fn block_termination() -> io::Result<Termination> {
    // SAFETY: sigemptyset initialises the set before it is read; the libc
    // calls only read and write the set we own.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        let mut set = set.assume_init();
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
            0 => Ok(Termination { set }),
            code => Err(io::Error::from_raw_os_error(code)),
        }
    }
}

impl Termination {
    /// Waits for SIGTERM or SIGINT; returns its name.
    pub fn wait(&self) -> &'static str {
        loop {
            let mut signal = 0;
            // SAFETY: the set was initialised by block_termination.
            if unsafe { libc::sigwait(&self.set, &mut signal) } == 0 {
                return if signal == libc::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
            }
        }
    }
}
