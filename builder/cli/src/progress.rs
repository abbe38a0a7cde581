//! Progress display for long transfers: one updating line per blob on a terminal, plain lines
//! otherwise (logs, CI).

use std::io::{IsTerminal, Write};

use kiln_layers::Digest;
use kiln_oci::registry::{Progress, ProgressEvent};

/// Draws push/pull progress on stderr.
pub struct Bars {
    tty: bool,
    size: u64,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            tty: std::io::stderr().is_terminal(),
            size: 0,
        }
    }

    /// Ends an unfinished terminal line.
    pub fn finish(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn short(digest: &Digest) -> String {
    digest.hex()[..12].to_string()
}

impl Progress for Bars {
    fn on_event(&mut self, event: &ProgressEvent<'_>) {
        match event {
            ProgressEvent::BlobStarted { digest, size } => {
                self.size = *size;
                if !self.tty {
                    eprintln!("  blob {} ({size} bytes)", short(digest));
                }
            }
            ProgressEvent::BlobBytes { digest, done, .. } if self.tty => {
                let pct = (done * 100).checked_div(self.size).unwrap_or(100).min(100);
                let filled = (pct / 5) as usize;
                eprint!(
                    "\r  {} [{:<20}] {pct:>3}% {done}/{}",
                    short(digest),
                    "#".repeat(filled),
                    self.size
                );
                let _ = std::io::stderr().flush();
            }
            _ => {}
        }
    }
}
