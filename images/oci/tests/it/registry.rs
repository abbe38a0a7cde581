//! Registry push/pull against Debian's docker-registry, through a faulty proxy, and the Bearer
//! token flow and sha512 digests against a fake server.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kiln_layers::{Algorithm, Digest};
use kiln_oci::oci::layout::Layout;
use kiln_oci::oci::manifest::ImageManifest;
use kiln_oci::oci::{Descriptor, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST};
use kiln_oci::registry::auth::Credentials;
use kiln_oci::registry::{
    pull, push, Client, ClientOptions, NoProgress, ProgressEvent, PushOptions, RetryPolicy,
};
use kiln_oci::{BlobStore, Error, ImageSpec, Platform};

use crate::layout::write_sample_layout;
use crate::util::{sample_layers, Fault, Proxy, EPOCH};
use kiln_test_support::{require_tool, run, Registry};

fn client(host: &str) -> Client {
    let mut opts = ClientOptions::new(host);
    opts.insecure = true;
    opts.docker_config = Some("/nonexistent/config.json".into());
    opts.retry = RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        max_total: Duration::from_secs(60),
    };
    opts.io_timeout = Duration::from_secs(20);
    Client::new(opts).expect("client")
}

#[test]
fn push_to_registry_is_read_by_skopeo_and_a_repush_uploads_nothing() {
    require_tool("skopeo", "skopeo");
    let registry = Registry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("oci");
    let (wa, wb, _) = write_sample_layout(&dir);
    let layout = Layout::open(&dir).expect("open");
    let client = client(&registry.host());

    // Image a in small chunks (exercises PATCH + Content-Range), with progress events.
    let mut opts = PushOptions::new("kiln/a", &["v1"]);
    opts.chunk_threshold = 64;
    opts.chunk_size = 100;
    let mut events = Vec::new();
    let mut progress = |e: &ProgressEvent<'_>| events.push(format!("{e:?}"));
    let report = push(&client, layout.store(), &wa.manifest, &opts, &mut progress).expect("push a");
    assert_eq!(report.blobs_uploaded, 3, "{report:?}");
    assert_eq!(report.blobs_chunked, 3, "{report:?}");
    assert_eq!(report.manifests_pushed, 1);
    assert!(
        events.iter().any(|e| e.starts_with("BlobBytes")),
        "{events:?}"
    );

    // Image b mounts the shared base layer from kiln/a.
    let mut opts_b = PushOptions::new("kiln/b", &["v1", "latest"]);
    opts_b.mount_from = Some("kiln/a".into());
    let report = push(
        &client,
        layout.store(),
        &wb.manifest,
        &opts_b,
        &mut NoProgress,
    )
    .expect("push b");
    assert_eq!(
        (report.blobs_mounted, report.blobs_uploaded),
        (1, 2),
        "{report:?}"
    );
    assert_eq!(report.manifests_pushed, 2);

    let host = registry.host();
    for (repo, written) in [("kiln/a:v1", &wa), ("kiln/b:latest", &wb)] {
        let out = run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{host}/{repo}")));
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["Digest"], written.manifest.digest.to_string(), "{repo}");
    }
    let other = tmp.path().join("copied");
    run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/kiln/a:v1"))
        .arg(format!("oci:{}:a", other.display())));
    let copied = Layout::open(&other).expect("open copy");
    assert_eq!(
        copied.descriptor("a").expect("ref").digest,
        wa.manifest.digest
    );
    let resolved = copied.resolve("a").expect("resolve copy");
    assert_eq!(resolved.config_descriptor.digest, wa.config.digest);

    // Pull back with our client.
    let pulled_dir = tempfile::tempdir().expect("tempdir");
    let pulled_store = BlobStore::open(pulled_dir.path()).expect("store");
    let pulled = pull(
        &client,
        "kiln/b",
        "v1",
        &Platform::linux_amd64(),
        &pulled_store,
        &mut NoProgress,
    )
    .expect("pull");
    assert_eq!(pulled.manifest_descriptor.digest, wb.manifest.digest);
    assert_eq!(pulled.config_descriptor.digest, wb.config.digest);
    for l in &pulled.layers {
        pulled_store
            .verify(&l.digest)
            .expect("pulled layer verifies");
    }

    // Re-push: nothing uploaded, by our count and by the registry's access log.
    let log_before = registry.access_log();
    assert!(
        Registry::upload_requests(&log_before) > 0,
        "access log lists uploads:\n{log_before}"
    );
    let report = push(
        &client,
        layout.store(),
        &wa.manifest,
        &opts,
        &mut NoProgress,
    )
    .expect("re-push");
    assert_eq!(
        (
            report.blobs_uploaded,
            report.blobs_skipped,
            report.bytes_uploaded
        ),
        (0, 3, 0),
        "{report:?}"
    );
    let log_after = registry.access_log();
    assert_eq!(
        Registry::upload_requests(&log_after),
        Registry::upload_requests(&log_before),
        "re-push started uploads"
    );
}

