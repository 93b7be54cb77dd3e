//! The database engine behind the store: SQLite (embedded, the default) or PostgreSQL (several
//! instances on one database), chosen by the URL of `[store] url`.
//!
//! Both run through sqlx's `Any` driver, so every statement of the store is written once. The
//! statements use `?` placeholders; [`sql`] numbers them (`$1`, `$2`, ...), which both engines
//! read. Every write transaction is exclusive, as SQLite's `BEGIN IMMEDIATE` makes it: on
//! PostgreSQL the transaction first takes one transaction-level advisory lock
//! ([`WRITE_LOCK`]), so read-then-write sequences (the audit chain, duplicate checks, state
//! transitions) see the same serial order on both engines.

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{LazyLock, Mutex};

/// A transaction of the store.
pub type Tx<'c> = sqlx::Transaction<'c, Any>;

/// The key of the advisory lock every PostgreSQL write transaction takes (ASCII `PSTL`).
pub const WRITE_LOCK: i64 = 0x5053_544c;

/// The two engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// SQLite, one file (`sqlite://path`).
    Sqlite,
    /// PostgreSQL (`postgres://…` or `postgresql://…`).
    Postgres,
}

impl Backend {
    /// The engine a store URL names, if it names one.
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// Its name as shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The statement with its `?` placeholders numbered (`$1`, `$2`, ...); `?` inside quoted
/// strings stays. The result is kept for the life of the process: statements are built from a
/// fixed set of texts, so the cache stays small.
pub fn sql(text: &str) -> &'static str {
    static CACHE: LazyLock<Mutex<HashMap<String, &'static str>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = cache.get(text) {
        return done;
    }
    let numbered: &'static str = Box::leak(number_placeholders(text).into_boxed_str());
    cache.insert(text.to_owned(), numbered);
    numbered
}

/// Rewrites `?` outside quoted strings and identifiers as `$1`, `$2`, ...
fn number_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// Text as both engines store it: without U+0000, which PostgreSQL's `text` cannot hold (a
/// hostile e-mail or a broken PDF's text layer can carry it). Applied to the free text the store
/// takes from documents: their text, names, reasons and details.
pub fn text(s: &str) -> String {
    s.replace('\0', "")
}

/// A statement (see [`sql`]).
pub fn query<'q>(text: &str) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
    sqlx::query(sql(text))
}

/// A statement whose rows become `O` (see [`sql`]).
pub fn query_as<'q, O>(text: &str) -> sqlx::query::QueryAs<'q, Any, O, AnyArguments<'q>>
where
    O: for<'r> sqlx::FromRow<'r, AnyRow>,
{
    sqlx::query_as(sql(text))
}

/// A statement with one column (see [`sql`]).
pub fn query_scalar<'q, O>(text: &str) -> sqlx::query::QueryScalar<'q, Any, O, AnyArguments<'q>>
where
    (O,): for<'r> sqlx::FromRow<'r, AnyRow>,
{
    sqlx::query_scalar(sql(text))
}

/// Opens a pool on `url` and applies the engine's migrations.
pub(super) async fn connect(url: &str) -> super::Result<(AnyPool, Backend)> {
    sqlx::any::install_default_drivers();
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => {
            let file = super::lock::database_path(url);
            let memory = file.is_none();
            if let Some(parent) = file.as_deref().and_then(std::path::Path::parent)
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| super::StoreError::Db(sqlx::Error::Io(e)))?;
            }
            let url = if memory || url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            let opts = AnyConnectOptions::from_str(&url)?;
            let pool = AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // FULL: a commit is on disk before we acknowledge the input it records.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await?;
            sqlx::migrate!("./migrations").run(&pool).await?;
            Ok((pool, Backend::Sqlite))
        }
        Some(Backend::Postgres) => {
            let opts = AnyConnectOptions::from_str(url)?;
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // The server's notices ("already exists, skipping") are not ours to log.
                        conn.execute("SET client_min_messages = warning").await?;
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            // Times and ids are compared and sorted as text, as SQLite does (bytewise).
            let collation: Option<String> = query_scalar(
                "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
            )
            .fetch_optional(&pool)
            .await?;
            if let Some(c) =
                collation.filter(|c| !matches!(c.as_str(), "C" | "POSIX" | "C.UTF-8" | "C.utf8"))
            {
                tracing::warn!(
                    collation = c,
                    "the database does not sort text bytewise (LC_COLLATE C); lists may be ordered differently than on SQLite"
                );
            }
            Ok((pool, Backend::Postgres))
        }
        None => Err(super::StoreError::Corrupt(format!(
            "store.url \"{}\" is neither sqlite:// nor postgres://",
            super::lock::redact(url)
        ))),
    }
}

