//! A real browser for tests of the web desk: headless Chromium driven over the W3C WebDriver
//! protocol by `chromedriver` (Debian packages `chromium` and `chromium-driver`), with a small
//! client written on blocking `reqwest` and `serde_json`, and axe-core
//! ([`Browser::assert_no_axe_violations`]) for accessibility checks (WCAG 2.1 A and AA).
//!
//! Every [`Browser`] has its own `chromedriver` on a free loopback port, its own Chromium
//! session and a fresh profile in a temporary directory; dropping it ends the session and kills
//! the driver's process group, so no Chromium outlives its test. All methods panic with a clear
//! message when WebDriver reports an error: these are test helpers.
//!
//! There is deliberately no "is a browser available" check: a machine without Chromium fails
//! these tests loudly instead of skipping them.
#![allow(dead_code)]

use base64::Engine as _;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The WebDriver server (Debian package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The browser (Debian package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Environment variable naming axe-core's `axe.min.js` (set by `deploy/test.sh`).
pub const AXE_ENV: &str = "POSTSTELLE_TEST_AXE";

/// Where `deploy/test.sh` installs axe-core from npm when [`AXE_ENV`] is not set.
pub const AXE_DEFAULT: &str = "/var/tmp/poststelle-axe/node_modules/axe-core/axe.min.js";

/// The axe-core rule tags checked: WCAG 2.0 and 2.1, levels A and AA.
pub const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// How long [`Browser::find`] waits for an element to appear.
pub const FIND_TIMEOUT: Duration = Duration::from_secs(20);

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Special keys of the WebDriver key table, for [`Browser::send_keys_to_active`] and
/// [`Element::send_keys`].
pub mod keys {
    /// Releases all held modifier keys.
    pub const NULL: &str = "\u{E000}";
    /// Backspace.
    pub const BACKSPACE: &str = "\u{E003}";
    /// Tab.
    pub const TAB: &str = "\u{E004}";
    /// Enter (main keyboard).
    pub const ENTER: &str = "\u{E007}";
    /// Shift (a modifier: held until pressed again or until the end of the keys).
    pub const SHIFT: &str = "\u{E008}";
    /// Control (a modifier).
    pub const CONTROL: &str = "\u{E009}";
    /// Alt (a modifier).
    pub const ALT: &str = "\u{E00A}";
    /// Escape.
    pub const ESCAPE: &str = "\u{E00C}";
    /// Space.
    pub const SPACE: &str = "\u{E00D}";
    /// Arrow left.
    pub const LEFT: &str = "\u{E012}";
    /// Arrow up.
    pub const UP: &str = "\u{E013}";
    /// Arrow right.
    pub const RIGHT: &str = "\u{E014}";
    /// Arrow down.
    pub const DOWN: &str = "\u{E015}";
    /// Meta (a modifier).
    pub const META: &str = "\u{E03D}";
}

/// True for the modifier keys of the WebDriver key table (left and right variants).
fn is_modifier(c: char) -> bool {
    matches!(
        c,
        '\u{E008}' | '\u{E009}' | '\u{E00A}' | '\u{E03D}' | '\u{E050}'..='\u{E053}'
    )
}

/// An error WebDriver answered with (`value.error`, `value.message`).
#[derive(Debug)]
struct WebDriverError {
    status: u16,
    error: String,
    message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.error, self.status, self.message)
    }
}

/// A headless Chromium session; see the module documentation.
pub struct Browser {
    /// The `chromedriver` process, leader of its own process group.
    driver: Child,
    /// `http://127.0.0.1:<port>`.
    root: String,
    /// The session id.
    session: String,
    http: Client,
    /// The profile (`--user-data-dir`), config and cache dirs and the driver's log.
    dir: tempfile::TempDir,
}

/// An element of the current page, found with [`Browser::find`] or [`Browser::find_all`].
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    /// The selector it was found with (for error messages).
    css: String,
}