/// Connections 0..12 are cut at varying byte counts, dropped, or answered 503; later ones pass.
fn fault_plan(n: usize) -> Fault {
    const CUTS: [usize; 6] = [150, 700, 1_500, 3_000, 9_000, 40_000];
    if n >= 12 {
        return Fault::Pass;
    }
    match n % 3 {
        0 => Fault::CutAfter(CUTS[n / 2 % CUTS.len()]),
        1 => Fault::Reply503,
        _ => Fault::Drop,
    }
}

#[test]
fn push_completes_through_a_proxy_that_drops_connections() {
    require_tool("skopeo", "skopeo");
    let registry = Registry::start();
    let proxy = Proxy::start(registry.port, fault_plan);
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = BlobStore::open(tmp.path()).expect("store");
    let (base, a, _) = sample_layers(&src);
    // A bigger, incompressible layer so chunked uploads cross the cut points.
    let mut noise = vec![0u8; 200_000];
    let mut x: u32 = 12345;
    for b in noise.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *b = (x >> 16) as u8;
    }
    let big = crate::util::make_layer(&src, &[crate::util::Entry::File("noise.bin", 0o644, noise)]);
    let spec = ImageSpec::new("kiln/faulty", "v1", vec![base, a, big], EPOCH);
    let written = kiln_oci::write_image(&src, &spec).expect("write");

    let client = client(&format!("127.0.0.1:{}", proxy.port));
    let mut opts = PushOptions::new("kiln/faulty", &["v1"]);
    opts.chunk_threshold = 50_000;
    opts.chunk_size = 32_768;
    let report = push(&client, &src, &written.manifest, &opts, &mut NoProgress)
        .expect("push through faults");
    let faults = proxy.faults.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "through the faulty proxy: {report:?}, request retries {}, faults {faults}",
        client.retries()
    );
    assert!(faults >= 3, "the proxy injected only {faults} faults");
    assert!(
        report.upload_restarts + client.retries() as u32 > 0,
        "no retry happened: {report:?}"
    );
    assert_eq!(
        report.blobs_uploaded + report.blobs_skipped,
        4,
        "{report:?}"
    );

    let out = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/kiln/faulty:v1", registry.host())));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["Digest"], written.manifest.digest.to_string());
    // Every blob arrived intact: pull directly and verify.
    let direct = self::client(&registry.host());
    let pulled_dir = tempfile::tempdir().expect("tempdir");
    let pulled_store = BlobStore::open(pulled_dir.path()).expect("store");
    let pulled = pull(
        &direct,
        "kiln/faulty",
        "v1",
        &Platform::linux_amd64(),
        &pulled_store,
        &mut NoProgress,
    )
    .expect("pull");
    assert_eq!(pulled.layers, spec.layers);
}

/// Token requests seen: request target and Authorization header.
type TokenLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A fake registry with token auth: one request per connection, bounded. It serves
/// `kiln/x:v1` (with `manifest_digest` as its `Docker-Content-Digest`, if given) and the blobs
/// of `store`.
struct FakeTokenRegistry {
    port: u16,
    token_requests: TokenLog,
}

