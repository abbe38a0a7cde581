//! Layer compression with both digests in one streaming pass, and a pigz-style parallel gzip.
//!
//! [`write_layer`] pipes [`crate::tar::write_tar`] through a SHA-256 of the uncompressed
//! stream (the `diff_id`), the compressor, and a SHA-256 of the compressed stream (the blob
//! digest) into any writer. Nothing holds the whole layer in memory beyond the tree itself.
//!
//! Gzip output is one gzip member with a fixed header (mtime 0, no name, XFL 0, OS 255),
//! produced by [`ParallelGzEncoder`]: the input is cut into [`GZIP_BLOCK_SIZE`] blocks, each
//! block is raw-deflated independently with the previous 32 KiB as preset dictionary and ends
//! with a sync flush (the last block with a final flush); CRC-32s of the blocks are combined.
//! Since block boundaries depend only on the input, the bytes are the same for any thread
//! count.

use crate::digest::{Digest, HashingWriter};
use crate::tar::write_tar;
use crate::{Error, FileTree, IoError, Result};
use flate2::{Compress, FlushCompress, Status};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// Size of the independently deflated gzip blocks. Part of the output format: changing it
/// changes every gzip digest.
pub const GZIP_BLOCK_SIZE: usize = 128 * 1024;
const DICT_SIZE: usize = 32 * 1024;

/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip layer.
pub const MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd layer.
pub const MEDIA_TYPE_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// Gzip (deflate level 0–9), the most widely accepted layer format.
    Gzip { level: u32 },
    /// Zstandard (level 1–22); smaller and faster, but not every runtime accepts it.
    Zstd { level: i32 },
}

impl Default for Compression {
    /// Gzip level 6, like `gzip -6`.
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_TAR,
            Compression::Gzip { .. } => MEDIA_TYPE_TAR_GZIP,
            Compression::Zstd { .. } => MEDIA_TYPE_TAR_ZSTD,
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Compression::Gzip { level } if level > 9 => Err(Error::InvalidOption(format!(
                "gzip level {level} is not in 0..=9"
            ))),
            Compression::Zstd { level } if !(1..=22).contains(&level) => Err(Error::InvalidOption(
                format!("zstd level {level} is not in 1..=22"),
            )),
            _ => Ok(()),
        }
    }
}

/// Options for [`write_layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// `SOURCE_DATE_EPOCH`: the mtime of entries without one, and the upper bound of all.
    pub source_date_epoch: u64,
    /// The compression.
    pub compression: Compression,
    /// Compression threads (gzip only; 0 or 1 compress on the calling thread). The output does
    /// not depend on it.
    pub threads: usize,
}

