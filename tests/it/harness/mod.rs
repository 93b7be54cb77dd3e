//! The shared test harness: letters rendered at test time (born-digital PDF, scans as
//! PNG/TIFF/image-PDF), a fresh installation whose every path points into a temporary directory
//! ([`Install`]), and the daemon on it, either in this process ([`spawn_app`], [`TestApp`]) or
//! as a child process that a test may kill with SIGKILL ([`Install::serve`], [`Daemon`]).
//!
//! The servers the daemon talks to live in the submodules: [`dms_servers`] (conformance servers
//! for d.velop, CMIS, Paperless-ngx and a generic REST DMS, plus a fault-injecting proxy),
//! [`dovecot`] (IMAP), [`ldap`] (OpenLDAP slapd), [`smtp`] (aiosmtpd) and [`mayan`] (the real
//! Mayan EDMS started by `tests/services/mayan.sh`). [`browser`] drives a real headless Chromium
//! over WebDriver and checks pages with axe-core, for tests of the web desk.

pub mod browser;
pub mod dms_servers;
pub mod dovecot;
pub mod ldap;
pub mod mayan;
pub mod smtp;

use poststelle::app::Application;
use poststelle::config::{ENV_PREFIX, Settings};
use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The binary under test (also the extraction sandbox's worker for an in-process daemon).
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_poststelle"))
}

/// The repository root (child processes run from there, as a person would).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared hostile-input corpora beside the repository (`<repository>/../shared/corpora`:
/// broken PDFs, hostile images, e-mails; CI has `shared/` beside the clone). Panics naming the
/// path when they are missing: a test over hostile input must not pass without its input.
pub fn corpora() -> PathBuf {
    let dir = repo()
        .parent()
        .map(|p| p.join("shared/corpora"))
        .unwrap_or_else(|| repo().join("../shared/corpora"));
    assert!(
        dir.is_dir(),
        "the hostile-input corpora are missing: expected the directory {} (shared/corpora \
         beside the repository, as on the CI machine); the tests and campaigns over hostile \
         input cannot run without it",
        dir.display()
    );
    dir
}

/// A model trained once per test run from the shipped corpus, shared by all tests (read only).
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

/// A one-page A4 PDF written as by hand: every character placed on its own, turned by up to
/// `jitter` degrees, sized 85-120 %, slanted and off the baseline a little (pseudo-random from
/// `seed`, so the same on every run). Rendered with [`HANDWRITING`] it reads like a neat
/// handwritten letter, which OCR recognises with low word confidence.
pub fn handwriting_pdf(lines: &[Line<'_>], jitter: f32, seed: u32) -> Vec<u8> {
    let mm = 72.0 / 25.4;
    let mut state = seed.max(1);
    let mut rand = move |lo: f32, hi: f32| {
        state = state.wrapping_mul(1103515245).wrapping_add(12345);
        lo + (hi - lo) * ((state >> 8) & 0xffff) as f32 / 65535.0
    };
    let mut content = Vec::new();
    for (x, y, size, text) in lines {
        let mut cx = x * mm;
        let base = 841.89 - y * mm - size;
        for c in text.chars() {
            let a = rand(-jitter, jitter).to_radians();
            let s = size * rand(0.85, 1.2);
            let dy = rand(-jitter * 0.15, jitter * 0.15);
            if c != ' ' {
                content.extend_from_slice(
                    format!(
                        "BT /F1 1 Tf {:.3} {:.3} {:.3} {:.3} {:.2} {:.2} Tm (",
                        s * a.cos(),
                        s * a.sin(),
                        -s * a.sin() + s * 0.15,
                        s * a.cos(),
                        cx,
                        base + dy
                    )
                    .as_bytes(),
                );
                content.extend_from_slice(&pdf_escape(&c.to_string()));
                content.extend_from_slice(b") Tj ET\n");
            }
            cx += 0.45 * s * rand(0.8, 1.2);
        }
    }
    write_pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.28 841.89] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
        stream("", &content),
    ])
}

/// A font test letters are rendered with: the PDF base font Helvetica is mapped to `family`
/// from the fonts in `dir` alone, whatever else the machine has, so that a scan made by a test
/// is the same on every machine that has the font's Debian package (`package`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestFont {
    /// The folder holding the font files.
    pub dir: &'static str,
    /// The family every font of a letter is mapped to. Without this rule fontconfig would pick
    /// any face of the folder for "Helvetica" (seen: DejaVu Math TeX Gyre, a serif face).
    pub family: &'static str,
    /// The Debian package that installs the folder (deploy/test.sh installs it).
    pub package: &'static str,
}