fn start_fake_token_registry(
    store: BlobStore,
    manifest: Vec<u8>,
    manifest_digest: Option<Digest>,
) -> FakeTokenRegistry {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let token_requests: TokenLog = Arc::new(Mutex::new(Vec::new()));
    let log = token_requests.clone();
    listener.set_nonblocking(true).expect("nonblocking");
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while Instant::now() < deadline && served < 50 {
            let Ok((mut conn, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            served += 1;
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65_536 {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&req).into_owned();
            let target = text.split_whitespace().nth(1).unwrap_or("").to_string();
            let headers: BTreeMap<String, String> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let auth = headers.get("authorization").cloned();
            let (status, ctype, body, extra): (&str, &str, Vec<u8>, String) = if target
                .starts_with("/token")
            {
                log.lock()
                    .expect("lock")
                    .push((target.clone(), auth.clone()));
                if auth.as_deref()
                    == Some(
                        &Credentials {
                            username: "alice".into(),
                            password: "pw".into(),
                        }
                        .basic_header(),
                    )
                {
                    (
                        "200 OK",
                        "application/json",
                        br#"{"token":"tok-123","expires_in":300}"#.to_vec(),
                        String::new(),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        "application/json",
                        b"{}".to_vec(),
                        String::new(),
                    )
                }
            } else if auth.as_deref() != Some("Bearer tok-123") {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake-registry\",scope=\"repository:kiln/x:pull\"\r\n"
                );
                (
                    "401 Unauthorized",
                    "application/json",
                    br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec(),
                    challenge,
                )
            } else if target == "/v2/kiln/x/manifests/v1" {
                (
                    "200 OK",
                    kiln_oci::oci::MEDIA_TYPE_MANIFEST,
                    manifest.clone(),
                    manifest_digest
                        .map(|d| format!("Docker-Content-Digest: {d}\r\n"))
                        .unwrap_or_default(),
                )
            } else if let Some(d) = target.strip_prefix("/v2/kiln/x/blobs/") {
                let blob = d.parse().map_err(Error::from);
                match blob.and_then(|d| store.read_verified(&d)) {
                    Ok(b) => ("200 OK", "application/octet-stream", b, String::new()),
                    Err(_) => (
                        "404 Not Found",
                        "application/json",
                        b"{}".to_vec(),
                        String::new(),
                    ),
                }
            } else {
                (
                    "404 Not Found",
                    "application/json",
                    b"{}".to_vec(),
                    String::new(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    FakeTokenRegistry {
        port,
        token_requests,
    }
}

/// A client of the fake registry with the credentials it accepts.
fn token_client(port: u16) -> Client {
    let mut opts = ClientOptions::new(&format!("127.0.0.1:{port}"));
    opts.insecure = true;
    opts.credentials = Some(Credentials {
        username: "alice".into(),
        password: "pw".into(),
    });
    Client::new(opts).expect("client")
}

#[test]
fn bearer_token_flow_fetches_a_token_with_basic_credentials_and_retries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(tmp.path()).expect("store");
    let (base, _, _) = sample_layers(&store);
    let written = kiln_oci::write_image(&store, &ImageSpec::new("kiln/x", "v1", vec![base], EPOCH))
        .expect("write");
    let manifest = store
        .read_verified(&written.manifest.digest)
        .expect("manifest");
    let fake = start_fake_token_registry(store, manifest, None);
    let client = token_client(fake.port);
    let out = tempfile::tempdir().expect("tempdir");
    let out_store = BlobStore::open(out.path()).expect("store");
    let pulled = pull(
        &client,
        "kiln/x",
        "v1",
        &Platform::linux_amd64(),
        &out_store,
        &mut NoProgress,
    )
    .expect("pull with token");
    assert_eq!(pulled.manifest_descriptor.digest, written.manifest.digest);
    assert_eq!(pulled.config_descriptor.digest, written.config.digest);

    let requests = fake.token_requests.lock().expect("lock").clone();
    assert_eq!(
        requests.len(),
        1,
        "one token fetched and reused: {requests:?}"
    );
    let (target, auth) = &requests[0];
    assert!(target.contains("service=fake-registry"), "{target}");
    assert!(
        target.contains("scope=repository%3Akiln%2Fx%3Apull"),
        "{target}"
    );
    assert!(
        auth.as_deref().is_some_and(|a| a.starts_with("Basic ")),
        "{auth:?}"
    );
}

#[test]
fn index_push_and_pull_of_docker_schema2_resolve_to_linux_amd64() {
    require_tool("skopeo", "skopeo");
    let registry = Registry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("oci");
    let (wa, wb, _) = write_sample_layout(&dir);
    let layout = Layout::open(&dir).expect("open");
    let mut a = wa.manifest.clone();
    a.platform = Some(Platform::linux_amd64());
    let mut b = wb.manifest.clone();
    b.platform = Some(Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: Some("v8".into()),
    });
    let index = kiln_oci::oci::manifest::write_index(layout.store(), vec![b, a]).expect("index");
    let client = client(&registry.host());
    let report = push(
        &client,
        layout.store(),
        &index,
        &PushOptions::new("kiln/multi", &["v1"]),
        &mut NoProgress,
    )
    .expect("push index");
    // Two child manifests by digest, then the index by tag.
    assert_eq!(report.manifests_pushed, 3, "{report:?}");
    assert_eq!(report.digest, index.digest);
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/kiln/multi:v1", registry.host())));
    assert_eq!(Digest::sha256_of(raw.as_bytes()), index.digest);

    let out = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(out.path()).expect("store");
    let pulled = pull(
        &client,
        "kiln/multi",
        "v1",
        &Platform::linux_amd64(),
        &store,
        &mut NoProgress,
    )
    .expect("pull");
    assert_eq!(
        pulled.manifest_descriptor.digest, wa.manifest.digest,
        "linux/amd64 picked from the index"
    );

    // A Docker v2 schema 2 manifest (converted by skopeo) pulls too.
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
        ])
        .arg(format!("oci:{}:a", dir.display()))
        .arg(format!("docker://{}/kiln/docker-a:v1", registry.host())));
    let pulled_docker = pull(
        &client,
        "kiln/docker-a",
        "v1",
        &Platform::linux_amd64(),
        &store,
        &mut NoProgress,
    )
    .expect("pull schema2");
    assert_eq!(
        pulled_docker.manifest_descriptor.media_type,
        kiln_oci::oci::MEDIA_TYPE_DOCKER_MANIFEST
    );
    let digests = |l: &[kiln_oci::Layer]| l.iter().map(|l| l.diff_id).collect::<Vec<_>>();
    assert_eq!(digests(&pulled_docker.layers), digests(&pulled.layers));
}

