//! The privileges of an extraction worker: what a parser bug (in poppler, Tesseract, lopdf, the
//! image decoders) could reach if a hostile file took over the worker process.
//!
//! The daemon starts each worker ([`super::pool`]) with an explicit, minimal environment (no
//! `POSTSTELLE__*` secrets, nothing inherited), its own process group and resource limits
//! (`RLIMIT_AS`, `RLIMIT_FSIZE`, `RLIMIT_NPROC`, `RLIMIT_CPU`, no core dumps). Before it reads
//! its first job, the worker locks itself in with [`apply`], in this order, while it still has
//! one thread:
//!
//! 1. **Network**: a new user and network namespace (`unshare(CLONE_NEWUSER | CLONE_NEWNET)`):
//!    no interface but a loopback that is down, so neither the machine's loopback services nor
//!    anything outside can be reached. Where the kernel refuses (user namespaces switched off,
//!    a container), the syscall filter below still refuses every socket.
//! 2. **Capabilities**: the bounding set and every capability are dropped; `no_new_privs` is
//!    set, so no program the worker starts can gain any.
//! 3. **Files** (Landlock): read-only access to the system paths parsers need (`/usr`, `/lib*`,
//!    a few files under `/etc`, fontconfig's cache, the tessdata directory and the paths in
//!    `extract.sandbox_read_paths`), read-only access to its job inputs and full access to its
//!    own work directory only. TCP `bind`/`connect` and (ABI 6) abstract UNIX sockets and
//!    signals outside the sandbox are refused as well. Best effort: a kernel without Landlock
//!    leaves the files open, and [`Status`] says so.
//! 4. **System calls** (seccomp): `socket`, `connect`, `bind`, `listen`, `accept`, `ptrace`,
//!    `process_vm_*`, `mount` and the other file-system mount calls, `unshare`, `setns`,
//!    namespace flags of `clone`, `kexec_*`, module loading, `bpf`, `perf_event_open`,
//!    `keyctl`, `add_key`, `request_key`, `userfaultfd`, `io_uring_*`, `open_by_handle_at`,
//!    `personality` changes, clock and host name changes, `reboot`, `swapon` and others answer
//!    `EPERM`; another architecture's system call ABI (x32 included) ends the process.
//!
//! [`probe`] is the other side of the tests: a job that tries, from inside the locked worker,
//! to read and write files, to connect to addresses and to write large outputs, and reports
//! what succeeded (never the contents it read).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Environment variables a worker gets from the daemon when they are set there (nothing else
/// is inherited; `OMP_THREAD_LIMIT`, `TMPDIR` and `HOME` are set by the pool).
pub const PASSED_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TESSDATA_PREFIX",
];

/// The `PATH` a worker gets when the daemon has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// System paths a worker may read and execute from (those that exist).
const SYSTEM_EXEC: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// System paths a worker may read (those that exist): the dynamic linker's cache, fontconfig
/// (poppler), the time zone, CPU topology (OpenMP, the standard library), the worker's own
/// `/proc` entry.
const SYSTEM_READ: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/fonts",
    "/etc/localtime",
    "/var/cache/fontconfig",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/proc/self",
    "/dev/urandom",
    "/dev/zero",
];

/// What a worker locks itself into (passed by the pool as JSON on its command line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Policy {
    /// Whether to apply the sandbox at all (`extract.sandbox`; off only for diagnosis).
    pub enabled: bool,
    /// Job inputs (copied here by the daemon): read only.
    pub input_dir: PathBuf,
    /// Results and temporary files: read and write.
    pub work_dir: PathBuf,
    /// Further read-only paths: the tessdata directory, `extract.sandbox_read_paths`.
    pub read_paths: Vec<PathBuf>,
}

/// How far a part of the sandbox is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Everything asked for is enforced.
    Full,
    /// Enforced in part (an older kernel: some access rights are not known to it).
    Partial,
    /// Not enforced (the kernel lacks it, or the sandbox is off).
    None,
}

