//! Taking connections in and reading their request heads, in one thread that never blocks on
//! a client: the listener and every connection whose head has not arrived whole sit in one
//! `poll(2)` set. A client that sends nothing, or one byte at a time, costs one descriptor and
//! a few bytes of buffer until its **deadline** — a fixed time from its accept for the whole
//! head, which no trickle of bytes extends — and never a thread. A head that has arrived whole
//! is handed on ([`Head`]) to be answered on a thread of its own.
//!
//! Caps, each answered at once (`503`) so that nobody waits behind them:
//! - per peer address ([`Limits::per_peer`]), so one address cannot take every slot;
//! - in all ([`Limits::max_connections`], bounded by the descriptor limit); at this cap the
//!   oldest connection still sending its head is dropped to make room, so a flood from many
//!   addresses delays a prompt client by at most the flood's own turnover, never by the
//!   head deadline.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::http::{self, BadRequest, Request};
use crate::Limits;

/// Longest a `poll` sleeps with nothing due, so a stop request is never missed for long even
/// if its wake-up connection is lost.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Connections taken from the kernel's queue per turn of the loop.
const ACCEPT_BATCH: usize = 256;

/// Connections held, per peer address and in all.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    inner: Mutex<PeerCounts>,
}

#[derive(Debug, Default)]
struct PeerCounts {
    by_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Its address holds `per_peer` connections already.
    Peer,
    /// `max_connections` are held.
    All,
}

/// One held connection; counted until dropped (when its connection closes).
#[derive(Debug)]
pub(crate) struct Slot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    fn counts(&self) -> std::sync::MutexGuard<'_, PeerCounts> {
        // The counts stay consistent even if a holder panicked: take them as they are.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a connection from `ip`, unless a cap is reached.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Slot, Full> {
        let mut c = self.counts();
        let n = c.by_ip.get(&ip).copied().unwrap_or(0);
        if n >= limits.per_peer {
            return Err(Full::Peer);
        }
        if c.total >= limits.max_connections {
            return Err(Full::All);
        }
        c.by_ip.insert(ip, n + 1);
        c.total += 1;
        Ok(Slot {
            peers: self.clone(),
            ip,
        })
    }

    /// Connections held in all.
    pub(crate) fn total(&self) -> usize {
        self.counts().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.peers.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

/// A connection whose request head has arrived whole (or was refused as malformed).
#[derive(Debug)]
pub(crate) struct Head {
    /// In blocking mode again.
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Held until the connection is done with.
    pub slot: Slot,
    pub request: Result<Request, BadRequest>,
}

/// A connection still sending its head.
struct Pending {
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    buf: Vec<u8>,
    deadline: Instant,
}

/// What became of a pending connection in one turn.
enum Turn {
    /// Still sending its head.
    Waiting,
    /// Its head ends at this index of its buffer.
    Whole(usize),
    /// Closed (or failed) before sending anything: nothing to answer or log.
    Gone,
    /// Refused with this status and reason.
    Refused(u16, String),
}

/// Runs the accept loop on `listener` until `stop` is set: takes connections in, reads their
/// heads within `limits`, and hands each whole head to `ready`. Connections refused or timed
/// out are answered here and logged through `log`.
pub(crate) fn run(
    listener: &TcpListener,
    stop: &AtomicBool,
    limits: &Limits,
    log: &dyn Fn(&str),
    ready: &mut dyn FnMut(Head),
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let peers = Arc::new(Peers::default());
    let mut pending: Vec<Pending> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut out_of_fds_logged: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let wait = pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(IDLE_POLL)
            .min(IDLE_POLL);
        let revents: Vec<PollFlags> = {
            let mut fds = Vec::with_capacity(pending.len() + 1);
            fds.push(PollFd::new(listener, PollFlags::IN));
            fds.extend(
                pending
                    .iter()
                    .map(|p| PollFd::new(&p.stream, PollFlags::IN)),
            );
            // Rounded up to a millisecond so a deadline due in microseconds does not spin.
            let wait = Timespec::try_from(wait.max(Duration::from_millis(1))).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            match poll(&mut fds, Some(&wait)) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                // The kernel is short of memory for the poll set: wait, then try again.
                Err(Errno::NOMEM) => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            fds.iter().map(PollFd::revents).collect()
        };
        let now = Instant::now();
        // Back to front, so that swap_remove only moves entries already looked at.
        for i in (0..pending.len()).rev() {
            let p = &mut pending[i];
            let mut turn = if revents[i + 1].is_empty() {
                Turn::Waiting
            } else {
                read_head(p, &mut chunk)
            };
            if matches!(turn, Turn::Waiting) && p.deadline <= now {
                turn = Turn::Refused(
                    408,
                    format!(
                        "no whole request head within {} s",
                        limits.head_timeout.as_secs_f64()
                    ),
                );
            }
            match turn {
                Turn::Waiting => {}
                Turn::Gone => drop(pending.swap_remove(i)),
                Turn::Refused(status, why) => {
                    let p = pending.swap_remove(i);
                    refuse(&p.stream, p.peer, status, &why, log);
                }
                Turn::Whole(end) => {
                    let p = pending.swap_remove(i);
                    let request = http::parse_request(&p.buf[..end]);
                    if p.stream.set_nonblocking(false).is_ok() {
                        ready(Head {
                            stream: p.stream,
                            peer: p.peer,
                            slot: p.slot,
                            request,
                        });
                    }
                }
            }
        }
        if revents[0].is_empty() {
            continue;
        }
        // In batches, so that a flood of new connections cannot keep the loop from the heads
        // already waiting; the rest are taken on the next turn.
        for _ in 0..ACCEPT_BATCH {
            match listener.accept() {
                Ok((stream, peer)) => admit(stream, peer, &peers, &mut pending, limits, log),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_out_of_fds(&e) => {
                    // Out of descriptors: the connection waits in the kernel's queue. Free
                    // one by dropping the oldest slow head, or else wait a moment for answers
                    // in flight to finish (the listener stays readable, so without the pause
                    // the loop would spin).
                    if let Some(i) = oldest(&pending) {
                        let p = pending.swap_remove(i);
                        refuse(&p.stream, p.peer, 503, "out of file descriptors", log);
                    } else {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let quiet =
                        out_of_fds_logged.is_some_and(|t| t.elapsed() < Duration::from_secs(10));
                    if !quiet {
                        log(&format!(
                            "kiln serve: accepting: {e} (in use: {} connections)",
                            peers.total()
                        ));
                        out_of_fds_logged = Some(Instant::now());
                    }
                    break;
                }
                // The peer gave up before the accept (ECONNABORTED) and the like.
                Err(_) => continue,
            }
        }
    }
    Ok(())
}

fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

/// The pending connection accepted first (its deadline is the earliest).
fn oldest(pending: &[Pending]) -> Option<usize> {
    (0..pending.len()).min_by_key(|i| pending[*i].deadline)
}

/// Takes a new connection in, or refuses it at once when a cap is reached.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    peers: &Arc<Peers>,
    pending: &mut Vec<Pending>,
    limits: &Limits,
    log: &dyn Fn(&str),
) {
    let ip = peer.ip().to_canonical();
    let slot = match peers.acquire(ip, limits) {
        Err(Full::All) => {
            // Room for a new client at the expense of the slowest head, if there is one.
            match oldest(pending) {
                Some(i) => {
                    let p = pending.swap_remove(i);
                    refuse(
                        &p.stream,
                        p.peer,
                        503,
                        "dropped for a newer connection: the server holds its maximum",
                        log,
                    );
                    drop(p);
                    peers.acquire(ip, limits)
                }
                None => Err(Full::All),
            }
        }
        r => r,
    };
    match slot {
        Ok(slot) => {
            if stream.set_nonblocking(true).is_err() {
                return;
            }
            pending.push(Pending {
                stream,
                peer,
                slot,
                buf: Vec::new(),
                deadline: Instant::now() + limits.head_timeout,
            });
        }
        Err(Full::Peer) => refuse(
            &stream,
            peer,
            503,
            &format!("this address holds {} connections already", limits.per_peer),
            log,
        ),
        Err(Full::All) => refuse(
            &stream,
            peer,
            503,
            &format!(
                "the server holds its maximum of {} connections",
                limits.max_connections
            ),
            log,
        ),
    }
}

