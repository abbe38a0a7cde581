//! [`IoError`]: the one shape of an I/O error with context, shared by every crate of kiln.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// An I/O error with what was being done and, when there is one, the path it was done to.
///
/// It reads `"{action} {path}: {source}"` (the path shown with [`Path::display`]), or
/// `"{action}: {source}"` without a path. `source()` returns the [`io::Error`], so a chain of
/// causes still reaches it (the CLI looks there for a full disk). Every crate's error enum
/// carries it as `#[error(transparent)] Io(#[from] IoError)`, and call sites build it with
/// [`IoError::at`] or [`IoError::new`]:
///
/// ```
/// use kiln_layers::IoError;
///
/// let e = std::fs::read("/nonexistent/x").map_err(IoError::at("reading", "/nonexistent/x"));
/// assert!(e.unwrap_err().to_string().starts_with("reading /nonexistent/x: "));
/// let e = IoError::new("writing layer")(std::io::Error::other("broken pipe"));
/// assert_eq!(e.to_string(), "writing layer: broken pipe");
/// ```
///
/// [`Path::display`]: std::path::Path::display
#[derive(Debug, thiserror::Error)]
pub struct IoError {
    /// What was being done, lowercase ("reading", "writing blob", "creating archives/").
    pub action: Cow<'static, str>,
    /// The path it was done to; `None` for streams, sockets and paths already in `action`.
    pub path: Option<PathBuf>,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{} {}: {}", self.action, path.display(), self.source),
            None => write!(f, "{}: {}", self.action, self.source),
        }
    }
}

impl IoError {
    /// A closure for `map_err` that wraps an I/O error of `action` on `path`
    /// (`"{action} {path}: {source}"`).
    pub fn at(
        action: impl Into<Cow<'static, str>>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> IoError {
        let action = action.into();
        let path = path.into();
        move |source| IoError {
            action,
            path: Some(path),
            source,
        }
    }

    /// A closure for `map_err` that wraps an I/O error of `action`, without a path
    /// (`"{action}: {source}"`).
    pub fn new(action: impl Into<Cow<'static, str>>) -> impl FnOnce(io::Error) -> IoError {
        let action = action.into();
        move |source| IoError {
            action,
            path: None,
            source,
        }
    }

    /// Whether the disk (or the quota) is full: `ENOSPC` or `EDQUOT`. Nothing but space helps
    /// then, no retry and no other source.
    pub fn is_disk_full(&self) -> bool {
        says_disk_full(&self.source)
    }

    /// The first [`io::Error`] in `err`'s chain of causes (`err` included) that says the disk
    /// (or the quota) is full, as [`IoError::is_disk_full`] does.
    pub fn find_disk_full<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
        let mut cause = Some(err);
        while let Some(e) = cause {
            if let Some(io) = e
                .downcast_ref::<io::Error>()
                .filter(|io| says_disk_full(io))
            {
                return Some(io);
            }
            cause = e.source();
        }
        None
    }
}

fn says_disk_full(e: &io::Error) -> bool {
    let full = [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT].map(|e| e.raw_os_error());
    e.raw_os_error().is_some_and(|c| full.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_the_two_shapes() {
        let e = IoError::at("reading", "/a b/c")(io::Error::other("boom"));
        assert_eq!(e.to_string(), "reading /a b/c: boom");
        let e = IoError::new(format!("writing {}", "x"))(io::Error::other("boom"));
        assert_eq!(e.to_string(), "writing x: boom");
    }

    #[test]
    fn the_chain_reaches_the_io_error() {
        let e = IoError::at("writing", "/x")(io::Error::from_raw_os_error(
            rustix::io::Errno::NOSPC.raw_os_error(),
        ));
        assert!(e.is_disk_full());
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<io::Error>().is_some());
        assert!(IoError::find_disk_full(&e).is_some());
        let other = IoError::new("reading")(io::Error::other("boom"));
        assert!(!other.is_disk_full());
        assert!(IoError::find_disk_full(&other).is_none());
    }
}
