//! Test helpers: letters rendered at test time (born-digital PDF, scans as PNG/TIFF/image-PDF),
//! a config pointing every path into a temporary directory, and a daemon process to start and
//! kill.
#![allow(dead_code)]

pub mod smtp;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binary under test.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_poststelle"))
}

/// The repository root (tests run the binary from there, as a person would).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A model trained once per test binary from the shipped corpus, shared by all tests.
pub fn models_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("test-models-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(exe())
            .current_dir(repo())
            .env("POSTSTELLE__CLASSIFY__MODELS", &dir)
            .env(
                "POSTSTELLE__STORE__URL",
                format!("sqlite://{}/train.db", dir.display()),
            )
            .args(["train", "--folds", "3"])
            .output()
            .expect("run train");
        assert!(
            out.status.success(),
            "train failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .clone()
}

/// A line of text on an A4 page: (x mm from left, y mm from top, font size pt, text).
pub type Line<'a> = (f32, f32, f32, &'a str);

fn pdf_escape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in s.chars() {
        let b = match c {
            '€' => 0x80,
            c if (c as u32) < 256 => c as u32 as u8,
            _ => b'?',
        };
        if matches!(b, b'(' | b')' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Writes a PDF from objects (1-based ids) with a correct xref table.
fn write_pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut o = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    o.extend_from_slice(data);
    o.extend_from_slice(b"\nendstream");
    o
}

/// A born-digital one-page A4 PDF (Helvetica, text layer).
pub fn letter_pdf(lines: &[Line<'_>]) -> Vec<u8> {
    let mm = 72.0 / 25.4;
    let mut content = Vec::new();
    for (x, y, size, text) in lines {
        content.extend_from_slice(
            format!(
                "BT /F1 {size} Tf {:.2} {:.2} Td (",
                x * mm,
                841.89 - y * mm - size
            )
            .as_bytes(),
        );
        content.extend_from_slice(&pdf_escape(text));
        content.extend_from_slice(b") Tj ET\n");
    }
    write_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.28 841.89] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
        stream("", &content),
    ])
}

/// Renders page 1 of a PDF to an 8-bit gray image (as a scanner would deliver it).
pub fn render(pdf: &[u8], dpi: u32) -> image::GrayImage {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("in.pdf");
    std::fs::write(&p, pdf).expect("write");
    let out = Command::new("pdftoppm")
        .args(["-gray", "-r", &dpi.to_string(), "-f", "1", "-l", "1"])
        .arg(&p)
        .output()
        .expect("pdftoppm");
    assert!(out.status.success());
    image::load_from_memory(&out.stdout)
        .expect("pgm")
        .to_luma8()
}

/// Adds scanner-like noise (deterministic).
pub fn noisy(mut img: image::GrayImage, amount: u8) -> image::GrayImage {
    let mut s: u32 = 12345;
    for p in img.pixels_mut() {
        s = s.wrapping_mul(1103515245).wrapping_add(12345);
        let n = ((s >> 16) % (2 * amount as u32 + 1)) as i32 - amount as i32;
        p.0[0] = (p.0[0] as i32 + n).clamp(0, 255) as u8;
    }
    img
}

/// PNG bytes.
pub fn png(img: &image::GrayImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

/// A multi-page grayscale TIFF.
pub fn tiff(pages: &[&image::GrayImage]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut enc = tiff::encoder::TiffEncoder::new(&mut out).expect("tiff");
        for p in pages {
            enc.write_image::<tiff::encoder::colortype::Gray8>(p.width(), p.height(), p.as_raw())
                .expect("page");
        }
    }
    out.into_inner()
}

/// A scanned PDF: the page image as JPEG, no text layer.
pub fn scan_pdf(img: &image::GrayImage, dpi: u32) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 75)
        .encode_image(img)
        .expect("jpeg");
    let (w, h) = (img.width(), img.height());
    let (pw, ph) = (w as f32 * 72.0 / dpi as f32, h as f32 * 72.0 / dpi as f32);
    let content = format!("q {pw:.2} 0 0 {ph:.2} 0 0 cm /Im0 Do Q");
    write_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.2} {ph:.2}] /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>").into_bytes(),
        stream(&format!("/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode"), &jpeg),
        stream("", content.as_bytes()),
    ])
}

/// A DIN 5008 letter (form B) to a department, as lines for [`letter_pdf`].
pub fn din_letter<'a>(recipient: &[&'a str], subject: &'a str, body: &[&'a str]) -> Vec<Line<'a>> {
    let mut l: Vec<Line<'a>> = vec![
        (
            25.0,
            50.0,
            7.0,
            "Erika Mustermann · Lindenweg 4 · 12345 Musterstadt",
        ),
        (125.0, 50.0, 10.0, "Musterstadt, 03.02.2025"),
    ];
    for (i, r) in recipient.iter().enumerate() {
        l.push((25.0, 58.0 + i as f32 * 5.0, 11.0, r));
    }
    l.push((25.0, 103.0, 11.0, subject));
    l.push((25.0, 115.0, 11.0, "Sehr geehrte Damen und Herren,"));
    for (i, b) in body.iter().enumerate() {
        l.push((25.0, 123.0 + i as f32 * 6.0, 11.0, b));
    }
    l.push((
        25.0,
        130.0 + body.len() as f32 * 6.0,
        11.0,
        "Mit freundlichen Grüßen",
    ));
    l.push((
        25.0,
        142.0 + body.len() as f32 * 6.0,
        11.0,
        "Erika Mustermann",
    ));
    l
}

