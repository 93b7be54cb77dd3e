//! Long-lived sandboxed workers: one process per configured worker, each with its OCR engine
//! loaded once and reused for many jobs, fed one job at a time over a pipe.
//!
//! The sandbox is the one every parser runs in ([`super::Extractor`]): its own process group,
//! an address-space limit, one OCR thread, a private temporary directory. Every job keeps its
//! own wall-clock limit: a worker that does not answer in time is killed with its whole process
//! group (renderers it started included) and replaced; a worker that dies (crash, memory limit)
//! is replaced as well, and only the job it was doing gets the reason (a worker that had served
//! other jobs before gets one more try on a fresh worker first, so a document is not blamed
//! for what earlier ones left behind). A worker is also retired
//! after [`MAX_JOBS_PER_WORKER`] jobs, so that what a parser leaks cannot add up.
//!
//! A worker starts with a minimal environment and resource limits ([`Limits`]) and locks
//! itself in before its first job ([`super::sandbox`]); its first line says how far
//! ([`super::sandbox::Status`], kept by the pool: [`Pool::sandbox_status`]). It sees only its
//! own directory: the daemon copies each job's input into `in/<job>/` (read only for the
//! worker) and takes the results from `work/<job>/` (read and write), both removed after the
//! job. What the daemon reads from a worker is bounded: its standard error is drained into a
//! buffer that keeps the last [`STDERR_KEEP`] bytes, an answer line is at most
//! [`MAX_ANSWER_LINE`] bytes, the JSON result and the result file are read up to their limits.
//!
//! Jobs wait for a free worker in three classes ([`Priority`]): a person waiting on the web
//! desk first, then page 1 of newly arrived documents (routing waits for it), then the rest
//! (later pages and renditions of documents already routed). Among the routing jobs the pool
//! alternates between the newest and the oldest waiting document: a letter that arrives while a
//! backlog drains is routed within a page's time, and the backlog still drains oldest first.
//! After [`ROUTE_STREAK`] routing jobs in a row one waiting background job runs, so searchable
//! PDFs and deliveries keep moving while a backlog is routed.

use super::sandbox::{self, Status};
use super::{ExtractError, Job, MediaType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::oneshot;

/// Page-1 jobs handed out in a row while background work waits; then one background job runs,
/// so that searchable PDFs (and with them deliveries) progress while a backlog is routed.
pub const ROUTE_STREAK: u32 = 8;

/// Jobs a worker does before it is replaced by a fresh process.
pub const MAX_JOBS_PER_WORKER: u32 = 200;

/// The end of a worker's standard error the daemon keeps (the rest is read and dropped).
pub const STDERR_KEEP: usize = 64 * 1024;

/// The longest line a worker may answer with (its greeting or `done`).
pub const MAX_ANSWER_LINE: u64 = 64 * 1024;

/// How long a new worker may take to lock itself in and greet.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How urgent a job is. Lower runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A person waits for the result (a page image on the web desk).
    Interactive = 0,
    /// Page 1 of a document: its routing waits for it.
    Route = 1,
    /// Later pages, searchable PDFs and other renditions of routed documents.
    Background = 2,
}

/// A job's place in the queue: its class and, within the class, an order key (the document's
/// arrival time in milliseconds; page numbers may be added for the background class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Urgency {
    /// The class.
    pub priority: Priority,
    /// Order within the class: background jobs run smallest first; routing jobs alternate
    /// between the smallest and the largest.
    pub order: i64,
}

impl Urgency {
    /// A job a person waits for.
    pub fn interactive() -> Self {
        Self {
            priority: Priority::Interactive,
            order: 0,
        }
    }

    /// Page 1 of the document that arrived at `arrived_ms`.
    pub fn route(arrived_ms: i64) -> Self {
        Self {
            priority: Priority::Route,
            order: arrived_ms,
        }
    }

    /// Background work of the document that arrived at `arrived_ms`.
    pub fn background(arrived_ms: i64) -> Self {
        Self {
            priority: Priority::Background,
            order: arrived_ms,
        }
    }
}