impl Default for LayerOptions {
    /// Epoch 0, gzip -6, one thread per available core.
    fn default() -> Self {
        LayerOptions {
            source_date_epoch: 0,
            compression: Compression::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// What [`write_layer`] produced: the facts an OCI manifest and config need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the blob as written (the manifest's layer digest).
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// The OCI media type of the blob.
    pub media_type: &'static str,
}

/// Writes `tree` as a deterministic tar layer, compressed as `opts` says, to `out`, and
/// returns its digests and sizes. `out` receives large sequential writes.
pub fn write_layer<W: Write>(tree: &FileTree, opts: &LayerOptions, out: W) -> Result<LayerBlob> {
    write_blob(opts, out, |tar| {
        write_tar(tree, opts.source_date_epoch, tar).map(|_| ())
    })
}

/// Compresses an existing tar stream (used verbatim, e.g. a root filesystem tarball) as a
/// layer, with the same digests and sizes as [`write_layer`]. The stream is never held whole.
pub fn write_tar_stream<R: Read, W: Write>(
    mut tar: R,
    opts: &LayerOptions,
    out: W,
) -> Result<LayerBlob> {
    write_blob(opts, out, |w| {
        std::io::copy(&mut tar, w).map_err(IoError::new("reading the tar stream"))?;
        Ok(())
    })
}

/// One streaming pass: `fill` writes the uncompressed tar; it is hashed (diff_id), compressed
/// and hashed again (blob digest) on its way to `out`.
fn write_blob<W: Write>(
    opts: &LayerOptions,
    out: W,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<LayerBlob> {
    opts.compression.validate()?;
    let blob = HashingWriter::new(BufWriter::with_capacity(256 * 1024, out));
    let enc = Encoder::new(opts.compression, opts.threads, blob)?;
    let mut tar = HashingWriter::new(enc);
    fill(&mut tar)?;
    let (enc, diff_id, uncompressed_size) = tar.finish();
    let blob = enc.finish().map_err(IoError::new("compressing layer"))?;
    let (mut out, digest, size) = blob.finish();
    out.flush().map_err(IoError::new("writing layer"))?;
    Ok(LayerBlob {
        diff_id,
        digest,
        size,
        uncompressed_size,
        media_type: opts.compression.media_type(),
    })
}

/// Writes the layer of `tree` into the content-addressed store under `root`, as
/// `root/blobs/sha256/<hex>` (mode 0644). The blob is written to a temporary file in the same
/// directory, synced, and renamed into place, so a reader never sees a partial blob.
pub fn write_layer_to_dir(tree: &FileTree, opts: &LayerOptions, root: &Path) -> Result<LayerBlob> {
    blob_to_dir(root, |out| write_layer(tree, opts, out))
}

/// [`write_tar_stream`] into the content-addressed store under `root`, like
/// [`write_layer_to_dir`].
pub fn write_tar_stream_to_dir<R: Read>(
    tar: R,
    opts: &LayerOptions,
    root: &Path,
) -> Result<LayerBlob> {
    blob_to_dir(root, |out| write_tar_stream(tar, opts, out))
}

fn blob_to_dir(
    root: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<LayerBlob>,
) -> Result<LayerBlob> {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("blobs").join("sha256");
    std::fs::create_dir_all(&dir).map_err(IoError::at("creating", &dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-layer-")
        .tempfile_in(&dir)
        .map_err(IoError::at("creating a temporary file in", &dir))?;
    let blob = write(tmp.as_file_mut())?;
    let file = tmp.as_file();
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(IoError::at("setting mode of", tmp.path()))?;
    file.sync_all()
        .map_err(IoError::at("syncing", tmp.path()))?;
    let dest = dir.join(blob.digest.hex());
    tmp.persist(&dest)
        .map_err(|e| IoError::at("renaming blob to", &dest)(e.error))?;
    Ok(blob)
}

/// Writes the layers of several trees with [`write_layer_to_dir`] concurrently, using
/// `opts.threads` threads in total (several layers at a time, each with fewer compression
/// threads; the bytes do not change). Results are in the order of `trees`.
pub fn compress_layers_parallel(
    trees: &[&FileTree],
    opts: &LayerOptions,
    root: &Path,
) -> Result<Vec<LayerBlob>> {
    let threads = opts.threads.max(1);
    let workers = threads.min(trees.len()).max(1);
    let per_layer = LayerOptions {
        threads: (threads / workers).max(1),
        ..opts.clone()
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<LayerBlob>>>> =
        Mutex::new(trees.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(tree) = trees.get(i) else { break };
                let r = write_layer_to_dir(tree, &per_layer, root);
                if let Ok(mut slots) = results.lock() {
                    slots[i] = Some(r);
                }
            });
        }
    });
    let slots = results
        .into_inner()
        .map_err(|_| Error::Compress("a layer thread panicked".into()))?;
    slots
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Compress("a layer thread panicked".into()))))
        .collect()
}

/// The compressor stage of [`write_layer`].
enum Encoder<W: Write> {
    None(W),
    Gzip(Box<ParallelGzEncoder<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(c: Compression, threads: usize, out: W) -> Result<Self> {
        Ok(match c {
            Compression::None => Encoder::None(out),
            Compression::Gzip { level } => {
                Encoder::Gzip(Box::new(ParallelGzEncoder::new(out, level, threads)))
            }
            Compression::Zstd { level } => Encoder::Zstd(
                zstd::stream::write::Encoder::new(out, level)
                    .map_err(|e| Error::Compress(format!("starting zstd: {e}")))?,
            ),
        })
    }
    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        // Flushing a compressor mid-stream would change the bytes; only the sink is flushed.
        Ok(())
    }
}

