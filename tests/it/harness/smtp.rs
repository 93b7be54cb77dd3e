//! A real SMTP server for the tests: `tests/smtp_sink.py` (aiosmtpd) on 127.0.0.1, storing each
//! accepted message as JSON in a directory. Killed when dropped.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// One message the server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// Whether the client authenticated.
    pub authenticated: bool,
    /// Whether the connection was encrypted.
    pub tls: bool,
    /// Decoded headers.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Decoded text body.
    pub body: String,
}

impl Received {
    /// A header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Messages stored in `dir`, in arrival order.
pub fn received(dir: &Path) -> Vec<Received> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json"))
        .collect()
}

/// The running server.
pub struct SmtpSink {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Where messages are stored.
    pub dir: PathBuf,
}

impl SmtpSink {
    /// Starts the server on `port` (args e.g. `["--mode", "starttls", ...]`) and waits until it
    /// listens.
    pub fn start(port: u16, dir: &Path, args: &[&str]) -> SmtpSink {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 tests/smtp_sink.py (needs aiosmtpd: pip install aiosmtpd)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.trim() == "READY" => {}
            other => {
                let _ = child.kill();
                panic!("SMTP sink did not start: {other:?}");
            }
        }
        SmtpSink {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Messages received so far.
    pub fn messages(&self) -> Vec<Received> {
        received(&self.dir)
    }

    /// Waits until at least `n` messages arrived, then returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        super::wait_for(&format!("{n} mails"), timeout, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    /// Stops the server.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with openssl:
/// (ca.pem, cert.pem, key.pem).
pub fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let base = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    ];
    let mut a = base.to_vec();
    a.extend([
        "-subj",
        "/CN=Poststelle Test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&a);
    let mut a = base.to_vec();
    a.extend([
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
    ]);
    run(&a);
    let _ = ca_key;
    (ca, cert, key)
}