/// DejaVu Sans (`fonts-dejavu-core`): the default font of test letters.
pub const DEJAVU_SANS: TestFont = TestFont {
    dir: "/usr/share/fonts/truetype/dejavu",
    family: "DejaVu Sans",
    package: "fonts-dejavu-core",
};

/// Liberation Sans (`fonts-liberation2`), a metric clone of Helvetica/Arial.
pub const LIBERATION_SANS: TestFont = TestFont {
    dir: "/usr/share/fonts/truetype/liberation2",
    family: "Liberation Sans",
    package: "fonts-liberation2",
};

/// Nimbus Sans (`fonts-urw-base35`), URW's Helvetica clone that Ghostscript brings.
pub const NIMBUS_SANS: TestFont = TestFont {
    dir: "/usr/share/fonts/opentype/urw-base35",
    family: "Nimbus Sans",
    package: "fonts-urw-base35",
};

/// Z003 (`fonts-urw-base35`), URW's Zapf Chancery clone: a calligraphic, handwriting-like face
/// that OCR reads poorly (for the low-confidence review).
pub const HANDWRITING: TestFont = TestFont {
    dir: "/usr/share/fonts/opentype/urw-base35",
    family: "Z003",
    package: "fonts-urw-base35",
};

/// The fonts that reading must not hinge on: tests of scans run under each.
pub const TEST_FONTS: [TestFont; 3] = [DEJAVU_SANS, LIBERATION_SANS, NIMBUS_SANS];

/// The font [`render`] uses: [`DEJAVU_SANS`], or the folder and family named by
/// `POSTSTELLE_TEST_FONT_DIR` and `POSTSTELLE_TEST_FONT_FAMILY` (to check that reading does
/// not hinge on the font, e.g. `/usr/share/fonts/truetype/liberation2` and `Liberation Sans`).
pub fn default_font() -> TestFont {
    static FONT: OnceLock<TestFont> = OnceLock::new();
    *FONT.get_or_init(|| {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        TestFont {
            dir: std::env::var("POSTSTELLE_TEST_FONT_DIR")
                .map(leak)
                .unwrap_or(DEJAVU_SANS.dir),
            family: std::env::var("POSTSTELLE_TEST_FONT_FAMILY")
                .map(leak)
                .unwrap_or(DEJAVU_SANS.family),
            package: "(POSTSTELLE_TEST_FONT_DIR)",
        }
    })
}

/// A fontconfig file that knows only the fonts of `font` (written once per font and run).
pub fn letter_fonts(font: TestFont) -> PathBuf {
    static FILES: std::sync::Mutex<Vec<(TestFont, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, f)) = files.iter().find(|(f, _)| *f == font) {
        return f.clone();
    }
    assert!(
        Path::new(font.dir).is_dir(),
        "font folder {} missing (Debian package {}; deploy/test.sh installs it)",
        font.dir,
        font.package
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "test-fonts-{}-{}",
        std::process::id(),
        font.family.replace(' ', "-")
    ));
    std::fs::create_dir_all(dir.join("cache")).expect("font cache dir");
    let file = dir.join("fonts.conf");
    let conf = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n<fontconfig>\n  \
         <dir>{}</dir>\n  <cachedir>{}</cachedir>\n  \
         <match target=\"pattern\"><edit name=\"family\" mode=\"assign\" \
         binding=\"strong\"><string>{}</string></edit></match>\n\
         </fontconfig>\n",
        font.dir,
        dir.join("cache").display(),
        font.family
    );
    std::fs::write(&file, conf).expect("fonts.conf");
    // pdftoppm falls back silently when the font is not found: check that it was used.
    let fc = Command::new("fc-match")
        .env("FONTCONFIG_FILE", &file)
        .args(["-f", "%{family}", "Helvetica"])
        .output();
    if let Ok(fc) = fc {
        let family = String::from_utf8_lossy(&fc.stdout);
        assert!(
            family.split(',').any(|f| f == font.family),
            "fontconfig maps Helvetica to {family}, not {}",
            font.family
        );
    }
    files.push((font, file.clone()));
    file
}

/// Renders page 1 of a PDF to an 8-bit gray image (as a scanner would deliver it), with the
/// font of [`default_font`].
pub fn render(pdf: &[u8], dpi: u32) -> image::GrayImage {
    render_with(pdf, dpi, default_font())
}

