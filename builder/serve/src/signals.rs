//! SIGINT and SIGTERM as events: [`block`] them in the main thread before any other thread
//! starts (every thread inherits the mask, so no thread is interrupted), then [`wait`] for
//! one in a thread of its own, which stops the server. No signal handler runs, so nothing
//! async-signal-unsafe can happen in one.
//!
//! This module uses `unsafe` for two libc calls (`pthread_sigmask`, `sigwait`) that std does
//! not wrap; each takes pointers to a local `sigset_t` only.
#![allow(unsafe_code)]

use std::io;

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and modify the local set they are given.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigaddset(&mut s, libc::SIGINT);
        libc::sigaddset(&mut s, libc::SIGTERM);
        s
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts after).
pub fn block() -> io::Result<()> {
    let s = set();
    // SAFETY: a valid set and a null old-set pointer, as pthread_sigmask(3) allows.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Waits for SIGINT or SIGTERM (blocked with [`block`]); returns its name.
pub fn wait() -> io::Result<&'static str> {
    let s = set();
    let mut sig: libc::c_int = 0;
    // SAFETY: a valid set and a pointer to a local int, as sigwait(3) requires.
    let rc = unsafe { libc::sigwait(&s, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(if sig == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    })
}