/// A fresh installation in a temporary directory: every path of the example config points there.
pub struct Install {
    /// The temp dir.
    pub dir: tempfile::TempDir,
    /// API port.
    pub port: u16,
    /// API token.
    pub token: String,
}

impl Install {
    /// Creates the directories and picks a free port.
    pub fn new() -> Install {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        Install {
            dir,
            port,
            token: "test-token-123".into(),
        }
    }

    /// A path inside the install.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Environment overrides for the example config.
    pub fn env(&self) -> Vec<(String, String)> {
        let p = |s: &str| self.path(s).display().to_string();
        vec![
            (
                "POSTSTELLE__STORE__URL".into(),
                format!("sqlite://{}", p("poststelle.db")),
            ),
            ("POSTSTELLE__STORE__BLOBS".into(), p("blobs")),
            ("POSTSTELLE__INTAKE__HOT_FOLDER__INBOX".into(), p("inbox")),
            (
                "POSTSTELLE__INTAKE__HOT_FOLDER__PROCESSED".into(),
                p("processed"),
            ),
            (
                "POSTSTELLE__INTAKE__HOT_FOLDER__QUARANTINE".into(),
                p("quarantine"),
            ),
            (
                "POSTSTELLE__INTAKE__HOT_FOLDER__SETTLE_MS".into(),
                "400".into(),
            ),
            (
                "POSTSTELLE__INTAKE__HOT_FOLDER__RESCAN_SECS".into(),
                "1".into(),
            ),
            ("POSTSTELLE__DELIVER__TARGETS__DMS__ROOT".into(), p("dms")),
            ("POSTSTELLE__DELIVER__RETRY_BASE_SECS".into(), "1".into()),
            ("POSTSTELLE__EXTRACT__TIMEOUT_SECS".into(), "60".into()),
            (
                "POSTSTELLE__CLASSIFY__MODELS".into(),
                models_dir().display().to_string(),
            ),
            (
                "POSTSTELLE__API__LISTEN".into(),
                format!("127.0.0.1:{}", self.port),
            ),
            ("POSTSTELLE__API__TOKEN".into(), self.token.clone()),
            ("RUST_LOG".into(), "info".into()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// A `poststelle` command with this install's environment, run from the repository root.
    pub fn command(&self) -> Command {
        let mut c = Command::new(exe());
        c.current_dir(repo()).envs(self.env());
        c
    }

    /// Starts the daemon; extra env (e.g. pause points) may be given.
    pub fn serve(&self, extra: &[(&str, &str)]) -> Daemon {
        let log =
            std::fs::File::create(self.path(&format!("serve-{}.log", now_ms()))).expect("log");
        let child = self
            .command()
            .arg("serve")
            .envs(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn serve");
        let d = Daemon {
            child,
            port: self.port,
        };
        d.wait_healthy();
        d
    }

    /// Drops a file into the inbox the way a scanner does (write elsewhere, then rename).
    pub fn drop_file(&self, name: &str, bytes: &[u8]) {
        std::fs::create_dir_all(self.path("inbox")).expect("inbox");
        let tmp = self.path(&format!("inbox/.{name}.part"));
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, self.path(&format!("inbox/{name}"))).expect("rename");
    }

    /// Delivered document files (not sidecars) per mailbox, once their sidecar is there.
    pub fn delivered(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for mb in std::fs::read_dir(self.path("dms"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(mb.path()).into_iter().flatten().flatten() {
                let p = f.path();
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                // The sidecar is written last: only with it is a delivery complete.
                if !name.starts_with('.')
                    && !name.ends_with(".json")
                    && p.with_extension("json").exists()
                {
                    out.push((mb.file_name().to_string_lossy().to_string(), p));
                }
            }
        }
        out.sort();
        out
    }

    /// `documents list --json`, parsed.
    pub fn documents(&self) -> Vec<serde_json::Value> {
        let out = self
            .command()
            .args(["documents", "list", "--json", "--limit", "1000"])
            .output()
            .expect("documents");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A running daemon, killed (SIGKILL) when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    port: u16,
}

impl Daemon {
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = std::io::Read::read_to_string(&mut s, &mut buf);
                if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("daemon did not become healthy");
    }

    /// Kills the process with SIGKILL (no clean-up).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Base URL of the API.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the file exists.
pub fn wait_file(p: &Path, timeout: Duration) {
    wait_for(&format!("{}", p.display()), timeout, || {
        p.exists().then_some(())
    });
}

impl Drop for Install {
    /// On a failing test, show the daemon's logs (the temp dir is deleted afterwards).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for e in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("serve-") {
                let log = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("==== {n} (last lines)");
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// A born-digital Bauantrag to the Bauordnungsamt (mailbox 63), one page.
pub fn bauantrag_pdf() -> Vec<u8> {
    letter_pdf(&din_letter(
        &[
            "Stadt Musterstadt",
            "Bauordnungsamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        "Bauantrag für einen Wintergarten, Flurstück 88",
        &[
            "hiermit reiche ich den Bauantrag für einen Wintergarten auf",
            "meinem Grundstück ein. Lageplan und Bauzeichnungen liegen bei.",
        ],
    ))
}