/// Renders page 1 of a PDF to an 8-bit gray image with `font`.
pub fn render_with(pdf: &[u8], dpi: u32, font: TestFont) -> image::GrayImage {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("in.pdf");
    std::fs::write(&p, pdf).expect("write");
    let out = Command::new("pdftoppm")
        .env("FONTCONFIG_FILE", letter_fonts(font))
        .args(["-gray", "-r", &dpi.to_string(), "-f", "1", "-l", "1"])
        .arg(&p)
        .output()
        .expect("pdftoppm");
    assert!(
        out.status.success(),
        "pdftoppm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image::load_from_memory(&out.stdout)
        .expect("pgm")
        .to_luma8()
}

/// The town's address markers of the example config (`[municipality] address_markers`).
pub fn address_markers() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("config/musterstadt.toml")).expect("config");
    let v: toml::Value = toml::from_str(&text).expect("config toml");
    let found = v
        .get("municipality")
        .and_then(|c| c.get("address_markers"))
        .and_then(|m| m.as_array())
        .map(|m| {
            m.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(
        !found.is_empty(),
        "address_markers in config/musterstadt.toml"
    );
    found
}

/// Sandboxed extraction workers as the daemon has them, one per core.
pub fn extractor() -> poststelle::extract::Extractor {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let settings = poststelle::extract::settings::ExtractSettings {
        language: "deu".into(),
        tessdata: None,
        dpi: 300,
        min_text_chars: 60,
        timeout: Duration::from_secs(120),
        memory_limit_bytes: 2048 * 1024 * 1024,
        max_pages: 1,
        max_image_pixels: 80_000_000,
        workers,
        mail_max_attachments: 20,
        mail_max_depth: 3,
        mail_max_decoded_bytes: 50 * 1024 * 1024,
        max_attempts: 1,
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(1),
        worker_fault_attempts: 1,
        ..Default::default()
    };
    poststelle::extract::Extractor::new(exe(), &settings)
}

/// Extracts every file through the worker pool, all queued at once.
pub fn extract_all(
    files: &[(PathBuf, poststelle::extract::MediaType)],
) -> Vec<poststelle::extract::Extraction> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ex = extractor();
    rt.block_on(async {
        let jobs = files
            .iter()
            .map(|(p, m)| ex.extract(p, *m, poststelle::extract::pool::Urgency::interactive()));
        futures::future::join_all(jobs)
            .await
            .into_iter()
            .zip(files)
            .map(|(r, (p, _))| r.unwrap_or_else(|e| panic!("{p:?}: {e}")))
            .collect()
    })
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

/// A faint copy: ink lightened to `ink` (0 = black .. 255 = white paper) as by a weak carbon
/// copy or an exhausted toner, then noise of +-`amount` as a fax or a dusty scanner adds.
pub fn faint(img: image::GrayImage, ink: u8, amount: u8) -> image::GrayImage {
    let mut img = img;
    let scale = (255 - ink as u32) as f32 / 255.0;
    for p in img.pixels_mut() {
        // Paper (255) stays, black (0) becomes `ink`.
        p.0[0] = (255.0 - (255 - p.0[0]) as f32 * scale).round() as u8;
    }
    noisy(img, amount)
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
    scan_pdf_pages(&[img], dpi)
}

/// The JPEG a scanned page is stored as in [`scan_pdf_pages`].
pub fn scan_jpeg(img: &image::GrayImage) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 75)
        .encode_image(img)
        .expect("jpeg");
    jpeg
}

/// A scanned PDF of several pages: each page one JPEG image, no text layer.
pub fn scan_pdf_pages(pages: &[&image::GrayImage], dpi: u32) -> Vec<u8> {
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 3 + 3 * i))
        .collect();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        )
        .into_bytes(),
    ];
    for (i, img) in pages.iter().enumerate() {
        let jpeg = scan_jpeg(img);
        let (w, h) = (img.width(), img.height());
        let (pw, ph) = (w as f32 * 72.0 / dpi as f32, h as f32 * 72.0 / dpi as f32);
        let content = format!("q {pw:.2} 0 0 {ph:.2} 0 0 cm /Im0 Do Q");
        let n = 3 + 3 * i;
        objects.push(format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.2} {ph:.2}] /Resources << /XObject << /Im0 {} 0 R >> >> /Contents {} 0 R >>", n + 1, n + 2).into_bytes());
        objects.push(stream(&format!("/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode"), &jpeg));
        objects.push(stream("", content.as_bytes()));
    }
    write_pdf(&objects)
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
    /// The store URL: SQLite in the temp dir, or, with `POSTSTELLE_TEST_STORE=postgres`, a new
    /// database on the server `POSTSTELLE_TEST_POSTGRES_URL` names (see [`store_url`]).
    pub store_url: String,
}

