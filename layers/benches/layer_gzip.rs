//! Layer writing throughput against `tar | gzip -6` and `tar | pigz -6 -p 2`.
//!
//! Builds a deterministic ~500 MB tree (text-like, code-like and incompressible files), writes
//! it as a gzip layer with kiln-layers (2 threads), materialises the same tree in a temporary
//! directory and pipes GNU tar through gzip and pigz. Prints a markdown table.
//!
//! `cargo bench -p kiln-layers --bench layer_gzip` (`KILN_BENCH_MB=100` for a quicker run,
//! `KILN_BENCH_ONE_THREAD=1` to add a single-threaded gzip row).

use kiln_layers::{
    extract_to_dir, write_layer, write_tar, Compression, Entry, FileTree, LayerOptions,
};
use sha2::{Digest as _, Sha256};
use std::error::Error;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Pseudo words built from syllables, with a skewed (Zipf-like) choice: text-like data.
fn text(rng: &mut Rng, vocab: &[String], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut col = 0;
    while out.len() < len {
        let r = rng.next();
        // Square the uniform draw to favour frequent words.
        let u = (r >> 40) as f64 / (1u64 << 24) as f64;
        let w = &vocab[((u * u) * vocab.len() as f64) as usize];
        out.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        match r & 31 {
            0 => out.extend_from_slice(format!("={}", (r >> 8) % 100_000).as_bytes()),
            1 => out.extend_from_slice(b"."),
            2 => out.extend_from_slice(b":"),
            _ => {}
        }
        if col > 60 + (r >> 58) as usize {
            out.push(b'\n');
            col = 0;
        } else {
            out.push(b' ');
        }
    }
    out.truncate(len);
    out
}

/// Machine-code-like bytes: a skewed opcode alphabet, small little-endian offsets, zero runs.
fn code(rng: &mut Rng, len: usize) -> Vec<u8> {
    const OPS: &[u8] = &[
        0x48, 0x89, 0x8b, 0xe8, 0xc3, 0x0f, 0x85, 0x84, 0x74, 0x75, 0x31, 0xc0, 0x41, 0x5d, 0x55,
        0xff, 0x83, 0xc4, 0x24, 0x44,
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let r = rng.next();
        match r & 7 {
            0..=3 => out.push(OPS[((r >> 8) % OPS.len() as u64) as usize]),
            4 | 5 => out.extend_from_slice(&(((r >> 16) % 4096) as u32).to_le_bytes()),
            6 => out.push((r >> 24) as u8),
            _ => out.resize(out.len() + ((r >> 32) % 24) as usize, 0),
        }
    }
    out.truncate(len);
    out
}