/// How a worker is cut off from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Its own network namespace (no interfaces) and the syscall filter (no sockets).
    Namespace,
    /// The syscall filter only (no sockets); the kernel refused a network namespace.
    SyscallFilter,
    /// Not cut off (the sandbox is off, or neither could be applied).
    Open,
}

/// What a worker enforces, as it reported it after locking itself in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Whether the sandbox was asked for (`extract.sandbox`).
    pub enabled: bool,
    /// File-system restriction (Landlock).
    pub landlock: Enforcement,
    /// The kernel's Landlock ABI version (0: none).
    pub landlock_abi: i32,
    /// Network isolation.
    pub network: Network,
    /// Whether the syscall filter is installed.
    pub seccomp: bool,
    /// Whether `no_new_privs` is set.
    pub no_new_privs: bool,
    /// Why a part could not be applied (empty when everything is enforced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Status {
    /// The status of a worker that runs without the sandbox.
    pub fn off() -> Self {
        Self {
            enabled: false,
            landlock: Enforcement::None,
            landlock_abi: 0,
            network: Network::Open,
            seccomp: false,
            no_new_privs: false,
            problems: Vec::new(),
        }
    }

    /// `full` when every part is enforced, `partial` when some are, `off` when none is.
    pub fn level(&self) -> &'static str {
        let full = self.landlock == Enforcement::Full
            && self.network == Network::Namespace
            && self.seccomp
            && self.no_new_privs;
        let none =
            self.landlock == Enforcement::None && self.network == Network::Open && !self.seccomp;
        if full {
            "full"
        } else if none {
            "off"
        } else {
            "partial"
        }
    }

    /// One line for logs and `check-sandbox`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} (landlock: {:?}, ABI {}; network: {:?}; seccomp: {}; no_new_privs: {})",
            self.level(),
            self.landlock,
            self.landlock_abi,
            self.network,
            self.seccomp,
            self.no_new_privs
        )
        .to_lowercase();
        if !self.problems.is_empty() {
            s.push_str("; ");
            s.push_str(&self.problems.join("; "));
        }
        s
    }
}

/// Locks the calling process in (see the module documentation). Must run while the process has
/// one thread, before any untrusted input is read. Parts the kernel does not offer are left out
/// and named in [`Status::problems`]; the rest is enforced.
pub fn apply(policy: &Policy) -> Status {
    if !policy.enabled {
        return Status::off();
    }
    let mut problems = Vec::new();
    let namespace = match enter_network_namespace() {
        Ok(()) => true,
        Err(e) => {
            problems.push(format!("no network namespace: {e}"));
            false
        }
    };
    drop_capabilities();
    let (landlock, abi, nnp) = match restrict_files(policy) {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("landlock: {e}"));
            (Enforcement::None, landlock_abi(), false)
        }
    };
    if landlock == Enforcement::None && abi == 0 {
        problems.push("the kernel has no Landlock: files are not restricted".into());
    }
    // SAFETY: prctl with constant arguments.
    let nnp = nnp || unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0;
    let seccomp = match seccomp::install() {
        Ok(()) => true,
        Err(e) => {
            problems.push(format!("seccomp: {e}"));
            false
        }
    };
    let network = match (namespace, seccomp) {
        (true, _) => Network::Namespace,
        (false, true) => Network::SyscallFilter,
        (false, false) => Network::Open,
    };
    Status {
        enabled: true,
        landlock,
        landlock_abi: abi,
        network,
        seccomp,
        no_new_privs: nnp,
        problems,
    }
}

/// The kernel's Landlock ABI version, 0 without Landlock.
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the documented way to ask for the ABI version: no attributes, size 0.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// A new user namespace (the same user id and group id inside) with a new network namespace.
fn enter_network_namespace() -> std::io::Result<()> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare with constant flags; the process has one thread.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The same ids inside, so that files keep their owners. Without the maps the namespace
    // works as well (ids show as nobody), so failures here are not fatal.
    let _ = std::fs::write("/proc/self/setgroups", "deny");
    let _ = std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"));
    let _ = std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"));
    Ok(())
}

