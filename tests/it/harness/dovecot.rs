//! A throwaway Dovecot IMAP server for tests: its own config, users and maildirs in a temporary
//! directory, listening on 127.0.0.1 on a free port, logging to a file. Without TLS by default
//! (loopback only); [`Dovecot::start_tls`] adds an implicit-TLS listener (`imaps`) and makes
//! TLS (STARTTLS on the IMAP port) required for logins from other addresses.
//! Started with `dovecot -F -c <dir>/dovecot.conf` and killed when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Login name of the test account.
pub const USER: &str = "poststelle";
/// Its password.
pub const PASSWORD: &str = "geheim-imap-9";

/// A running Dovecot.
pub struct Dovecot {
    /// Temp dir holding config, state and mail.
    pub dir: tempfile::TempDir,
    /// IMAP port on 127.0.0.1 (plain, STARTTLS offered when started with TLS).
    pub port: u16,
    /// Implicit-TLS port on 127.0.0.1 (0 without TLS).
    pub imaps_port: u16,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    for p in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("dovecot")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

impl Dovecot {
    /// Writes the config and starts the server (no TLS).
    pub fn start() -> Dovecot {
        Self::start_with(None)
    }

    /// Starts the server with TLS: `cert`/`key` are the server's PEM certificate and key.
    /// STARTTLS is offered on `port`, implicit TLS on `imaps_port`, and `ssl = required`
    /// (Dovecot counts a loopback connection as secured, so the test client may still log in
    /// without TLS; whether a login used TLS shows in [`Dovecot::tls_logins`]).
    pub fn start_tls(cert: &Path, key: &Path) -> Dovecot {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Dovecot {
        let mut dir = tempfile::tempdir().expect("tempdir");
        let ssl = match tls {
            None => "ssl = no".to_string(),
            Some((cert, key)) => format!(
                "ssl = required\nssl_cert = <{}\nssl_key = <{}",
                cert.display(),
                key.display()
            ),
        };
        let imaps_address = if tls.is_some() {
            "address = 127.0.0.1\n    "
        } else {
            ""
        };
        let d = dir.path().to_path_buf();
        for sub in ["run", "state", "mail", "home"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        // Dovecot checks that base_dir's parents are reachable by its unprivileged users.
        let _ = Command::new("chmod").arg("0755").arg(&d).status();
        // As root, mail is owned by the system user `mail` (Dovecot refuses uid 0 for mail).
        let (mut uid, mut gid) = unsafe { (libc::getuid(), libc::getgid()) };
        if uid == 0 {
            uid = 8;
            gid = 8;
            for sub in ["mail", "home"] {
                let _ = Command::new("chown")
                    .arg("-R")
                    .arg("8:8")
                    .arg(d.join(sub))
                    .status();
            }
        }
        let root = unsafe { libc::getuid() } == 0;
        std::fs::write(
            d.join("users"),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{}::\n",
                d.join("home").join(USER).display()
            ),
        )
        .expect("users");
        let (login_user, internal_user) = if root {
            ("dovenull".to_string(), "dovecot".to_string())
        } else {
            let me = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
            (me.clone(), me)
        };
        let conf = |port: u16, imaps_port: u16| {
            format!(
                r#"# Test server: loopback only, everything in {dir}
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:{dir}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {dir}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    {imaps_address}port = {imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"#,
                dir = d.display(),
            )
        };
        // A free port may be taken by another test's server between the probe and Dovecot's
        // bind; then Dovecot exits at once and the start is retried on fresh ports.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let imaps_port = if tls.is_some() {
                loop {
                    let p = free_port();
                    if p != port {
                        break p;
                    }
                }
            } else {
                0
            };
            std::fs::write(d.join("dovecot.conf"), conf(port, imaps_port)).expect("conf");
            let mut s = Dovecot {
                dir,
                port,
                imaps_port,
                child: None,
            };
            match s.try_run() {
                Ok(()) => return s,
                Err(e) => {
                    last_error = e;
                    dir = s.into_dir();
                }
            }
        }
        panic!("dovecot did not start in 5 attempts: {last_error}");
    }