/// A registry may name content with sha512: the `Docker-Content-Digest` of the manifest and
/// the manifest's descriptors. The pull verifies each with sha512 and stores it under
/// `blobs/sha512/`; a sha512 header that does not match the manifest is refused.
#[test]
fn pull_accepts_and_verifies_sha512_digests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(tmp.path()).expect("store");
    let (base, _, _) = sample_layers(&store);
    let sha512 = |b: &[u8]| Digest::of(Algorithm::Sha512, b);
    let put512 = |bytes: &[u8]| {
        let d = sha512(bytes);
        store.put_reader(bytes, Some(&d)).expect("put sha512 blob");
        d
    };
    let layer = put512(&store.read_verified(&base.digest).expect("layer"));
    let spec = ImageSpec::new("kiln/x", "v1", vec![base.clone()], EPOCH);
    let config_bytes = serde_json::to_vec(&spec.config()).expect("config json");
    let config = put512(&config_bytes);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        config: Descriptor::new(MEDIA_TYPE_CONFIG, config, config_bytes.len() as u64),
        layers: vec![Descriptor::new(&base.media_type, layer, base.size)],
        annotations: BTreeMap::new(),
    }
    .to_json()
    .expect("manifest json");
    let manifest_digest = sha512(&manifest);
    let fake = start_fake_token_registry(store.clone(), manifest.clone(), Some(manifest_digest));

    let out = tempfile::tempdir().expect("tempdir");
    let out_store = BlobStore::open(out.path()).expect("store");
    let pulled = pull(
        &token_client(fake.port),
        "kiln/x",
        "v1",
        &Platform::linux_amd64(),
        &out_store,
        &mut NoProgress,
    )
    .expect("pull from a sha512 registry");
    assert_eq!(pulled.manifest_descriptor.digest, manifest_digest);
    assert_eq!(pulled.config_descriptor.digest, config);
    assert_eq!(pulled.layers[0].digest, layer);
    assert_eq!(pulled.layers[0].diff_id, base.diff_id);
    for d in [manifest_digest, config, layer] {
        assert_eq!(out_store.path(&d), out.path().join("sha512").join(d.hex()));
        out_store.verify(&d).expect("stored blob verifies");
    }

    let wrong = sha512(b"not the manifest");
    let liar = start_fake_token_registry(store, manifest, Some(wrong));
    let out = tempfile::tempdir().expect("tempdir");
    let e = pull(
        &token_client(liar.port),
        "kiln/x",
        "v1",
        &Platform::linux_amd64(),
        &BlobStore::open(out.path()).expect("store"),
        &mut NoProgress,
    )
    .expect_err("a wrong sha512 is refused");
    assert!(
        matches!(&e, Error::DigestMismatch { expected, actual, .. }
            if **expected == wrong && **actual == manifest_digest),
        "{e}"
    );
}