/// One job as sent to a worker (one JSON line on its standard input).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// [`Job::as_arg`].
    pub job: String,
    /// The input's MIME type.
    pub media: String,
    /// The input file.
    pub file: PathBuf,
    /// Where the JSON result goes (files the job makes go beside it).
    pub out: PathBuf,
    /// A JSON file with the pages already recognised (for the searchable PDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<PathBuf>,
    /// CPU seconds the job may use (0: no limit of its own).
    #[serde(default)]
    pub cpu_secs: u64,
    /// The file the job makes beside its JSON result (`result.pdf`, ...), read back by the
    /// daemon; not sent to the worker.
    #[serde(skip)]
    pub result_file: Option<String>,
}

/// What a job left: its JSON result and the file it made, both read up to their limits.
#[derive(Debug, Default)]
pub struct Output {
    /// The JSON result (`None`: the worker wrote none).
    pub json: Option<Vec<u8>>,
    /// [`Request::result_file`], when asked for and made.
    pub file: Option<Vec<u8>>,
}

/// How workers are started.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The `poststelle` executable.
    pub exe: PathBuf,
    /// Extraction options as JSON (the same for every job).
    pub options: String,
    /// Address-space limit in bytes (0 = none).
    pub memory_limit: u64,
    /// The sandbox and the other limits.
    pub limits: Limits,
    /// How the names of the workers' directories in the system's temporary directory begin
    /// ([`DEFAULT_DIR_PREFIX`], or the daemon's own from [`owned_dir_prefix`]).
    pub dir_prefix: String,
}

/// The beginning of a worker directory's name when no daemon owns the pool (commands, tests).
pub const DEFAULT_DIR_PREFIX: &str = "poststelle-worker";

/// The beginning of the names of the worker directories of the daemon whose data lock file is
/// `lock_file`: the same for every start on the same data, different for other data. A worker
/// directory holds a copy of the document being read; a daemon killed with SIGKILL cannot
/// remove its workers' directories, so the next start on the same data does
/// ([`remove_stale_dirs`]).
pub fn owned_dir_prefix(lock_file: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(lock_file.as_os_str().as_encoded_bytes());
    format!("{DEFAULT_DIR_PREFIX}-{}-", hex::encode(&digest[..6]))
}

/// Removes the worker directories beginning with `prefix` from the system's temporary
/// directory (what a killed daemon on the same data left behind); returns how many. Only the
/// daemon that holds the data lock may call it: no worker of its own has started yet, and no
/// other daemon uses the prefix.
pub fn remove_stale_dirs(prefix: &str) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(std::env::temp_dir())? {
        let entry = entry?;
        let owned = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix));
        if owned && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The sandbox of the workers and the limits on what they write and the daemon reads.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Whether workers lock themselves in ([`sandbox::apply`]) and get the environment and
    /// resource limits of the sandbox (`RLIMIT_FSIZE`, `RLIMIT_NPROC`, `RLIMIT_CPU`).
    pub sandbox: bool,
    /// Further paths a worker may read.
    pub read_paths: Vec<PathBuf>,
    /// CPU seconds per job (its soft `RLIMIT_CPU`, renewed per job).
    pub cpu_secs: u64,
    /// Largest file a worker may write and largest result file the daemon reads back.
    pub max_output_bytes: u64,
    /// Largest JSON result the daemon reads back.
    pub max_json_bytes: u64,
    /// `RLIMIT_NPROC` (0: none).
    pub max_processes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            sandbox: false,
            read_paths: Vec::new(),
            cpu_secs: 0,
            max_output_bytes: 512 * 1024 * 1024,
            max_json_bytes: 64 * 1024 * 1024,
            max_processes: 0,
        }
    }
}

/// The pool of long-lived workers.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    command: WorkerCommand,
    size: usize,
    slots: Mutex<Slots>,
    idle: Mutex<Vec<Worker>>,
    /// What the last worker that started reported of its sandbox.
    sandbox: Mutex<Option<Status>>,
}

#[derive(Debug)]
struct Slots {
    free: usize,
    seq: u64,
    /// Waiting jobs per class, keyed by (order, arrival sequence).
    waiting: [BTreeMap<(i64, u64), oneshot::Sender<Slot>>; 3],
    /// Whether the next routing job is the newest (else the oldest).
    newest_next: bool,
    /// Routing jobs handed out in a row while background work waited.
    route_streak: u32,
}

