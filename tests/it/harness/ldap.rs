//! A throwaway OpenLDAP server for tests: its own `slapd.conf`, schemas core/cosine/inetorgperson
//! from `/etc/ldap/schema`, an mdb database under `dc=musterstadt,dc=de` loaded with `slapadd`
//! (people as `inetOrgPerson` with `{SSHA}` passwords from `slappasswd`, groups as
//! `groupOfNames`), listening on 127.0.0.1 on a free port. Anonymous clients may only bind;
//! reading needs a bind. Started with `slapd -d` (foreground) and killed when dropped.
//! Debian packages `slapd` and `ldap-utils`.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory's suffix.
pub const SUFFIX: &str = "dc=musterstadt,dc=de";
/// Where people live.
pub const PEOPLE: &str = "ou=people,dc=musterstadt,dc=de";
/// Where groups live.
pub const GROUPS: &str = "ou=groups,dc=musterstadt,dc=de";

/// A person of the test directory: `uid`, `cn`, password.
pub type Person<'a> = (&'a str, &'a str, &'a str);
/// A group of the test directory: `cn` and the `uid`s of its members.
pub type Group<'a> = (&'a str, &'a [&'a str]);

/// A running slapd.
pub struct Slapd {
    /// Temp dir holding config, database and log.
    pub dir: tempfile::TempDir,
    /// LDAP port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

fn sbin(name: &str) -> PathBuf {
    for d in ["/usr/sbin", "/usr/local/sbin"] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// `{SSHA}` hash of a password (`slappasswd -s`).
fn hash(password: &str) -> String {
    let out = Command::new(sbin("slappasswd"))
        .args(["-s", password])
        .output()
        .expect("slappasswd (Debian package slapd)");
    assert!(out.status.success(), "slappasswd failed");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

impl Slapd {
    /// Writes config and data, loads them and starts the server.
    pub fn start(people: &[Person<'_>], groups: &[Group<'_>]) -> Slapd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).expect("mkdir");
        let conf = format!(
            r#"# Test server: loopback only, everything in {dir}
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
rootpw {rootpw}
directory {dir}/data
index objectClass eq
index member eq
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by * none
"#,
            dir = d.display(),
            rootpw = hash("admin-geheim"),
        );
        std::fs::write(d.join("slapd.conf"), conf).expect("conf");

        let mut ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: musterstadt\n\
             o: Stadt Musterstadt\n\ndn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n"
        );
        for (uid, cn, password) in people {
            let sn = cn.rsplit(' ').next().unwrap_or(cn);
            ldif.push_str(&format!(
                "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\n\
                 sn: {sn}\nuserPassword: {}\n\n",
                hash(password)
            ));
        }
        for (cn, members) in groups {
            ldif.push_str(&format!(
                "dn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n"
            ));
            // groupOfNames needs at least one member.
            if members.is_empty() {
                ldif.push_str(&format!("member: cn=admin,{SUFFIX}\n"));
            }
            for m in *members {
                ldif.push_str(&format!("member: uid={m},{PEOPLE}\n"));
            }
            ldif.push('\n');
        }
        std::fs::write(d.join("data.ldif"), ldif).expect("ldif");
        let out = Command::new(sbin("slapadd"))
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif"))
            .output()
            .expect("slapadd (Debian package slapd)");
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Slapd {
            dir,
            port: free_port(),
            child: None,
        };
        s.run();
        s
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// A path in the server's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The server's log (stats level).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("slapd.log")).unwrap_or_default()
    }

    /// Starts (again) the server process on the same port and data; waits until a search
    /// (`ldapsearch` of the root DSE) is answered.
    pub fn run(&mut self) {
        let log = std::fs::File::create(self.path("slapd.log")).expect("log");
        let child = Command::new(sbin("slapd"))
            .arg("-f")
            .arg(self.path("slapd.conf"))
            .arg("-h")
            .arg(format!("{}/", self.url()))
            .args(["-d", "256"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start slapd (Debian package slapd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new("ldapsearch")
                .args(["-x", "-LLL", "-o", "nettimeout=2", "-H", &self.url()])
                .args(["-b", "", "-s", "base", "(objectClass=*)", "namingContexts"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("slapd exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freezes the server (SIGSTOP): the kernel still accepts connections, nothing answers.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGSTOP);
            }
        }
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        if let Some(c) = &self.child {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
        }
    }

    /// Stops the server and waits until its port is closed.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("==== slapd.log (last lines)");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
        self.stop();
    }
}