/// A free TCP port on the loopback interface (free when asked; another process may take it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a headless Chromium session with a fresh
    /// profile. Panics if either program is missing or does not come up.
    pub fn start() -> Browser {
        for program in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(program).exists(),
                "{program} missing: the browser tests need the Debian packages chromium and \
                 chromium-driver (deploy/test.sh installs them)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("poststelle-browser-")
            .tempdir()
            .expect("browser tempdir");
        let http = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        // The port may be taken between asking and binding: try a few.
        let mut last_log = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let log = dir.path().join(format!("chromedriver-{attempt}.log"));
            let mut driver = Self::spawn_driver(dir.path(), port, &log);
            let root = format!("http://127.0.0.1:{port}");
            if wait_ready(&http, &root, &mut driver) {
                let mut browser = Browser {
                    driver,
                    root,
                    session: String::new(),
                    http,
                    dir,
                };
                browser.session = browser.new_session();
                return browser;
            }
            kill_group(&mut driver);
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("chromedriver did not become ready; its last log:\n{last_log}");
    }

    /// `chromedriver --port=<port>` in a process group of its own (so that [`Drop`] can kill
    /// it and every browser process it started), with config and cache dirs in `dir`.
    fn spawn_driver(dir: &Path, port: u16, log: &Path) -> Child {
        let out = std::fs::File::create(log).expect("chromedriver log");
        let err = out.try_clone().expect("chromedriver log");
        let mut c = Command::new(CHROMEDRIVER);
        c.arg(format!("--port={port}"))
            // Chromium's crash reports and caches go below these, not into $HOME.
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        c.spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"))
    }

    /// Creates the session; returns its id.
    fn new_session(&self) -> String {
        let profile = self.dir.path().join("profile");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "script": 30_000, "pageLoad": 30_000, "implicit": 0 },
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-dev-shm-usage",
                            "--window-size=1280,1000",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                },
            },
        });
        let url = format!("{}/session", self.root);
        let value = match send(&self.http, reqwest::Method::POST, &url, Some(&caps)) {
            Ok(v) => v,
            Err(e) => panic!(
                "WebDriver could not start Chromium: {e}\nchromedriver log:\n{}",
                self.driver_log()
            ),
        };
        value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("new session: no sessionId in {value}"))
            .to_string()
    }

    /// The driver's log (for failure messages).
    fn driver_log(&self) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        logs.last()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Sends a session command (`path` relative to `/session/<id>`); the `value` of the answer.
    fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("{}/session/{}{path}", self.root, self.session);
        send(&self.http, method, &url, body)
    }

    /// [`Browser::try_cmd`] that panics on an error, naming `what` was being done.
    fn cmd(&self, what: &str, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        self.try_cmd(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver: {what}: {e}"))
    }

    fn get(&self, what: &str, path: &str) -> Value {
        self.cmd(what, reqwest::Method::GET, path, None)
    }

    fn post(&self, what: &str, path: &str, body: Value) -> Value {
        self.cmd(what, reqwest::Method::POST, path, Some(&body))
    }

    /// Opens `url` and waits until the page has loaded.
    pub fn goto(&self, url: &str) {
        self.post(&format!("open {url}"), "/url", json!({ "url": url }));
    }

    /// The URL of the current page.
    pub fn current_url(&self) -> String {
        self.get("current URL", "/url")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The current page's title.
    pub fn title(&self) -> String {
        self.get("title", "/title")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching the CSS selector `css`, waiting up to [`FIND_TIMEOUT`] for it
    /// to appear. Panics (with the page's URL) if none does.
    pub fn find(&self, css: &str) -> Element<'_> {
        let body = json!({ "using": "css selector", "value": css });
        let deadline = Instant::now() + FIND_TIMEOUT;
        loop {
            match self.try_cmd(reqwest::Method::POST, "/element", Some(&body)) {
                Ok(v) => return self.element(&v, css),
                Err(e) if e.error == "no such element" && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!(
                    "WebDriver: find {css:?} on {}: {e}",
                    self.try_cmd(reqwest::Method::GET, "/url", None)
                        .map(|u| u.to_string())
                        .unwrap_or_default()
                ),
            }
        }
    }

    /// All elements matching the CSS selector `css` right now (no waiting; maybe none).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self.post(
            &format!("find all {css:?}"),
            "/elements",
            json!({ "using": "css selector", "value": css }),
        );
        v.as_array()
            .map(|a| a.iter().map(|e| self.element(e, css)).collect())
            .unwrap_or_default()
    }

    fn element(&self, v: &Value, css: &str) -> Element<'_> {
        let id = v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver: not an element reference: {v}"))
            .to_string();
        Element {
            browser: self,
            id,
            css: css.to_string(),
        }
    }

    /// Types `keys` into whatever has the focus, as real key presses (the Actions API), so that
    /// page-wide keyboard shortcuts see them. Special keys come from [`keys`] (e.g.
    /// [`keys::ENTER`]). A modifier ([`keys::CONTROL`], [`keys::SHIFT`], [`keys::ALT`],
    /// [`keys::META`]) stays pressed until it comes again or [`keys::NULL`] comes, and is
    /// released at the end: `"\u{E009}k"` is Ctrl+K.
    pub fn send_keys_to_active(&self, keys: &str) {
        let mut actions = Vec::new();
        let mut held: Vec<char> = Vec::new();
        for c in keys.chars() {
            if c == '\u{E000}' {
                for m in held.drain(..).rev() {
                    actions.push(json!({ "type": "keyUp", "value": m.to_string() }));
                }
            } else if is_modifier(c) {
                if let Some(i) = held.iter().position(|m| *m == c) {
                    held.remove(i);
                    actions.push(json!({ "type": "keyUp", "value": c.to_string() }));
                } else {
                    held.push(c);
                    actions.push(json!({ "type": "keyDown", "value": c.to_string() }));
                }
            } else {
                actions.push(json!({ "type": "keyDown", "value": c.to_string() }));
                actions.push(json!({ "type": "keyUp", "value": c.to_string() }));
            }
        }
        for m in held.into_iter().rev() {
            actions.push(json!({ "type": "keyUp", "value": m.to_string() }));
        }
        self.post(
            &format!("press keys {keys:?}"),
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        );
        self.cmd("release keys", reqwest::Method::DELETE, "/actions", None);
    }

    /// Runs `script` as the body of a function in the page (`arguments` are `args`); its return
    /// value, with elements as WebDriver references. Not subject to the page's
    /// Content-Security-Policy.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.post(
            "execute script",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// Runs `script` like [`Browser::execute`], with a callback as last argument; returns the
    /// value passed to the callback (up to 30 s).
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.post(
            "execute async script",
            "/execute/async",
            json!({ "script": script, "args": args }),
        )
    }

    /// The current HTML of the page (the DOM serialized, not the bytes the server sent).
    pub fn page_source(&self) -> String {
        self.get("page source", "/source")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the viewport.
    pub fn screenshot_png(&self) -> Vec<u8> {
        let b64 = self.get("screenshot", "/screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64")
    }

    /// Saves a screenshot as `<CARGO_TARGET_TMPDIR>/screenshots/<name>.png`, prints the path and
    /// returns it.
    pub fn save_screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.screenshot_png()).expect("write screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    /// Runs axe-core on the current page with the rules of [`AXE_TAGS`] and returns the
    /// violations (axe's result objects: `id`, `impact`, `help`, `helpUrl`, `nodes`, ...).
    ///
    /// axe-core is read from the file [`AXE_ENV`] names, or [`AXE_DEFAULT`], and evaluated as
    /// the body of an execute-script command (not as a `<script>` element, which the page's
    /// Content-Security-Policy would refuse).
    pub fn axe(&self) -> Vec<Value> {
        let loaded = self.execute("return typeof window.axe === 'object';", vec![]);
        if loaded != Value::Bool(true) {
            let source = axe_source();
            let script = format!("{source}\n;return typeof window.axe === 'object';");
            let injected = self.execute(&script, vec![]);
            assert_eq!(
                injected,
                Value::Bool(true),
                "axe-core did not load into {}",
                self.current_url()
            );
        }
        let result = self.execute_async(
            "const done = arguments[arguments.length - 1];\n\
             window.axe.run(document, { runOnly: { type: 'tag', values: arguments[0] } })\n\
               .then(r => done({ violations: r.violations }),\n\
                     e => done({ error: String(e && e.stack || e) }));",
            vec![json!(AXE_TAGS)],
        );
        if let Some(e) = result.get("error") {
            panic!("axe.run failed on {}: {e}", self.current_url());
        }
        result["violations"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("axe.run: unexpected result {result}"))
    }

    /// Runs [`Browser::axe`] on the current page, saves a screenshot named `page_name` (see
    /// [`Browser::save_screenshot`]), prints every violation (rule id, impact, help, the CSS
    /// targets of its elements) and panics if there is any.
    pub fn assert_no_axe_violations(&self, page_name: &str) {
        let violations = self.axe();
        self.save_screenshot(page_name);
        if violations.is_empty() {
            println!("axe: {page_name}: no violations");
            return;
        }
        let mut report = format!(
            "axe: {} violation(s) on page {page_name} ({}):\n",
            violations.len(),
            self.current_url()
        );
        for v in &violations {
            report.push_str(&format!(
                "- {} [{}]: {} ({})\n",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or(""),
                v["helpUrl"].as_str().unwrap_or(""),
            ));
            for node in v["nodes"].as_array().into_iter().flatten() {
                report.push_str(&format!(
                    "    at {}: {}\n",
                    node["target"],
                    node["failureSummary"]
                        .as_str()
                        .unwrap_or("")
                        .replace('\n', " / ")
                ));
            }
        }
        println!("{report}");
        panic!("{report}");
    }
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    /// Clicks the element (scrolled into view first; waits for a navigation it starts).
    pub fn click(&self) {
        self.browser.post(
            &format!("click {:?}", self.css),
            &self.path("/click"),
            json!({}),
        );
    }

    /// Types `text` into the element (focusing it first); special keys from [`keys`].
    pub fn send_keys(&self, text: &str) {
        self.browser.post(
            &format!("type into {:?}", self.css),
            &self.path("/value"),
            json!({ "text": text }),
        );
    }

    /// Empties an input or textarea.
    pub fn clear(&self) {
        self.browser.post(
            &format!("clear {:?}", self.css),
            &self.path("/clear"),
            json!({}),
        );
    }

    /// The element's rendered text (as a person sees it, whitespace collapsed).
    pub fn text(&self) -> String {
        self.browser
            .get(&format!("text of {:?}", self.css), &self.path("/text"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The attribute `name` (WebDriver's "Get Element Attribute": for a few boolean attributes
    /// and `value` the current property), or `None` if the element has none.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.browser
            .get(
                &format!("attribute {name} of {:?}", self.css),
                &self.path(&format!("/attribute/{name}")),
            )
            .as_str()
            .map(str::to_string)
    }

    /// The DOM property `name` (e.g. `value`, `checked`) as JSON.
    pub fn property(&self, name: &str) -> Value {
        self.browser.get(
            &format!("property {name} of {:?}", self.css),
            &self.path(&format!("/property/{name}")),
        )
    }

    /// True if the element is displayed.
    pub fn is_displayed(&self) -> bool {
        self.browser
            .get(
                &format!("displayed {:?}", self.css),
                &self.path("/displayed"),
            )
            .as_bool()
            .unwrap_or(false)
    }

    /// The element as an argument of [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

impl Drop for Browser {
    /// Ends the session (Chromium quits), then kills the driver's whole process group, so that
    /// no browser process survives even if the session could not be ended.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_cmd(reqwest::Method::DELETE, "", None);
        }
        if std::thread::panicking() {
            let log = self.driver_log();
            if !log.trim().is_empty() {
                eprintln!("==== chromedriver log\n{log}");
            }
        }
        kill_group(&mut self.driver);
    }
}

/// Kills the process group led by `child` (the driver and any browser it started) and reaps
/// the leader.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group led by our own child,
        // which is not reaped yet (so its id cannot have been reused).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `<root>/status` until the driver says it is ready (up to 30 s); false if it exits or
/// does not get ready in time.
fn wait_ready(http: &Client, root: &str, driver: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = driver.try_wait() {
            return false;
        }
        if let Ok(r) = http
            .get(format!("{root}/status"))
            .timeout(Duration::from_secs(2))
            .send()
            && let Ok(v) = r.json::<Value>()
            && v["value"]["ready"] == Value::Bool(true)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Sends one WebDriver request; the answer's `value`, or the error it reports.
fn send(
    http: &Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, WebDriverError> {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().map_err(|e| WebDriverError {
        status: 0,
        error: "no answer".into(),
        message: format!("{method} {url}: {e}"),
    })?;
    let status = res.status();
    let text = res.text().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).map_err(|e| WebDriverError {
        status: status.as_u16(),
        error: "invalid answer".into(),
        message: format!("{method} {url}: {e}: {text}"),
    })?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    // Errors come with a 4xx or 5xx status (a script may well return an object with `error`).
    if !status.is_success() {
        return Err(WebDriverError {
            status: status.as_u16(),
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string(),
            message: value["message"].as_str().unwrap_or(&text).to_string(),
        });
    }
    Ok(value)
}

/// The source of axe-core's `axe.min.js` ([`AXE_ENV`] or [`AXE_DEFAULT`]).
fn axe_source() -> String {
    let path = std::env::var(AXE_ENV).unwrap_or_else(|_| AXE_DEFAULT.to_string());
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core not found at {path} ({e}); install it with `npm install --prefix \
             /var/tmp/poststelle-axe --no-audit --no-fund axe-core@4` (deploy/test.sh does) or \
             set {AXE_ENV}"
        )
    })
}