impl Slots {
    /// The next waiting job to hand a free worker to.
    fn next_waiter(&mut self) -> Option<oneshot::Sender<Slot>> {
        if let Some((_, tx)) = self.waiting[Priority::Interactive as usize].pop_first() {
            return Some(tx);
        }
        let background_waits = !self.waiting[Priority::Background as usize].is_empty();
        let route = &mut self.waiting[Priority::Route as usize];
        let background_due = background_waits && self.route_streak >= ROUTE_STREAK;
        if !route.is_empty() && !background_due {
            self.route_streak = if background_waits {
                self.route_streak + 1
            } else {
                0
            };
            let newest = self.newest_next;
            self.newest_next = !newest;
            let next = if newest {
                route.pop_last()
            } else {
                route.pop_first()
            };
            return next.map(|(_, tx)| tx);
        }
        self.route_streak = 0;
        self.waiting[Priority::Background as usize]
            .pop_first()
            .map(|(_, tx)| tx)
    }
}

/// The right to use one worker; handed on to the next waiting job when dropped.
#[derive(Debug)]
struct Slot {
    inner: Option<Arc<Inner>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            release(&inner);
        }
    }
}

fn release(inner: &Arc<Inner>) {
    let mut slots = lock(&inner.slots);
    while let Some(tx) = slots.next_waiter() {
        match tx.send(Slot {
            inner: Some(inner.clone()),
        }) {
            Ok(()) => return,
            // The waiter gave up (its task was cancelled): try the next one.
            Err(mut slot) => slot.inner = None,
        }
    }
    slots.free += 1;
}

impl Pool {
    /// A pool of at most `size` workers (at least 1), started on demand.
    pub fn new(command: WorkerCommand, size: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                command,
                size: size.max(1),
                slots: Mutex::new(Slots {
                    free: size.max(1),
                    seq: 0,
                    waiting: Default::default(),
                    newest_next: true,
                    route_streak: 0,
                }),
                idle: Mutex::new(Vec::new()),
                sandbox: Mutex::new(None),
            }),
        }
    }

    async fn acquire(&self, urgency: Urgency) -> Result<Slot, ExtractError> {
        let rx = {
            let mut slots = lock(&self.inner.slots);
            if slots.free > 0 && slots.waiting.iter().all(|q| q.is_empty()) {
                slots.free -= 1;
                return Ok(Slot {
                    inner: Some(self.inner.clone()),
                });
            }
            let (tx, rx) = oneshot::channel();
            slots.seq += 1;
            let key = (urgency.order, slots.seq);
            slots.waiting[urgency.priority as usize].insert(key, tx);
            rx
        };
        rx.await
            .map_err(|_| ExtractError::Io("worker pool closed".into()))
    }

    /// Runs one job on a worker under `timeout` (counted from when a worker takes it, not
    /// while it waits): copies its input (and page list) into the worker's directory, and
    /// returns the results read back (within [`Limits`]) when the worker has written them.
    /// `request.out` is chosen by the pool.
    pub async fn run(
        &self,
        request: &Request,
        timeout: Duration,
        urgency: Urgency,
    ) -> Result<Output, ExtractError> {
        let slot = self.acquire(urgency).await?;
        let idle = lock(&self.inner.idle).pop();
        let mut worker = match idle {
            Some(mut w) => {
                if matches!(w.child.try_wait(), Ok(None)) {
                    w
                } else {
                    // A worker that died while idle (the system's OOM killer, say) is not
                    // reused.
                    w.kill();
                    self.spawn().await?
                }
            }
            None => self.spawn().await?,
        };
        let limits = &self.inner.command.limits;
        let mut result = worker.run_job(request, timeout, limits).await;
        if matches!(result, Err(ExtractError::Crashed(_))) && worker.jobs > 1 {
            // A worker that served other documents before may have died of what they left
            // (memory, a broken pipe): the document gets a fresh worker before it is blamed.
            worker.kill();
            worker = self.spawn().await?;
            result = worker.run_job(request, timeout, limits).await;
        }
        match &result {
            Ok(_) if worker.jobs < MAX_JOBS_PER_WORKER => lock(&self.inner.idle).push(worker),
            Ok(_) => worker.retire().await,
            Err(_) => worker.kill(),
        }
        drop(slot);
        result
    }

    /// Starts a worker and records what it reports of its sandbox (a warning in the log, once
    /// per process, when it is not fully enforced).
    async fn spawn(&self) -> Result<Worker, ExtractError> {
        let worker = Worker::spawn(&self.inner.command).await?;
        note_sandbox(&worker.sandbox);
        *lock(&self.inner.sandbox) = Some(worker.sandbox.clone());
        Ok(worker)
    }

    /// What the most recently started worker reported of its sandbox (`None` before the first
    /// worker started).
    pub fn sandbox_status(&self) -> Option<Status> {
        lock(&self.inner.sandbox).clone()
    }

    /// The number of workers.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Process ids of the running workers (for tests and metrics).
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.inner.idle)
            .iter()
            .filter_map(|w| w.pid)
            .collect()
    }
}