/// Reads what `p` has sent (without blocking) and says what became of it.
fn read_head(p: &mut Pending, chunk: &mut [u8]) -> Turn {
    loop {
        match p.stream.read(chunk) {
            Ok(0) => {
                // Closed: before a request line (a port check, the stop handle's wake-up)
                // is no request at all.
                return if p.buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                    Turn::Gone
                } else {
                    Turn::Refused(400, "incomplete request head".into())
                };
            }
            Ok(n) => {
                p.buf.extend_from_slice(&chunk[..n]);
                // A head ends with a newline: only new bytes holding one can complete it.
                if chunk[..n].contains(&b'\n') {
                    if let Some(end) = http::head_end(&p.buf) {
                        return Turn::Whole(end);
                    }
                }
                if p.buf.len() > http::MAX_HEAD {
                    return Turn::Refused(400, "request head too large".into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Turn::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Turn::Gone,
        }
    }
}

/// Answers `status` with `why` (best effort: the socket is non-blocking and the reply fits in
/// its empty send buffer) and logs it; the connection closes when `stream` is dropped.
fn refuse(mut stream: &TcpStream, peer: SocketAddr, status: u16, why: &str, log: &dyn Fn(&str)) {
    let body = format!("{why}\n");
    let retry = if status == 503 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{retry}Connection: close\r\nServer: kiln\r\n\r\n{body}",
            http::reason(status),
            body.len()
        )
        .as_bytes(),
    );
    log(&format!(
        "- - {status} 0 {} ({})",
        http::log_escape(&peer.to_string()),
        why
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_per_address_and_in_all() {
        let limits = Limits {
            per_peer: 2,
            max_connections: 3,
            ..Limits::default()
        };
        let peers = Arc::new(Peers::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = peers.acquire(a, &limits).ok();
        let a2 = peers.acquire(a, &limits).ok();
        assert!(a1.is_some() && a2.is_some());
        assert_eq!(peers.acquire(a, &limits).err(), Some(Full::Peer));
        let b1 = peers.acquire(b, &limits).ok();
        assert!(b1.is_some());
        assert_eq!(peers.acquire(b, &limits).err(), Some(Full::All));
        drop(a1);
        assert_eq!(peers.total(), 2);
        assert!(
            peers.acquire(b, &limits).is_ok(),
            "a freed slot is free again"
        );
        drop((a2, b1));
        assert_eq!(peers.total(), 0);
    }
}