/// A new, empty database on the PostgreSQL server `server_url` names (its path is replaced by
/// the new database's name); returns the new database's URL. For tests and trials: a production
/// database is made by its administrator.
pub async fn create_postgres_database(server_url: &str) -> Result<String, sqlx::Error> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("poststelle_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::AnyConnection::connect(server_url).await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await?;
    Ok(with_database(server_url, &name))
}

/// `url` with its database (the path) replaced by `name`; its query stays.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{host}/{name}{query}")
}

/// The database of a store test: SQLite in a temporary directory, or, with
/// `POSTSTELLE_TEST_STORE=postgres`, a new database on the server `POSTSTELLE_TEST_POSTGRES_URL`
/// names (`tests/services/postgres.sh start` prints it). `deploy/test.sh` runs the store's
/// tests both ways.
#[cfg(test)]
pub(crate) struct TestDb {
    /// The temporary directory (the SQLite file), removed when the test ends.
    _dir: tempfile::TempDir,
    /// The store URL.
    pub url: String,
}

#[cfg(test)]
impl TestDb {
    /// A new, empty database.
    pub async fn new() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = match std::env::var("POSTSTELLE_TEST_STORE").as_deref() {
            Ok("postgres") => {
                let server = std::env::var("POSTSTELLE_TEST_POSTGRES_URL").expect(
                    "POSTSTELLE_TEST_STORE=postgres needs POSTSTELLE_TEST_POSTGRES_URL \
                     (tests/services/postgres.sh start)",
                );
                create_postgres_database(&server)
                    .await
                    .expect("a new PostgreSQL test database")
            }
            Ok("sqlite") | Err(_) => format!("sqlite://{}", dir.path().join("t.db").display()),
            Ok(other) => panic!("POSTSTELLE_TEST_STORE={other}: sqlite or postgres"),
        };
        TestDb { _dir: dir, url }
    }

    /// A SQLite database, whatever `POSTSTELLE_TEST_STORE` says: for tests of upgrades from
    /// older SQLite databases (a PostgreSQL database starts with the current schema).
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        TestDb { _dir: dir, url }
    }

    /// The store on it (opened anew each call).
    pub async fn open(&self) -> super::Store {
        super::Store::open(&self.url).await.expect("open the store")
    }

    /// A new store on a new database.
    pub async fn store() -> (TestDb, super::Store) {
        let db = TestDb::new().await;
        let s = db.open().await;
        (db, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes_only() {
        assert_eq!(
            number_placeholders("SELECT a FROM t WHERE b = ? AND c = '?' AND d IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d IN ($2, $3)"
        );
        assert_eq!(
            number_placeholders("SELECT \"?\" FROM t"),
            "SELECT \"?\" FROM t"
        );
        assert_eq!(
            sql("UPDATE t SET a = ? WHERE id = ?"),
            "UPDATE t SET a = $1 WHERE id = $2"
        );
    }

    #[test]
    fn a_test_database_replaces_the_path_of_the_server_url() {
        assert_eq!(
            with_database("postgres://u:pw@127.0.0.1:5432/postgres", "t1"),
            "postgres://u:pw@127.0.0.1:5432/t1"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "t1"),
            "postgres://h/t1?sslmode=disable"
        );
    }

    #[test]
    fn text_loses_its_nul_characters_only() {
        assert_eq!(text("Sehr geehrte\0 Damen"), "Sehr geehrte Damen");
        assert_eq!(text("ohne"), "ohne");
    }

    #[test]
    fn store_urls_name_their_engine() {
        assert_eq!(Backend::from_url("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@127.0.0.1:5432/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://h/db"), None);
    }
}