/// One worker process.
#[derive(Debug)]
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: Option<u32>,
    jobs: u32,
    stderr: Arc<Mutex<Vec<u8>>>,
    alive: bool,
    sandbox: Status,
    /// Job inputs (read only for the worker).
    input_dir: PathBuf,
    /// Job results and the worker's temporary files.
    work_dir: PathBuf,
    // Dropped (removed) with the worker: what a killed job left behind goes with it.
    _tmp: tempfile::TempDir,
}

/// Logs a worker's sandbox: a warning, once per process, when it is not fully enforced.
fn note_sandbox(status: &Status) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if status.level() == "full" {
        tracing::debug!(sandbox = %status.summary(), "extraction worker locked in");
    } else if !WARNED.swap(true, Ordering::Relaxed) {
        if status.enabled {
            tracing::warn!(sandbox = %status.summary(), "the extraction sandbox is not fully enforced on this system");
        } else {
            tracing::warn!(
                "the extraction sandbox is off (extract.sandbox = false): parsers run with the daemon's environment, files and network"
            );
        }
    }
}

/// Reads `path` when it exists, up to `limit` bytes; more is an error that names `what`.
fn read_capped(path: &Path, limit: u64, what: &str) -> Result<Option<Vec<u8>>, ExtractError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExtractError::Io(e.to_string())),
    };
    let too_large = || ExtractError::OutputTooLarge {
        what: what.to_string(),
        limit_mb: limit.div_ceil(1024 * 1024),
    };
    if file.metadata().map(|m| m.len() > limit).unwrap_or(false) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ExtractError::Io(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// Copies `from` into `dir` under its own file name; returns the copy's path.
fn copy_into(from: &Path, dir: &Path) -> Result<PathBuf, ExtractError> {
    let name = from
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "input".into());
    let to = dir.join(name);
    std::fs::copy(from, &to).map_err(|e| {
        ExtractError::Io(format!("cannot hand {} to the worker: {e}", from.display()))
    })?;
    Ok(to)
}

