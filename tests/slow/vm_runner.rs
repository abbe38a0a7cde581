//! `kiln boot`'s QEMU runner on a tiny FIXTURE guest (Debian's kernel and a busybox initramfs
//! with the guest agent, made by `fixtures/boot/tiny-guest.sh`): the host link comes up through
//! the guest agent (the `host-link` check), the guest reaches the build host at 10.0.2.2, and a
//! port forward reaches a server in the guest from the build host. Seconds, not minutes: the
//! cluster test (`cluster_boot.rs`) covers the real images.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kiln_test_support::{machine_cache, require_tool};
use kiln_vm::qemu::{self, BootFrom, Forward, HostLink, VmSpec};
use kiln_vm::qga::Agent;
use kiln_vm::{BootOptions, Check, Probe};

/// The fixture guest's kernel and initramfs (the kernel .deb is cached in the machine cache).
fn tiny_guest(out: &Path) -> (PathBuf, PathBuf) {
    for (tool, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-ga", "qemu-guest-agent"),
        ("busybox", "busybox-static"),
        ("cpio", "cpio"),
    ] {
        require_tool(tool, pkg);
    }
    let status = Command::new("bash")
        .arg(crate::common::fixture("boot/tiny-guest.sh"))
        .arg(out)
        .env("KILN_FIXTURE_CACHE", machine_cache().join("test-fixtures"))
        .status()
        .unwrap();
    assert!(status.success(), "tiny-guest.sh failed");
    (out.join("vmlinuz"), out.join("initramfs.cpio.gz"))
}

#[test]
fn the_host_link_reaches_the_build_host_and_forwards_into_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let (kernel, initrd) = tiny_guest(&dir.path().join("guest"));
    // Something on the build host's loopback for the guest to reach.
    let host_side = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host_side.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = host_side.accept().unwrap();
        c.write_all(b"hello from the build host\n").unwrap();
    });

    let mac = "52:54:00:aa:00:01";
    let link = qemu::host_link_mac(mac);
    let forwards = Forward::to_free_ports(&[8000]).unwrap();
    let spec = VmSpec {
        name: "tiny".into(),
        boot: BootFrom::Kernel {
            kernel,
            initrd,
            append: "console=ttyS0 quiet".into(),
        },
        cdrom: None,
        mac: mac.into(),
        net: None,
        host_link: Some(HostLink {
            mac: link.clone(),
            forwards: forwards.clone(),
        }),
        memory_mib: 256,
        cpus: 1,
        firmware: kiln_vm::Firmware::Bios,
        vars_template: None,
        tpm: false,
    };
    let checks = vec![Check {
        id: "host-link".into(),
        about: "host link".into(),
        probe: Probe::HostLink {
            mac: link,
            address: qemu::HOST_LINK_ADDR.into(),
        },
    }];
    let tools = qemu::Tools::find().unwrap();
    let accel = qemu::AccelPick {
        accel: qemu::Accel::Tcg,
        why: "test".into(),
    };
    let mut opts = BootOptions::new(dir.path());
    opts.keep = true;
    opts.timeout = Duration::from_secs(180);
    opts.start_gap = Duration::from_secs(30);
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let _vm = crate::common::vm::vm_lock();
    let run = kiln_vm::run(
        &tools,
        &accel,
        vec![(spec, checks)],
        &run_dir,
        kiln_vm::L2Net::random(),
        &opts,
        &mut |l| eprintln!("{l}"),
    )
    .unwrap();
    assert!(
        run.report.healthy,
        "{}\n{}",
        kiln_vm::health::table(&run.report.hosts),
        run.report.hosts[0].console_tail.join("\n")
    );
    let qga = &run.report.hosts[0].qga_socket;
    let mut agent = Agent::connect(qga, Duration::from_secs(10)).unwrap();
    let got = agent
        .exec(
            "/bin/bash",
            &[
                "-c",
                &format!(
                    "exec 3<>/dev/tcp/10.0.2.2/{host_port} && read -r line <&3 && echo \"$line\""
                ),
            ],
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(got.stdout_text(), "hello from the build host\n", "{got:?}");
    server.join().unwrap();

    // A server in the guest, reached through the forward.
    let started = agent
        .exec(
            "/bin/sh",
            &[
                "-c",
                "mkdir -p /www && echo 'hello from the guest' > /www/index.html && \
                 (busybox httpd -p 8000 -h /www &) ; sleep 1",
            ],
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(started.success(), "{started:?}");
    let mut answer = String::new();
    let mut c = TcpStream::connect(&forwards[0].host).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("hello from the guest"), "{answer}");
    drop(run);
}