/// Drops the capability bounding set and every capability (a worker that runs as root, or that
/// holds capabilities in its new user namespace, keeps none).
fn drop_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    for cap in 0..64 {
        // SAFETY: prctl with plain integer arguments; EINVAL past the last capability.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
        {
            break;
        }
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset with a version-3 header and two data structs, as the kernel expects.
    unsafe {
        libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr());
    }
}

/// Landlock: returns the enforcement, the kernel's ABI and whether `no_new_privs` is set.
fn restrict_files(policy: &Policy) -> Result<(Enforcement, i32, bool), landlock::RulesetError> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        Scope, path_beneath_rules,
    };
    let abi = ABI::V6;
    let read = AccessFs::from_read(abi);
    let read_exec = read | AccessFs::Execute;
    let mut ro: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
    ro.extend(policy.read_paths.iter().cloned());
    ro.push(policy.input_dir.clone());
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(SYSTEM_EXEC, read_exec))?
        .add_rules(path_beneath_rules(&ro, read))?
        .add_rules(path_beneath_rules(["/dev/null"], AccessFs::from_file(abi)))?
        .add_rules(path_beneath_rules(
            [&policy.work_dir],
            AccessFs::from_all(abi),
        ))?
        .restrict_self()?;
    let level = match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::None,
    };
    Ok((level, landlock_abi(), status.no_new_privs))
}

/// Sets the soft CPU-time limit to `secs` seconds beyond what the process has used so far (at
/// most its hard limit): the limit of the next job. A job beyond it gets `SIGXCPU`.
pub fn limit_cpu_for_next_job(secs: u64) {
    if secs == 0 {
        return;
    }
    // SAFETY: getrusage/getrlimit/setrlimit on this process with valid out-pointers.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0
            || libc::getrlimit(libc::RLIMIT_CPU, &mut rl) != 0
        {
            return;
        }
        let used = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec).max(0) as u64 + 1;
        let want = used.saturating_add(secs) as libc::rlim_t;
        rl.rlim_cur = if rl.rlim_max == libc::RLIM_INFINITY {
            want
        } else {
            want.min(rl.rlim_max)
        };
        libc::setrlimit(libc::RLIMIT_CPU, &rl);
    }
}