impl Worker {
    async fn spawn(command: &WorkerCommand) -> Result<Self, ExtractError> {
        let io = |e: std::io::Error| ExtractError::Io(e.to_string());
        let tmp = tempfile::Builder::new()
            .prefix(&command.dir_prefix)
            .tempdir()
            .map_err(io)?;
        let input_dir = tmp.path().join("in");
        let work_dir = tmp.path().join("work");
        let tmp_dir = work_dir.join("tmp");
        std::fs::create_dir_all(&input_dir).map_err(io)?;
        std::fs::create_dir_all(&tmp_dir).map_err(io)?;
        let limits = &command.limits;
        let policy = sandbox::Policy {
            enabled: limits.sandbox,
            input_dir: input_dir.clone(),
            work_dir: work_dir.clone(),
            read_paths: limits.read_paths.clone(),
        };
        let mut cmd = tokio::process::Command::new(&command.exe);
        cmd.arg("extract-worker")
            .arg("--options")
            .arg(&command.options)
            .arg("--sandbox")
            .arg(serde_json::to_string(&policy).map_err(|e| ExtractError::Io(e.to_string()))?);
        if limits.sandbox {
            // Nothing of the daemon's environment (its secrets above all) but what parsers
            // need.
            cmd.env_clear();
            for key in sandbox::PASSED_ENV {
                if let Some(v) = std::env::var_os(key) {
                    cmd.env(key, v);
                }
            }
            if std::env::var_os("PATH").is_none() {
                cmd.env("PATH", sandbox::DEFAULT_PATH);
            }
            cmd.env("HOME", &work_dir).current_dir(&work_dir);
        }
        // One OCR thread per worker: parallelism comes from workers, not from inside
        // Tesseract.
        cmd.env("OMP_THREAD_LIMIT", "1")
            .env("TMPDIR", &tmp_dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let memory = command.memory_limit;
        let sandboxed = limits.sandbox;
        let fsize = limits.max_output_bytes;
        let nproc = limits.max_processes;
        // The CPU limit is renewed per job by the worker (soft limit); the hard limit bounds
        // a worker's whole life.
        let cpu_hard = limits
            .cpu_secs
            .saturating_mul(u64::from(MAX_JOBS_PER_WORKER) + 10);
        // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let set = |resource, value: u64| {
                    let rl = libc::rlimit {
                        rlim_cur: value as libc::rlim_t,
                        rlim_max: value as libc::rlim_t,
                    };
                    if libc::setrlimit(resource, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                if memory > 0 {
                    set(libc::RLIMIT_AS, memory)?;
                }
                if sandboxed {
                    // No core dumps: a worker's memory holds citizens' letters.
                    set(libc::RLIMIT_CORE, 0)?;
                    if fsize > 0 {
                        set(libc::RLIMIT_FSIZE, fsize)?;
                    }
                    if nproc > 0 {
                        set(libc::RLIMIT_NPROC, nproc)?;
                    }
                    if cpu_hard > 0 {
                        set(libc::RLIMIT_CPU, cpu_hard)?;
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            ExtractError::Io(format!("cannot start {}: {e}", command.exe.display()))
        })?;
        let (Some(stdin), Some(stdout), Some(err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ExtractError::Io("worker pipes missing".into()));
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(drain_stderr(err, stderr.clone()));
        let pid = child.id();
        let mut worker = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            pid,
            jobs: 0,
            stderr,
            alive: true,
            sandbox: Status::off(),
            input_dir,
            work_dir,
            _tmp: tmp,
        };
        worker.sandbox = worker.greeting().await?;
        tracing::debug!(pid, "extraction worker started");
        Ok(worker)
    }

    /// Reads the worker's first line: `ready` and its sandbox status as JSON.
    async fn greeting(&mut self) -> Result<Status, ExtractError> {
        let line = tokio::time::timeout(STARTUP_TIMEOUT, self.answer()).await;
        let failed = |why: String| ExtractError::Io(format!("the worker did not start: {why}"));
        let line = match line {
            Err(_) => {
                self.kill();
                return Err(failed("no greeting in time".into()));
            }
            Ok(Err(e)) => {
                self.kill();
                return Err(failed(e.to_string()));
            }
            Ok(Ok(l)) => l,
        };
        let Some(json) = line.trim().strip_prefix("ready") else {
            self.kill();
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err(failed(format!("{:?}; {}", line.trim(), self.stderr_tail())));
        };
        let json = json.trim();
        if json.is_empty() {
            return Ok(Status::off());
        }
        serde_json::from_str(json).map_err(|e| failed(format!("unreadable greeting: {e}")))
    }

    /// One line from the worker's answer channel, at most [`MAX_ANSWER_LINE`] bytes (an empty
    /// string when it closed).
    async fn answer(&mut self) -> std::io::Result<String> {
        let mut buf = Vec::new();
        (&mut self.stdout)
            .take(MAX_ANSWER_LINE)
            .read_until(b'\n', &mut buf)
            .await?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// The last 400 characters the worker wrote to standard error.
    fn stderr_tail(&self) -> String {
        let t = lock(&self.stderr);
        let text = String::from_utf8_lossy(&t[t.len().saturating_sub(1600)..]).into_owned();
        let chars: Vec<char> = text.chars().collect();
        chars[chars.len().saturating_sub(400)..]
            .iter()
            .collect::<String>()
            .trim()
            .to_string()
    }

    /// Runs one job in this worker: hands over its input, calls, reads the results back and
    /// removes the job's directories.
    async fn run_job(
        &mut self,
        request: &Request,
        timeout: Duration,
        limits: &Limits,
    ) -> Result<Output, ExtractError> {
        let io = |e: std::io::Error| ExtractError::Io(e.to_string());
        let n = self.jobs + 1;
        let input = self.input_dir.join(n.to_string());
        let work = self.work_dir.join(n.to_string());
        std::fs::create_dir_all(&input).map_err(io)?;
        std::fs::create_dir_all(&work).map_err(io)?;
        let mut sent = request.clone();
        let result = async {
            sent.file = copy_into(&request.file, &input)?;
            sent.pages = match &request.pages {
                Some(p) => Some(copy_into(p, &input)?),
                None => None,
            };
            sent.out = work.join("result.json");
            self.call(&sent, timeout, limits).await?;
            let json = read_capped(&sent.out, limits.max_json_bytes, "JSON")?;
            let file = match &request.result_file {
                Some(name) => read_capped(&work.join(name), limits.max_output_bytes, name)?,
                None => None,
            };
            Ok(Output { json, file })
        }
        .await;
        let _ = std::fs::remove_dir_all(&input);
        let _ = std::fs::remove_dir_all(&work);
        result
    }

    async fn call(
        &mut self,
        request: &Request,
        timeout: Duration,
        limits: &Limits,
    ) -> Result<(), ExtractError> {
        use std::os::unix::process::ExitStatusExt;
        let mut line =
            serde_json::to_string(request).map_err(|e| ExtractError::Io(e.to_string()))?;
        line.push('\n');
        self.jobs += 1;
        lock(&self.stderr).clear();
        let exchange = async {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.flush().await?;
            self.answer().await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                self.kill();
                Err(ExtractError::Timeout(timeout.as_secs()))
            }
            Ok(Ok(answer)) if answer.trim() == "done" => Ok(()),
            Ok(other) => {
                // The worker died (crash, a resource limit) or said something unexpected.
                let exited =
                    match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
                        Ok(Ok(s)) => Ok(s),
                        _ => Err(match other {
                            Ok(answer) => format!("unexpected answer {:?}", truncate(&answer)),
                            Err(e) => e.to_string(),
                        }),
                    };
                self.kill();
                match exited.as_ref().ok().and_then(|s| s.signal()) {
                    Some(libc::SIGXCPU) => return Err(ExtractError::CpuLimit(request.cpu_secs)),
                    Some(libc::SIGXFSZ) => {
                        return Err(ExtractError::FileSizeLimit(
                            limits.max_output_bytes.div_ceil(1024 * 1024),
                        ));
                    }
                    _ => {}
                }
                let status = match exited {
                    Ok(s) => s.to_string(),
                    Err(why) => why,
                };
                // Give the stderr reader a moment to collect the last words.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(ExtractError::Crashed(format!(
                    "{status}; {}",
                    self.stderr_tail()
                )))
            }
        }
    }

    /// Kills the worker's whole process group (the worker and any renderer it started).
    fn kill(&mut self) {
        if !self.alive {
            return;
        }
        self.alive = false;
        if let Some(pid) = self.pid {
            // SAFETY: plain syscall on a process group we created.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }

    /// Ends a worker that did its share: closing its input makes it exit.
    async fn retire(mut self) {
        let _ = self.stdin.shutdown().await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            self.kill();
        }
        self.alive = false;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A job whose task was cancelled (shutdown, a browser that went away) leaves no
        // process behind.
        self.kill();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The first 200 characters of an unexpected answer.
fn truncate(s: &str) -> String {
    s.trim().chars().take(200).collect()
}

/// Reads a worker's standard error until it closes, keeping the last [`STDERR_KEEP`] bytes:
/// a worker that writes without end costs the daemon a fixed amount of memory.
async fn drain_stderr(mut err: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match err.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut t = lock(&tail);
                t.extend_from_slice(&chunk[..n]);
                if t.len() > 2 * STDERR_KEEP {
                    let cut = t.len() - STDERR_KEEP;
                    t.drain(..cut);
                }
            }
        }
    }
}