fn random(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn build_tree(target: usize) -> Res<FileTree> {
    let mut rng = Rng(0x6b69_6c6e);
    const SYL: &[&str] = &[
        "ka", "zo", "me", "sos", "et", "cd", "cal", "ico", "no", "de", "ma", "ster", "agent", "ip",
        "port", "conf", "ser", "ver", "lib", "net", "work", "dock", "er", "ti", "ck",
    ];
    let vocab: Vec<String> = (0..2000)
        .map(|_| {
            let n = 1 + rng.below(3);
            (0..n)
                .map(|_| SYL[rng.below(SYL.len() as u64) as usize])
                .collect()
        })
        .collect();
    let mut tree = FileTree::new();
    let mut total = 0;
    let mut i = 0;
    while total < target {
        // Log-uniform sizes from 1 KiB to 4 MiB.
        let size = (1024.0 * 4096f64.powf((rng.below(1 << 20) as f64) / (1 << 20) as f64)) as usize;
        let kind = rng.below(100);
        let (dir, data) = match kind {
            0..=54 => ("etc/share", text(&mut rng, &vocab, size)),
            55..=89 => ("usr/lib", code(&mut rng, size)),
            _ => ("usr/share/assets", random(&mut rng, size)),
        };
        total += data.len();
        let path = format!("/{dir}/d{:02}/f{i:05}", i % 37);
        tree.insert(&path, Entry::file(data, 0o644))?;
        i += 1;
    }
    Ok(tree)
}

fn shell_pipeline(dir: &Path, compressor: &str, out: &Path) -> Res<(f64, u64)> {
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' --sort=name -cf - . | {compressor} > '{}'",
            dir.display(),
            out.display()
        ))
        .stdin(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("`tar | {compressor}` failed: {status}").into());
    }
    Ok((start.elapsed().as_secs_f64(), std::fs::metadata(out)?.len()))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn main() -> Res<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let mb: usize = std::env::var("KILN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let t = Instant::now();
    let tree = build_tree(mb << 20)?;
    let mut tar_bytes = 0u64;
    for (_, e) in tree.iter() {
        tar_bytes += e.data().map_or(0, |d| d.len() as u64);
    }
    eprintln!(
        "built {} entries, {:.0} MB of content in {:.1}s",
        tree.len(),
        tar_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let tmp = tempfile::tempdir()?;
    let mbs = |bytes: u64, secs: f64| bytes as f64 / 1e6 / secs;

    let tar_size = write_tar(&tree, 0, io::sink())?;

    // SHA-256 throughput on a 256 MiB buffer of the tree's content.
    let mut buf = Vec::with_capacity(256 << 20);
    for (_, e) in tree.iter() {
        if let Some(d) = e.data() {
            let room = (256 << 20) - buf.len();
            buf.extend_from_slice(&d[..d.len().min(room)]);
        }
    }
    let t = Instant::now();
    let digest = Sha256::digest(&buf);
    let sha_secs = t.elapsed().as_secs_f64();
    std::hint::black_box(digest);

    let mut rows: Vec<(String, f64, u64)> = Vec::new();
    let one_thread = std::env::var_os("KILN_BENCH_ONE_THREAD").map(|_| {
        (
            "kiln-layers gzip -6, 1 thread",
            Compression::Gzip { level: 6 },
            1,
        )
    });
    for (label, compression, threads) in [
        (
            "kiln-layers gzip -6, 2 threads",
            Compression::Gzip { level: 6 },
            2,
        ),
        ("kiln-layers zstd -3", Compression::Zstd { level: 3 }, 1),
        (
            "kiln-layers uncompressed (tar + both sha256)",
            Compression::None,
            1,
        ),
    ]
    .into_iter()
    .chain(one_thread)
    {
        let path = tmp.path().join("layer.blob");
        let f = std::fs::File::create(&path)?;
        let t = Instant::now();
        let blob = write_layer(
            &tree,
            &LayerOptions {
                source_date_epoch: 0,
                compression,
                threads,
            },
            f,
        )?;
        rows.push((label.to_string(), t.elapsed().as_secs_f64(), blob.size));
        std::fs::remove_file(&path)?;
        eprintln!("{label}: done");
    }

    let dir = tmp.path().join("tree");
    let t = Instant::now();
    extract_to_dir(&tree, &dir)?;
    eprintln!("materialised in {:.1}s", t.elapsed().as_secs_f64());
    drop(tree);
    // Warm the page cache so the shell pipelines are not measuring the disk.
    shell_pipeline(&dir, "cat", &tmp.path().join("warm.tar"))?;
    std::fs::remove_file(tmp.path().join("warm.tar"))?;
    let out = tmp.path().join("shell.gz");
    let (secs, size) = shell_pipeline(&dir, "gzip -6 -n", &out)?;
    rows.push(("tar -c DIR \\| gzip -6".into(), secs, size));
    eprintln!("gzip: done");
    if have("pigz") {
        let (secs, size) = shell_pipeline(&dir, "pigz -6 -p 2 -n", &out)?;
        rows.push(("tar -c DIR \\| pigz -6 -p 2".into(), secs, size));
    } else {
        eprintln!("pigz is not installed (apt-get install pigz): skipping that row");
    }

    let gzip_size = rows
        .iter()
        .find(|r| r.0.ends_with("| gzip -6"))
        .map(|r| r.2)
        .unwrap_or(1);
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = io::stdout().lock();
    writeln!(
        o,
        "\nTree: {:.0} MB tar ({} cores); MB/s are of the uncompressed tar stream.\n",
        tar_size as f64 / 1e6,
        nproc
    )?;
    writeln!(
        o,
        "| what | time (s) | MB/s | output (MB) | size vs gzip -6 |"
    )?;
    writeln!(o, "|---|---:|---:|---:|---:|")?;
    for (label, secs, size) in &rows {
        writeln!(
            o,
            "| {label} | {secs:.2} | {:.1} | {:.1} | {:+.2}% |",
            mbs(tar_size, *secs),
            *size as f64 / 1e6,
            (*size as f64 / gzip_size as f64 - 1.0) * 100.0
        )?;
    }
    writeln!(
        o,
        "| sha256 (256 MiB buffer) | {sha_secs:.2} | {:.1} | | |",
        mbs(buf.len() as u64, sha_secs)
    )?;
    Ok(())
}