/// One block to deflate.
struct Job {
    seq: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

/// A deflated block and the CRC-32 of its input.
struct Done {
    seq: u64,
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
    /// The input buffer, handed back for reuse.
    data: Vec<u8>,
}

struct Workers {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<std::result::Result<Done, String>>,
    handles: Vec<JoinHandle<()>>,
    in_flight: usize,
    max_in_flight: usize,
}

/// A streaming gzip encoder that deflates fixed-size blocks on worker threads, pigz-style.
/// Output bytes depend only on the input and the level, never on the thread count.
pub struct ParallelGzEncoder<W: Write> {
    out: W,
    level: u32,
    buf: Vec<u8>,
    dict: Vec<u8>,
    next_seq: u64,
    next_write: u64,
    pending: BTreeMap<u64, Done>,
    crc: crc32fast::Hasher,
    total_in: u64,
    header_written: bool,
    workers: Option<Workers>,
    spare: Vec<Vec<u8>>,
}

impl<W: Write> fmt::Debug for ParallelGzEncoder<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelGzEncoder")
            .field("level", &self.level)
            .field("total_in", &self.total_in)
            .field(
                "threads",
                &self.workers.as_ref().map_or(1, |w| w.handles.len()),
            )
            .finish_non_exhaustive()
    }
}

/// The fixed gzip header: deflate, no flags, mtime 0, XFL 0, OS 255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl<W: Write> ParallelGzEncoder<W> {
    /// A new encoder at deflate `level` (clamped to 9) using `threads` worker threads
    /// (0 or 1: compress on the calling thread).
    pub fn new(out: W, level: u32, threads: usize) -> Self {
        let level = level.min(9);
        let workers = (threads > 1).then(|| spawn_workers(level, threads));
        ParallelGzEncoder {
            out,
            level,
            buf: Vec::with_capacity(GZIP_BLOCK_SIZE),
            dict: Vec::new(),
            next_seq: 0,
            next_write: 0,
            pending: BTreeMap::new(),
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            header_written: false,
            workers,
            spare: Vec::new(),
        }
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(
            &mut self.buf,
            self.spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(GZIP_BLOCK_SIZE)),
        );
        let dict = std::mem::take(&mut self.dict);
        // The next block's dictionary: the last 32 KiB of everything so far.
        self.dict = if data.len() >= DICT_SIZE {
            data[data.len() - DICT_SIZE..].to_vec()
        } else {
            let mut d = dict.clone();
            d.extend_from_slice(&data);
            d[d.len().saturating_sub(DICT_SIZE)..].to_vec()
        };
        let job = Job {
            seq: self.next_seq,
            dict,
            data,
            last,
        };
        self.next_seq += 1;
        match &mut self.workers {
            None => {
                let done = deflate_block(self.level, job).map_err(io::Error::other)?;
                self.pending.insert(done.seq, done);
            }
            Some(w) => {
                while w.in_flight >= w.max_in_flight {
                    let done = recv(w)?;
                    self.pending.insert(done.seq, done);
                }
                w.jobs
                    .as_ref()
                    .ok_or_else(|| io::Error::other("gzip workers are gone"))?
                    .send(job)
                    .map_err(|_| io::Error::other("gzip worker thread died"))?;
                w.in_flight += 1;
            }
        }
        self.drain()
    }

    /// Writes completed blocks in order.
    fn drain(&mut self) -> io::Result<()> {
        while let Some(done) = self.pending.remove(&self.next_write) {
            if !self.header_written {
                self.out.write_all(&GZIP_HEADER)?;
                self.header_written = true;
            }
            self.out.write_all(&done.deflated)?;
            self.crc.combine(&done.crc);
            self.next_write += 1;
            let mut data = done.data;
            data.clear();
            self.spare.push(data);
        }
        Ok(())
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        if let Some(w) = &mut self.workers {
            while w.in_flight > 0 {
                let done = recv(w)?;
                self.pending.insert(done.seq, done);
            }
        }
        self.drain()?;
        if self.next_write != self.next_seq {
            return Err(io::Error::other("gzip block went missing"));
        }
        if let Some(mut w) = self.workers.take() {
            w.jobs = None;
            for h in w.handles.drain(..) {
                h.join()
                    .map_err(|_| io::Error::other("gzip worker thread panicked"))?;
            }
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        // ISIZE is the input size modulo 2^32 (RFC 1952).
        self.out
            .write_all(&((self.total_in & 0xffff_ffff) as u32).to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let room = GZIP_BLOCK_SIZE - self.buf.len();
            let take = room.min(buf.len());
            self.buf.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            self.total_in += take as u64;
            if self.buf.len() == GZIP_BLOCK_SIZE {
                self.submit(false)?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        // A mid-stream flush would move block boundaries; only the sink is flushed.
        self.out.flush()
    }
}

fn recv(w: &mut Workers) -> io::Result<Done> {
    let r = w
        .done
        .recv()
        .map_err(|_| io::Error::other("gzip worker thread died"))?;
    w.in_flight -= 1;
    r.map_err(io::Error::other)
}

fn spawn_workers(level: u32, threads: usize) -> Workers {
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let handles = (0..threads)
        .map(|_| {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            std::thread::spawn(move || loop {
                let job = match job_rx.lock() {
                    Ok(rx) => match rx.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    },
                    Err(_) => return,
                };
                if done_tx.send(deflate_block(level, job)).is_err() {
                    return;
                }
            })
        })
        .collect();
    Workers {
        jobs: Some(job_tx),
        done: done_rx,
        handles,
        in_flight: 0,
        max_in_flight: threads * 2,
    }
}

/// Raw-deflates one block primed with `dict`, ending with a sync flush (or the final block).
///
/// Every block gets a fresh compressor: `Compress::reset` keeps the old window bytes, and
/// deflate's match search peeks past the end of the input, so a reused compressor's output
/// depends on what it compressed before (and thus on which worker got the block).
fn deflate_block(level: u32, job: Job) -> std::result::Result<Done, String> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    let out = deflate_block_inner(&mut c, &job)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&job.data);
    Ok(Done {
        seq: job.seq,
        deflated: out,
        crc,
        data: job.data,
    })
}