/// The worker side: greets with `ready` and its sandbox `status` (JSON), then reads one
/// [`Request`] per line from standard input, renews its CPU limit, runs it with `run_job`
/// and answers `done` on the protocol channel when its result is written. Standard output is
/// redirected to standard error first, so that nothing a library prints can be mistaken for an
/// answer. Returns when standard input closes.
pub fn serve(
    status: &Status,
    run_job: impl Fn(Job, MediaType, &Path, &Path, Option<&Path>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    use std::os::fd::FromRawFd;
    // SAFETY: dup/dup2 on the process's own standard descriptors; the duplicate is owned by
    // the File below and by nothing else.
    let mut answers = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        std::fs::File::from_raw_fd(fd)
    };
    let greeting = serde_json::to_string(status).map_err(std::io::Error::other)?;
    answers.write_all(format!("ready {greeting}\n").as_bytes())?;
    answers.flush()?;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let req: Request = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        let job = Job::parse(&req.job)
            .ok_or_else(|| std::io::Error::other(format!("unknown job {}", req.job)))?;
        let media = MediaType::from_mime(&req.media)
            .ok_or_else(|| std::io::Error::other(format!("unknown media type {}", req.media)))?;
        if status.enabled {
            sandbox::limit_cpu_for_next_job(req.cpu_secs);
        }
        run_job(job, media, &req.file, &req.out, req.pages.as_deref())?;
        trim_heap();
        answers.write_all(b"done\n")?;
        answers.flush()?;
    }
    Ok(())
}