    /// Gives up the temp dir of a server that never started (its process is gone).
    fn into_dir(mut self) -> tempfile::TempDir {
        self.child = None;
        self.port = 0;
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    /// Starts (again) the server process on the same port and data.
    pub fn run(&mut self) {
        if let Err(e) = self.try_run() {
            panic!("dovecot did not start again: {e}");
        }
    }

    /// Starts the process and waits for its greeting; an error when the process exits first
    /// (e.g. its port was taken), with its stderr and log.
    fn try_run(&mut self) -> Result<(), String> {
        let stderr = std::fs::File::create(self.path("stderr.log")).expect("stderr file");
        let child = Command::new(binary())
            .arg("-F")
            .arg("-c")
            .arg(self.path("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start dovecot (Debian package dovecot-imapd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "dovecot exited ({status}): {} {}",
                    std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default(),
                    self.log()
                ));
            }
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut r = BufReader::new(s);
                let mut line = String::new();
                if r.read_line(&mut line).is_ok() && line.starts_with("* OK") {
                    return Ok(());
                }
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not start: {} {}",
                std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGKILL of the master, then its children are gone with it).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets the master take its children down.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Wait until the port is free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A path in the server's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("dovecot.log")).unwrap_or_default()
    }

    /// Successful logins of the test user that used TLS (`imap-login: Info: Login: ... TLS` lines
    /// of the log).
    pub fn tls_logins(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("imap-login: ")
                    && l.contains(&format!("Login: user=<{USER}>"))
                    && l.contains(", TLS,")
            })
            .count()
    }

    /// The maildir of a folder (`INBOX` or a folder name).
    pub fn maildir(&self, folder: &str) -> PathBuf {
        let root = self.path("mail").join(USER);
        if folder == "INBOX" {
            root
        } else {
            root.join(format!(".{}", folder.replace('/', ".")))
        }
    }

    /// Messages in a folder, read from the maildir (`new` and `cur`).
    pub fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir(folder).join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(b) = std::fs::read(e.path()) {
                    out.push(b);
                }
            }
        }
        out
    }

    /// Logs in over IMAP (a plain test client speaking RFC 3501 by hand).
    pub fn client(&self) -> Client {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut c = Client {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
            n: 0,
        };
        let mut greeting = String::new();
        c.r.read_line(&mut greeting).expect("greeting");
        assert!(greeting.starts_with("* OK"), "{greeting}");
        c.ok(&format!("LOGIN {USER} \"{PASSWORD}\""));
        c
    }

    /// APPENDs messages to a folder (created if missing).
    pub fn append(&self, folder: &str, messages: &[Vec<u8>]) {
        let mut c = self.client();
        c.cmd(&format!("CREATE \"{folder}\""));
        for m in messages {
            c.append(folder, m);
        }
        c.ok("LOGOUT");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("==== dovecot.log (last lines)");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
        self.stop();
    }
}

/// A minimal IMAP client for tests.
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    n: u32,
}

impl Client {
    /// Sends a command; returns the untagged lines and the tagged status line.
    pub fn cmd(&mut self, command: &str) -> (Vec<String>, String) {
        self.n += 1;
        let tag = format!("t{}", self.n);
        self.w
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .expect("write");
        self.read_until_tag(&tag)
    }

    fn read_until_tag(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).expect("read");
            assert!(n > 0, "server closed the connection");
            // Skip literals in responses (we never need their content here).
            if let Some(len) = line
                .trim_end()
                .strip_suffix('}')
                .and_then(|l| l.rsplit('{').next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                let mut buf = vec![0; len];
                self.r.read_exact(&mut buf).expect("literal");
            }
            if line.starts_with(&format!("{tag} ")) {
                return (lines, line.trim_end().to_string());
            }
            lines.push(line.trim_end().to_string());
        }
    }

    /// A command that must succeed.
    pub fn ok(&mut self, command: &str) -> Vec<String> {
        let (lines, status) = self.cmd(command);
        assert!(status.contains(" OK"), "{command}: {status}");
        lines
    }

    /// APPEND with a non-synchronising literal (LITERAL+, which Dovecot offers).
    pub fn append(&mut self, folder: &str, message: &[u8]) {
        self.n += 1;
        let tag = format!("t{}", self.n);
        self.w
            .write_all(format!("{tag} APPEND \"{folder}\" {{{}+}}\r\n", message.len()).as_bytes())
            .expect("write");
        self.w.write_all(message).expect("write");
        self.w.write_all(b"\r\n").expect("write");
        let (_, status) = self.read_until_tag(&tag);
        assert!(status.contains(" OK"), "APPEND: {status}");
    }

    /// Number of messages in a folder (STATUS MESSAGES).
    pub fn count(&mut self, folder: &str) -> usize {
        let lines = self.ok(&format!("STATUS \"{folder}\" (MESSAGES)"));
        lines
            .iter()
            .find_map(|l| {
                l.split("MESSAGES ")
                    .nth(1)
                    .and_then(|r| r.trim_end_matches(')').trim().parse().ok())
            })
            .unwrap_or(0)
    }
}
