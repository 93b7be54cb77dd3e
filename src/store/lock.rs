//! The data lock: one daemon per database. Two daemons on one SQLite database would each
//! deliver the same queued document, so `poststelle serve` takes an exclusive `flock` on
//! `<database>.lock` beside the database file and holds it for its lifetime (the kernel lets
//! go of it when the process ends, SIGKILL included). A second daemon on the same data is
//! refused with a message that names the first one's process id.
//!
//! On PostgreSQL the database has no file: the daemon takes the file lock beside its blob
//! directory (its own files, its workers' directories) and an advisory lock in the database
//! ([`InstanceLock`]), so that a second daemon on the same database is refused there too.
//!
//! Only the daemon takes the lock. The other commands (`documents list`, `users`, `model`,
//! `train`, `digest`, `quarantine retry`, ...) run beside it: each of their changes is one
//! transaction the daemon reads like its own, and none of them delivers.

use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "Ein anderer poststelle-Dienst{} arbeitet bereits mit der Datenbank {}; ein zweiter wird nicht gestartet. \
         / Another poststelle daemon{} already uses the database {}; refusing to start a second one (lock file {}).",
        holder_de(.holder), .database.display(), holder_en(.holder), .database.display(), .lock_file.display()
    )]
    Held {
        /// The database.
        database: PathBuf,
        /// The lock file.
        lock_file: PathBuf,
        /// The process id written by the holder, if readable.
        holder: Option<u32>,
    },
    /// Another daemon holds the database's advisory lock (PostgreSQL).
    #[error(
        "Ein anderer poststelle-Dienst arbeitet bereits mit der Datenbank {database}; ein zweiter wird nicht gestartet. \
         / Another poststelle daemon already uses the database {database}; refusing to start a second one."
    )]
    HeldInDatabase {
        /// The database (without its password).
        database: String,
    },
    /// The database could not be reached to take the lock.
    #[error("cannot take the data lock in {database}: {source}")]
    Database {
        /// The database (without its password).
        database: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot take the data lock {}: {source}", .lock_file.display())]
    Io {
        /// The lock file.
        lock_file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn holder_de(pid: &Option<u32>) -> String {
    pid.map(|p| format!(" (Prozess {p})")).unwrap_or_default()
}

fn holder_en(pid: &Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl DataLock {
    /// Takes the lock of the database at `url` (`sqlite://path`). An in-memory database has
    /// nothing to share and needs none (`None`); nor has a PostgreSQL database a file (see
    /// [`DataLock::acquire_beside`] and [`InstanceLock`]).
    pub fn acquire(url: &str) -> Result<Option<DataLock>, LockError> {
        let Some(database) = database_path(url) else {
            return Ok(None);
        };
        Self::acquire_beside(database).map(Some)
    }

    /// Takes the lock `<path>.lock` beside `path` (a database file, or an instance's blob
    /// directory when the database is PostgreSQL).
    pub fn acquire_beside(database: PathBuf) -> Result<DataLock, LockError> {
        let mut lock_file = database.clone().into_os_string();
        lock_file.push(".lock");
        let lock_file = PathBuf::from(lock_file);
        let io = |source| LockError::Io {
            lock_file: lock_file.clone(),
            source,
        };
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_file)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor this function owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    database,
                    lock_file,
                    holder: text.trim().parse().ok(),
                });
            }
            return Err(io(err));
        }
        // Ours now: say who holds it, for the message a second daemon gives.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataLock {
            _file: file,
            path: lock_file,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The database file of a `sqlite:` URL (`sqlite://var/poststelle.db?mode=rwc` ->
/// `var/poststelle.db`); `None` for an in-memory database and for other engines.
pub fn database_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// One daemon per PostgreSQL database: a session-level advisory lock, held on a connection of
/// its own for the daemon's lifetime. The server lets go of it when that connection ends, which
/// it does when the process ends, SIGKILL included. (Several instances sharing one database
/// need leases on the work first; until then a second daemon is refused, as on SQLite.)
#[derive(Debug)]
pub struct InstanceLock {
    _conn: sqlx::AnyConnection,
}

/// The key of [`InstanceLock`] (ASCII `PST1`).
pub const INSTANCE_LOCK: i64 = 0x5053_5431;

impl InstanceLock {
    /// Takes the lock on the PostgreSQL database at `url`.
    pub async fn acquire(url: &str) -> Result<InstanceLock, LockError> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let db = |source: sqlx::Error| LockError::Database {
            database: redact(url),
            source,
        };
        let mut conn = sqlx::AnyConnection::connect(url).await.map_err(db)?;
        let took: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(INSTANCE_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(db)?;
        if !took {
            return Err(LockError::HeldInDatabase {
                database: redact(url),
            });
        }
        Ok(InstanceLock { _conn: conn })
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/poststelle.db", dir.path().display());
        let first = DataLock::acquire(&url)
            .expect("first")
            .expect("a file lock");
        let err = DataLock::acquire(&url).expect_err("second refused");
        let msg = err.to_string();
        assert!(msg.contains("bereits"), "{msg}");
        assert!(msg.contains("already uses"), "{msg}");
        assert!(
            msg.contains(&format!("Prozess {}", std::process::id())),
            "{msg}"
        );
        assert_eq!(first.path(), dir.path().join("poststelle.db.lock"));
        drop(first);
        assert!(DataLock::acquire(&url).expect("free again").is_some());
        assert!(
            DataLock::acquire("sqlite::memory:")
                .expect("memory")
                .is_none()
        );
        assert!(
            DataLock::acquire("postgres://u:pw@127.0.0.1/db")
                .expect("no file")
                .is_none()
        );
    }

    /// On the engine of this run (`POSTSTELLE_TEST_STORE`): the lock a daemon takes on a store
    /// is refused to a second one until the first lets go.
    #[tokio::test]
    async fn a_second_daemon_lock_on_the_same_store_is_refused_until_the_first_is_gone() {
        let db = crate::store::db::TestDb::new().await;
        match crate::store::Backend::from_url(&db.url) {
            Some(crate::store::Backend::Postgres) => {
                let first = InstanceLock::acquire(&db.url).await.expect("first");
                let err = InstanceLock::acquire(&db.url)
                    .await
                    .expect_err("second refused");
                let msg = err.to_string();
                assert!(msg.contains("bereits"), "{msg}");
                assert!(!msg.contains("poststelle-test"), "no password: {msg}");
                drop(first);
                // The server ends the session of the dropped connection; then it is free.
                let mut again = None;
                for _ in 0..50 {
                    if let Ok(l) = InstanceLock::acquire(&db.url).await {
                        again = Some(l);
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                assert!(again.is_some(), "free again after the first is gone");
            }
            _ => {
                let first = DataLock::acquire(&db.url).expect("first").expect("a file");
                assert!(DataLock::acquire(&db.url).is_err(), "second refused");
                drop(first);
                assert!(DataLock::acquire(&db.url).expect("free again").is_some());
            }
        }
    }

    #[test]
    fn database_urls_in_messages_carry_no_password() {
        assert_eq!(
            redact("postgres://poststelle:geheim@db.example:5432/stadt"),
            "postgres://poststelle@db.example:5432/stadt"
        );
        assert_eq!(
            redact("postgres://db.example/stadt"),
            "postgres://db.example/stadt"
        );
    }
}