/// Gives freed heap memory back to the system between jobs, so an idle worker does not keep
/// the peak of its largest page.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc's malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> Slots {
        Slots {
            free: 0,
            seq: 0,
            waiting: Default::default(),
            newest_next: true,
            route_streak: 0,
        }
    }

    fn wait(s: &mut Slots, u: Urgency) -> oneshot::Receiver<Slot> {
        let (tx, rx) = oneshot::channel();
        s.seq += 1;
        let key = (u.order, s.seq);
        s.waiting[u.priority as usize].insert(key, tx);
        rx
    }

    /// A stand-in worker: a shell script speaking the line protocol. It appends its pid to
    /// `pids`, answers `done`, dies on a job whose file name contains "crash" and sleeps (in a
    /// child process, like a renderer) on one that contains "hang".
    fn script_pool(dir: &Path, size: usize) -> Pool {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("worker.sh");
        let pids = dir.join("pids");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho ready\nwhile read -r line; do\n  echo $$ >> {pids}\n  case \"$line\" in\n    *crash*) echo dying >&2; exit 3 ;;\n    *hang*) sleep 30 ;;\n  esac\n  echo done\ndone\n",
                pids = pids.display()
            ),
        )
        .expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Pool::new(
            WorkerCommand {
                exe: script,
                options: "{}".into(),
                memory_limit: 0,
                limits: Limits::default(),
                dir_prefix: DEFAULT_DIR_PREFIX.into(),
            },
            size,
        )
    }

    /// A job whose input file (created in the system's temporary directory) is named
    /// `name`: the stand-in worker reacts to the name.
    fn request(name: &str) -> Request {
        let file = std::env::temp_dir().join(format!("poststelle-pool-test-{name}"));
        std::fs::write(&file, b"x").expect("input");
        Request {
            job: "extract".into(),
            media: "image/png".into(),
            file,
            out: PathBuf::from("/nonexistent/result.json"),
            pages: None,
            cpu_secs: 0,
            result_file: None,
        }
    }

    fn pids(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("pids"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn a_worker_serves_many_jobs_and_one_that_dies_or_hangs_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = script_pool(dir.path(), 1);
        let t = Duration::from_secs(5);
        for name in ["a.png", "b.png", "c.png"] {
            pool.run(&request(name), t, Urgency::route(0))
                .await
                .expect("job");
        }
        let seen = pids(dir.path());
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|p| *p == seen[0]), "one process: {seen:?}");

        let crashed = pool.run(&request("crash.png"), t, Urgency::route(0)).await;
        match crashed {
            Err(ExtractError::Crashed(why)) => {
                assert!(why.contains("exit status: 3"), "{why}");
                assert!(why.contains("dying"), "stderr kept: {why}");
            }
            other => panic!("expected a crash, got {other:?}"),
        }
        let seen = pids(dir.path());
        assert_eq!(seen.len(), 5, "tried once more on a fresh worker: {seen:?}");
        assert_ne!(seen[4], seen[3], "{seen:?}");
        pool.run(&request("d.png"), t, Urgency::route(0))
            .await
            .expect("the next job runs on a fresh worker");
        let seen = pids(dir.path());
        assert_ne!(seen[5], seen[0], "replaced: {seen:?}");

        let started = std::time::Instant::now();
        let hung = pool
            .run(
                &request("hang.png"),
                Duration::from_secs(1),
                Urgency::route(0),
            )
            .await;
        assert!(matches!(hung, Err(ExtractError::Timeout(1))), "{hung:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let hung_pid = pids(dir.path())[6].clone();
        pool.run(&request("e.png"), t, Urgency::route(0))
            .await
            .expect("and again a fresh worker");
        let seen = pids(dir.path());
        assert_ne!(seen[7], hung_pid);
        // The hung worker's whole process group is gone (its sleeping child included).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pgid = hung_pid.trim();
        let living: Vec<String> = std::fs::read_dir("/proc")
            .expect("proc")
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                // After the command's closing parenthesis: state, ppid, pgrp.
                let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                let f: Vec<&str> = rest.split_whitespace().collect();
                f.len() > 2 && f[2] == pgid && f[0] != "Z"
            })
            .collect();
        assert!(
            living.is_empty(),
            "the timed-out worker's process group was killed: {living:?}"
        );
    }

    #[tokio::test]
    async fn stderr_is_drained_into_a_bounded_buffer() {
        let mut child = tokio::process::Command::new("sh")
            .args([
                "-c",
                "head -c 20000000 /dev/zero | tr '\\0' x >&2; echo end >&2",
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let err = child.stderr.take().expect("stderr");
        let tail = Arc::new(Mutex::new(Vec::new()));
        drain_stderr(err, tail.clone()).await;
        child.wait().await.expect("wait");
        let t = lock(&tail);
        assert!(
            t.len() >= STDERR_KEEP && t.len() <= 2 * STDERR_KEEP,
            "{}",
            t.len()
        );
        assert!(t.ends_with(b"xend\n"), "the last words are kept");
    }

    #[test]
    fn results_are_read_up_to_their_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("result.pdf");
        std::fs::write(&f, vec![0u8; 2048]).expect("write");
        assert_eq!(
            read_capped(&f, 2048, "result.pdf").expect("at the limit"),
            Some(vec![0u8; 2048])
        );
        assert!(matches!(
            read_capped(&f, 2047, "result.pdf"),
            Err(ExtractError::OutputTooLarge { .. })
        ));
        assert_eq!(
            read_capped(&dir.path().join("none"), 1, "x").expect("missing"),
            None
        );
    }

    #[tokio::test]
    async fn two_workers_run_two_jobs_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = script_pool(dir.path(), 2);
        let t = Duration::from_secs(5);
        let (ra, rb) = (request("a.png"), request("b.png"));
        let (a, b) = tokio::join!(
            pool.run(&ra, t, Urgency::route(0)),
            pool.run(&rb, t, Urgency::background(0)),
        );
        a.expect("a");
        b.expect("b");
        let mut seen = pids(dir.path());
        seen.dedup();
        assert_eq!(seen.len(), 2, "{seen:?}");
    }

    /// Hands a slot to each waiter in the order the queue chooses; returns their names.
    fn hand_out<N>(s: &mut Slots, mut rxs: Vec<(N, oneshot::Receiver<Slot>)>) -> Vec<N> {
        let mut order = Vec::new();
        while let Some(tx) = s.next_waiter() {
            let _ = tx.send(Slot { inner: None });
            let i = rxs
                .iter_mut()
                .position(|(_, rx)| rx.try_recv().is_ok())
                .expect("one receiver got the slot");
            order.push(rxs.remove(i).0);
        }
        order
    }

    #[test]
    fn background_work_gets_a_turn_during_a_long_run_of_routing() {
        let mut s = slots();
        let mut rxs: Vec<(String, oneshot::Receiver<Slot>)> = (0..20)
            .map(|i| (format!("route-{i}"), wait(&mut s, Urgency::route(i))))
            .collect();
        rxs.push(("bg".into(), wait(&mut s, Urgency::background(0))));
        let order = hand_out(&mut s, rxs);
        let bg = order.iter().position(|n| n == "bg").expect("bg ran");
        assert_eq!(bg, ROUTE_STREAK as usize, "{order:?}");
    }

    #[test]
    fn people_first_then_routing_alternating_newest_and_oldest_then_the_rest() {
        let mut s = slots();
        let rxs = vec![
            ("bg-old", wait(&mut s, Urgency::background(1))),
            ("route-1", wait(&mut s, Urgency::route(1))),
            ("route-2", wait(&mut s, Urgency::route(2))),
            ("route-3", wait(&mut s, Urgency::route(3))),
            ("bg-new", wait(&mut s, Urgency::background(9))),
            ("desk", wait(&mut s, Urgency::interactive())),
        ];
        let order = hand_out(&mut s, rxs);
        assert_eq!(
            order,
            ["desk", "route-3", "route-1", "route-2", "bg-old", "bg-new"]
        );
    }
}