fn deflate_block_inner(c: &mut Compress, job: &Job) -> std::result::Result<Vec<u8>, String> {
    if !job.dict.is_empty() {
        c.set_dictionary(&job.dict)
            .map_err(|e| format!("setting deflate dictionary: {e}"))?;
    }
    let data = &job.data;
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 1024);
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let start = c.total_in();
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = (c.total_in() - start) as usize;
        let room_before = out.capacity() - out.len();
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(|e| format!("deflate: {e}"))?;
        let consumed = (c.total_in() - start) as usize;
        let room_left = out.capacity() - out.len();
        match status {
            Status::StreamEnd => break,
            // zlib's contract: a flush is complete once output space is left over.
            _ if !job.last && consumed == data.len() && room_left > 0 => break,
            Status::BufError if room_left == room_before && !job.last => break,
            Status::BufError if room_left == room_before => {
                return Err("deflate made no progress".into())
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(n: usize) -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if (i / 1000) % 3 == 0 {
                    b"the quick brown fox "[i % 20]
                } else {
                    (x >> 24) as u8 & 0x3f
                }
            })
            .collect()
    }

    fn gz(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut e = ParallelGzEncoder::new(Vec::new(), 6, threads);
        for c in data.chunks(chunk.max(1)) {
            e.write_all(c).unwrap();
        }
        e.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn gzip_round_trips_and_ignores_thread_count() {
        for len in [
            0,
            1,
            DICT_SIZE - 1,
            GZIP_BLOCK_SIZE,
            GZIP_BLOCK_SIZE + 1,
            3 * GZIP_BLOCK_SIZE + 777,
        ] {
            let data = sample(len);
            let one = gz(&data, 1, 4096);
            assert_eq!(gunzip(&one), data, "len {len}");
            assert_eq!(gz(&data, 2, 999), one, "len {len}, 2 threads");
            assert_eq!(gz(&data, 5, 1 << 20), one, "len {len}, 5 threads");
            assert_eq!(&one[..10], &GZIP_HEADER);
        }
    }

    #[test]
    fn gzip_size_is_close_to_single_stream_deflate() {
        let data = sample(2 << 20);
        let ours = gz(&data, 2, 65536).len();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&data).unwrap();
        let reference = e.finish().unwrap().len();
        assert!(
            (ours as f64) < reference as f64 * 1.02,
            "ours {ours} vs single stream {reference}"
        );
    }

    #[test]
    fn bad_levels_are_rejected() {
        let t = FileTree::new();
        for c in [
            Compression::Gzip { level: 10 },
            Compression::Zstd { level: 0 },
        ] {
            let opts = LayerOptions {
                compression: c,
                ..Default::default()
            };
            assert!(matches!(
                write_layer(&t, &opts, Vec::new()),
                Err(Error::InvalidOption(_))
            ));
        }
    }
}