/// The store of a new installation: `sqlite://<dir>/poststelle.db`, or, with
/// `POSTSTELLE_TEST_STORE=postgres`, a new database on the server
/// `POSTSTELLE_TEST_POSTGRES_URL` names (`tests/services/postgres.sh start`; `deploy/test.sh`
/// runs the pipeline suites this way too).
pub fn store_url(dir: &Path) -> String {
    match std::env::var("POSTSTELLE_TEST_STORE").as_deref() {
        Ok("postgres") => {
            let server = std::env::var("POSTSTELLE_TEST_POSTGRES_URL").expect(
                "POSTSTELLE_TEST_STORE=postgres needs POSTSTELLE_TEST_POSTGRES_URL \
                 (tests/services/postgres.sh start)",
            );
            // On a thread of its own: the caller may be inside a runtime already.
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(poststelle::store::db::create_postgres_database(&server))
            })
            .join()
            .expect("thread")
            .expect("a new PostgreSQL test database")
        }
        Ok("sqlite") | Err(_) => format!("sqlite://{}", dir.join("poststelle.db").display()),
        Ok(other) => panic!("POSTSTELLE_TEST_STORE={other}: sqlite or postgres"),
    }
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
        let store_url = store_url(dir.path());
        Install {
            dir,
            port,
            token: "test-token-123".into(),
            store_url,
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
            ("POSTSTELLE__STORE__URL".into(), self.store_url.clone()),
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
            // Absolute, so that no daemon depends on the current directory.
            (
                "POSTSTELLE__CLASSIFY__RULES".into(),
                repo().join("rules").display().to_string(),
            ),
            (
                "POSTSTELLE__CLASSIFY__TRAINING_DATA".into(),
                repo().join("training-data").display().to_string(),
            ),
            ("RUST_LOG".into(), "info".into()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// Builds the daemon of this install from `config/musterstadt.toml` with [`Install::env`]
    /// and `extra` (settings only, `POSTSTELLE__*`) and runs it in this process; see
    /// [`TestApp`]. The API listens on port 0; [`TestApp::url`] knows where it ended up.
    ///
    /// Pause points (`POSTSTELLE_PAUSE_AT`) are read from the process environment, which tests
    /// share: a test that stops the daemon at one needs a child process ([`Install::serve`]).
    pub fn spawn_app(self, extra: &[(&str, &str)]) -> TestApp {
        self.spawn_app_with(extra, |_| {})
    }

    /// [`Install::spawn_app`] with the loaded settings changed by `edit` first (for sections
    /// that environment overrides cannot express, such as lists of tables).
    pub fn spawn_app_with(
        self,
        extra: &[(&str, &str)],
        edit: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut env: Vec<(String, String)> = self
            .env()
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        env.push(("POSTSTELLE__API__LISTEN".into(), "127.0.0.1:0".into()));
        for (k, v) in extra {
            assert!(
                k.starts_with(ENV_PREFIX),
                "{k}: an in-process daemon takes only settings ({ENV_PREFIX}*); \
                 pause points need a child process (Install::serve)"
            );
            env.push((k.to_string(), v.to_string()));
        }
        let mut settings = Settings::load_with_env(&repo().join("config/musterstadt.toml"), &env)
            .unwrap_or_else(|e| panic!("test configuration invalid:\n{e}"));
        edit(&mut settings);
        TestApp::start(self, settings)
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
        wait_healthy(SocketAddr::from(([127, 0, 0, 1], d.port)));
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
        self.json_lines(["documents", "list", "--json", "--limit", "1000"])
    }

    /// Runs a `poststelle` command that prints one JSON object per line; it must succeed.
    pub fn json_lines<I, S>(&self, args: I) -> Vec<serde_json::Value>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.command().args(args).output().expect("poststelle");
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

/// Waits until `GET /health` at `addr` answers 200.
fn wait_healthy(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
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

impl Daemon {
    /// Kills the process with SIGKILL (no clean-up).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

thread_local! {
    /// The log of the in-process daemon whose runtime owns this thread.
    static APP_LOG: RefCell<Option<tracing::dispatcher::DefaultGuard>> = const { RefCell::new(None) };
}

/// A fresh install with the daemon running in this process ([`Install::spawn_app`]).
pub fn spawn_app(extra: &[(&str, &str)]) -> TestApp {
    Install::new().spawn_app(extra)
}

/// The daemon running inside the test process: [`Application::build`] on the install's
/// settings, then [`Application::run`] until [`TestApp::stop`] (or drop) cancels it.
///
/// It runs on a tokio runtime of its own (two workers, like a small server), on its own thread,
/// so test bodies may block (blocking HTTP clients, polling with [`wait_for`]) without starving
/// it. Its log (`tracing`, level info) goes to `serve-<ms>.log` in the install, scoped to the
/// runtime's threads, so parallel tests keep apart and a failing test shows it like a child
/// daemon's. Dereferences to its [`Install`] (paths, `documents()`, `delivered()`, `token`).
pub struct TestApp {
    install: Install,
    addr: SocketAddr,
    cancel: CancellationToken,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    fn start(install: Install, settings: Settings) -> TestApp {
        let log = std::fs::File::create(install.path(&format!("serve-{}.log", now_ms())))
            .expect("log file");
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(log))
                .finish(),
        );
        let on_start = dispatch.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || {
                let guard = tracing::dispatcher::set_default(&on_start);
                APP_LOG.with(|l| *l.borrow_mut() = Some(guard));
            })
            .on_thread_stop(|| APP_LOG.with(|l| drop(l.borrow_mut().take())))
            .build()
            .expect("runtime");
        let cancel = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let run_cancel = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("poststelle-app".into())
            .spawn(move || {
                let _log = tracing::dispatcher::set_default(&dispatch);
                let result = rt.block_on(async move {
                    let app = match Application::build(settings, exe()).await {
                        Ok(app) => app,
                        Err(e) => {
                            let _ = tx.send(Err(format!("{e:#}")));
                            return Err(e);
                        }
                    };
                    let _ = tx.send(app.api_addr().ok_or_else(|| "API disabled".to_string()));
                    app.run(run_cancel).await
                });
                rt.shutdown_timeout(Duration::from_secs(10));
                result
            })
            .expect("app thread");
        let addr = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => panic!("Application::build failed: {e}"),
            Err(e) => panic!("Application::build did not finish: {e}"),
        };
        let app = TestApp {
            install,
            addr,
            cancel,
            thread: Some(thread),
        };
        wait_healthy(addr);
        app
    }

    /// URL of `path` on the API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True while `run` has not returned (it returns only when cancelled or on a fatal error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Cancels the daemon and waits until `run` returned; its error fails the test.
    pub fn stop(mut self) {
        if let Err(e) = self.shut_down() {
            panic!("the daemon ended with an error: {e:#}");
        }
    }

    /// Cancels and waits for `run` to return, at most a minute (a daemon that does not stop is
    /// an error; its thread is then left behind rather than hanging the test).
    fn shut_down(&mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !t.is_finished() {
            if Instant::now() > deadline {
                anyhow::bail!("the daemon did not stop within 60 s of being cancelled");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        match t.join() {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("the daemon's thread panicked")),
        }
    }
}

impl std::ops::Deref for TestApp {
    type Target = Install;
    fn deref(&self) -> &Install {
        &self.install
    }
}

impl Drop for TestApp {
    /// Stops the daemon before its install (and the temp dir) goes.
    fn drop(&mut self) {
        let _ = self.shut_down();
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

/// The peak resident memory of process `pid` so far (`VmHWM` in `/proc/<pid>/status`), in
/// bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmHWM")
}

/// A sparse file of `size` bytes at `path` that starts with `head` (the rest reads as zeros
/// and takes no disk space).
pub fn sparse_file(path: &Path, head: &[u8], size: u64) {
    let mut f = std::fs::File::create(path).expect("create sparse file");
    f.write_all(head).expect("head");
    f.set_len(size).expect("set_len");
}

/// A hot-folder file of `size` bytes (sparse after `head`) dropped into the inbox as `name` the
/// way a scanner does (written under a hidden name, then renamed).
pub fn drop_sparse(install: &Install, name: &str, head: &[u8], size: u64) {
    std::fs::create_dir_all(install.path("inbox")).expect("inbox");
    let tmp = install.path(&format!("inbox/.{name}.part"));
    sparse_file(&tmp, head, size);
    std::fs::rename(&tmp, install.path(&format!("inbox/{name}"))).expect("rename");
}

/// A document's audit event kinds and details, through the API.
pub fn events(port: u16, token: &str, id: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/documents/{id}"))
        .bearer_auth(token)
        .send()
        .expect("document")
        .json()
        .expect("json");
    v["events"].as_array().cloned().unwrap_or_default()
}