/// When a program the worker started (a renderer) was ended by a resource limit of the sandbox
/// (`SIGXCPU`, `SIGXFSZ`), ends the worker by the same signal, so that the daemon reports the
/// job's limit (a clear reason) instead of a broken file.
pub fn pass_on_limit_signal(status: &std::process::ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig @ (libc::SIGXCPU | libc::SIGXFSZ)) = status.signal() {
        // SAFETY: resets the signal's disposition to its default (terminate) and raises it.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// The seccomp filter, built by hand as classic BPF.
mod seccomp {
    /// Offsets in `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const ARG0: u32 = 16;

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    /// x32 system calls on x86_64 carry this bit; the filter refuses them all.
    #[cfg(target_arch = "x86_64")]
    const X32_BIT: u32 = 0x4000_0000;

    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;

    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

    /// Namespace flags `clone` may not carry.
    const CLONE_NAMESPACES: u32 = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u32;

    /// System calls that answer `EPERM`.
    fn denied() -> Vec<libc::c_long> {
        use libc::*;
        #[allow(unused_mut)]
        let mut v = vec![
            SYS_socket,
            SYS_connect,
            SYS_bind,
            SYS_listen,
            SYS_accept,
            SYS_accept4,
            SYS_ptrace,
            SYS_process_vm_readv,
            SYS_process_vm_writev,
            SYS_mount,
            SYS_umount2,
            SYS_pivot_root,
            SYS_chroot,
            SYS_move_mount,
            SYS_open_tree,
            SYS_fsopen,
            SYS_fsconfig,
            SYS_fsmount,
            SYS_fspick,
            SYS_mount_setattr,
            SYS_unshare,
            SYS_setns,
            SYS_kexec_load,
            SYS_kexec_file_load,
            SYS_init_module,
            SYS_finit_module,
            SYS_delete_module,
            SYS_bpf,
            SYS_perf_event_open,
            SYS_keyctl,
            SYS_add_key,
            SYS_request_key,
            SYS_userfaultfd,
            SYS_io_uring_setup,
            SYS_io_uring_enter,
            SYS_io_uring_register,
            SYS_open_by_handle_at,
            SYS_name_to_handle_at,
            SYS_pidfd_getfd,
            SYS_kcmp,
            SYS_acct,
            SYS_quotactl,
            SYS_swapon,
            SYS_swapoff,
            SYS_reboot,
            SYS_settimeofday,
            SYS_clock_settime,
            SYS_clock_adjtime,
            SYS_adjtimex,
            SYS_sethostname,
            SYS_setdomainname,
            SYS_syslog,
            SYS_vhangup,
            SYS_fanotify_init,
        ];
        #[cfg(target_arch = "x86_64")]
        v.extend([SYS_iopl, SYS_ioperm, SYS_uselib]);
        v
    }

    fn stmt(code: u16, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }

    /// The filter program.
    pub(super) fn program() -> Vec<libc::sock_filter> {
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let enosys = RET_ERRNO | libc::ENOSYS as u32;
        let mut p = vec![
            stmt(LD_W_ABS, ARCH),
            jump(JEQ_K, AUDIT_ARCH, 1, 0),
            stmt(RET_K, RET_KILL_PROCESS),
            stmt(LD_W_ABS, NR),
        ];
        #[cfg(target_arch = "x86_64")]
        p.extend([jump(JGE_K, X32_BIT, 0, 1), stmt(RET_K, RET_KILL_PROCESS)]);
        for nr in denied() {
            p.extend([jump(JEQ_K, nr as u32, 0, 1), stmt(RET_K, eperm)]);
        }
        // clone3 passes its flags in memory, out of the filter's sight: "not implemented" makes
        // the C library fall back to clone, whose flags are checked below.
        p.extend([
            jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1),
            stmt(RET_K, enosys),
        ]);
        // clone: no new namespaces (flags are the first argument on x86_64 and aarch64).
        p.extend([
            jump(JEQ_K, libc::SYS_clone as u32, 0, 4),
            stmt(LD_W_ABS, ARG0),
            jump(JSET_K, CLONE_NAMESPACES, 0, 1),
            stmt(RET_K, eperm),
            stmt(RET_K, RET_ALLOW),
        ]);
        // personality: only the query (0xffffffff) and the Linux default (0).
        p.extend([
            jump(JEQ_K, libc::SYS_personality as u32, 0, 5),
            stmt(LD_W_ABS, ARG0),
            jump(JEQ_K, 0xffff_ffff, 2, 0),
            jump(JEQ_K, 0, 1, 0),
            stmt(RET_K, eperm),
            stmt(RET_K, RET_ALLOW),
        ]);
        p.push(stmt(RET_K, RET_ALLOW));
        p
    }

    /// Installs the filter on this process (`no_new_privs` is set first).
    pub(super) fn install() -> std::io::Result<()> {
        let mut program = program();
        let prog = libc::sock_fprog {
            len: u16::try_from(program.len()).map_err(std::io::Error::other)?,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: prctl with a valid filter program that outlives the call.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// What a probe job tries from inside the worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Probe {
    /// Files or directories to open for reading.
    #[serde(default)]
    pub read: Vec<PathBuf>,
    /// Files to create (or open) for writing; a file the probe creates is removed again.
    #[serde(default)]
    pub write: Vec<PathBuf>,
    /// TCP addresses to connect to.
    #[serde(default)]
    pub connect: Vec<SocketAddr>,
    /// Bytes to write to standard error (without a line break).
    #[serde(default)]
    pub stderr_bytes: u64,
    /// Bytes of padding in the JSON result.
    #[serde(default)]
    pub json_bytes: u64,
    /// Bytes to write into the result file (`result.bin`).
    #[serde(default)]
    pub result_bytes: u64,
    /// Seconds of CPU time to burn.
    #[serde(default)]
    pub cpu_secs: u64,
}

/// One attempted access: the path or address and `None` when it succeeded, else the error.
pub type Attempt = (String, Option<String>);

/// What a probe job found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The names of the worker's environment variables.
    pub env: Vec<String>,
    /// [`Probe::read`], in order.
    pub read: Vec<Attempt>,
    /// [`Probe::write`], in order.
    pub write: Vec<Attempt>,
    /// [`Probe::connect`], in order.
    pub connect: Vec<Attempt>,
    /// Whether an IPv4 TCP socket could be created at all.
    pub inet_socket: Option<String>,
    /// Padding ([`Probe::json_bytes`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub padding: String,
    /// Bytes of the result file the daemon read back (filled in by the daemon).
    #[serde(default)]
    pub result_len: u64,
}

impl ProbeReport {
    /// True when every attempted access failed and no socket could be made.
    pub fn all_refused(&self) -> bool {
        self.read
            .iter()
            .chain(&self.write)
            .chain(&self.connect)
            .all(|(_, e)| e.is_some())
            && self.inet_socket.is_some()
    }
}

/// Runs a probe in this process (the worker side of `Job::Probe`); the result file, if asked
/// for, is written to `result`.
pub fn probe(spec: &Probe, result: &Path) -> ProbeReport {
    use std::io::Write;
    let err = |r: std::io::Result<()>| r.err().map(|e| e.to_string());
    let mut env: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    env.sort();
    let read = spec
        .read
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                err(std::fs::File::open(p).map(drop)),
            )
        })
        .collect();
    let write = spec
        .write
        .iter()
        .map(|p| {
            let existed = p.exists();
            let r = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map(drop);
            if r.is_ok() && !existed {
                let _ = std::fs::remove_file(p);
            }
            (p.display().to_string(), err(r))
        })
        .collect();
    let connect = spec
        .connect
        .iter()
        .map(|a| {
            let r = std::net::TcpStream::connect_timeout(a, std::time::Duration::from_secs(2));
            (a.to_string(), err(r.map(drop)))
        })
        .collect();
    // SAFETY: socket/close with constant arguments.
    let inet_socket = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            Some(std::io::Error::last_os_error().to_string())
        } else {
            libc::close(fd);
            None
        }
    };
    if spec.stderr_bytes > 0 {
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = spec.stderr_bytes;
        let mut stderr = std::io::stderr().lock();
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if stderr.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = stderr.flush();
    }
    if spec.result_bytes > 0
        && let Ok(mut f) = std::fs::File::create(result)
    {
        let chunk = vec![0u8; 64 * 1024];
        let mut left = spec.result_bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
    }
    if spec.cpu_secs > 0 {
        let start = cpu_time();
        let mut x = 0u64;
        while cpu_time() - start < spec.cpu_secs as f64 {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
    }
    ProbeReport {
        env,
        read,
        write,
        connect,
        inet_socket,
        padding: "x".repeat(usize::try_from(spec.json_bytes).unwrap_or(0)),
        result_len: 0,
    }
}

/// CPU seconds this process has used.
fn cpu_time() -> f64 {
    // SAFETY: getrusage with a valid out-pointer.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_fits_in_one_program_and_ends_in_allow() {
        let p = seccomp::program();
        assert!(p.len() < 4096, "{}", p.len());
        assert_eq!(p.last().map(|i| i.k), Some(0x7fff_0000));
    }

    #[test]
    fn levels() {
        assert_eq!(Status::off().level(), "off");
        let full = Status {
            enabled: true,
            landlock: Enforcement::Full,
            landlock_abi: 6,
            network: Network::Namespace,
            seccomp: true,
            no_new_privs: true,
            problems: Vec::new(),
        };
        assert_eq!(full.level(), "full");
        let partial = Status {
            landlock: Enforcement::None,
            network: Network::SyscallFilter,
            ..full
        };
        assert_eq!(partial.level(), "partial");
        assert!(partial.summary().starts_with("partial"));
    }
}
