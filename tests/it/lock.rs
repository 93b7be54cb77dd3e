//! One daemon per database (issue 13): a second `poststelle serve` on the same data is
//! refused with a clear message (German and English) instead of delivering the same documents
//! a second time; commands that only read run beside the daemon.

use crate::harness::*;
use std::time::{Duration, Instant};

#[test]
fn a_second_daemon_is_refused() {
    let install = Install::new();
    let first = install.serve(&[]);
    let other_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut second = install
        .command()
        .arg("serve")
        .env("POSTSTELLE__API__LISTEN", format!("127.0.0.1:{other_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("second serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = second.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second daemon is still running on the same database");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(second.stderr.as_mut().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("Ein anderer poststelle-Dienst")
            && stderr.contains("already uses the database")
            && stderr.contains(&format!("{}", first.child.id())),
        "{stderr}"
    );
    // Reading beside the daemon works.
    assert!(install.documents().is_empty());
    // The first one still works, and once it is gone a daemon starts again.
    install.drop_file("brief.txt", b"Sehr geehrte Damen und Herren, Hundesteuer.");
    wait_for(
        "the first daemon takes the file",
        Duration::from_secs(60),
        || (!install.documents().is_empty()).then_some(()),
    );
    first.kill();
    let again = install.serve(&[]);
    drop(again);
}
