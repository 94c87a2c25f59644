//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`): the
//! test starts its own chromedriver on a free port and talks the W3C protocol with `reqwest`
//! (no extra client crate). [`Browser::start`] returns `None` — the caller skips with a message —
//! only when the browser is not installed and `REQUIRE_BROWSER` is unset (CI sets it).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C name of an element reference in answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session of it; both end on drop.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium with a 1280×800 window. `None` (after saying
    /// why) when they are not installed, unless `REQUIRE_BROWSER` is set: then that fails.
    pub async fn start() -> Option<Browser> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            let why = format!(
                "{} missing: `apt-get install chromium chromium-driver`",
                missing.join(" and ")
            );
            if std::env::var_os("REQUIRE_BROWSER").is_some() {
                panic!("REQUIRE_BROWSER is set but {why}");
            }
            eprintln!("SKIPPED: browser test: {why} (set REQUIRE_BROWSER=1 to make this fail)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // A process group of its own: dropping the browser ends chromedriver and the Chromium it
        // started together, even when a failing test never reaches `quit`.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not get ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("vpn-shop-chromium-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,800", "--hide-scrollbars", "--force-device-scale-factor=1",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let mut browser = Browser {
            driver,
            http,
            session: String::new(),
        };
        let answer = browser.call("POST", &format!("{base}/session"), caps).await;
        let id = answer["sessionId"].as_str().expect("a session id");
        browser.session = format!("{base}/session/{id}");
        Some(browser)
    }

    async fn call(&self, method: &str, url: &str, body: Value) -> Value {
        match self.try_call(method, url, body).await {
            Ok(value) => value,
            Err(error) => panic!("webdriver {url}: {error}"),
        }
    }

    /// A WebDriver command; its error answer as `Err`.
    async fn try_call(&self, method: &str, url: &str, body: Value) -> Result<Value, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self.http.request(method.clone(), url);
        let req = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            req
        } else {
            req.json(&body)
        };
        let resp = req.send().await.expect("webdriver request");
        let status = resp.status();
        let value: Value = resp.json().await.expect("webdriver json");
        if status.is_success() {
            Ok(value["value"].clone())
        } else {
            Err(format!("{status} {}", value["value"]["message"]))
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.cmd("GET", "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The elements matching a CSS selector (none: empty).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.cmd(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
    }

    /// The first element matching a CSS selector; fails the test without one.
    pub async fn find(&self, css: &str) -> Element {
        self.find_all(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    /// Clicks a link or button that loads a new page, and waits until the new page is there
    /// (the old document gone, the new one loaded).
    pub async fn click(&self, css: &str) {
        let old = self.find("html").await;
        self.click_element(css).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let gone = self
                .try_call(
                    "GET",
                    &format!("{}/element/{}/name", self.session, old.0),
                    Value::Null,
                )
                .await
                .is_err();
            if gone {
                let state = self
                    .cdp(
                        "Runtime.evaluate",
                        json!({"expression": "document.readyState", "returnByValue": true}),
                    )
                    .await;
                if state["result"]["value"] == "complete" {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "clicking {css} loaded no new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks an element that does not load a new page (an `<option>` of a select, a checkbox).
    pub async fn click_here(&self, css: &str) {
        self.click_element(css).await;
    }

    /// Finds and clicks the element; found again when a script of the page replaced it between
    /// the two (the console's live preview swaps its form while a message is typed).
    async fn click_element(&self, css: &str) {
        for _ in 0..50 {
            let e = self.find(css).await;
            let url = format!("{}/element/{}/click", self.session, e.0);
            match self.try_call("POST", &url, json!({})).await {
                Ok(_) => return,
                Err(error) if error.contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("webdriver {url}: {error}"),
            }
        }
        panic!("no element matching {css} stayed long enough to be clicked");
    }

    /// Replaces the value of an input.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{}/clear", e.0), json!({}))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd("GET", &format!("/element/{}/text", e.0), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of an element that a script of the page may replace at any moment: found and
    /// read again when it went stale in between.
    pub async fn live_text(&self, css: &str) -> String {
        self.live_read(css, "text").await.unwrap_or_default()
    }

    /// An attribute of an element that a script of the page may replace (see [`Self::live_text`]).
    pub async fn live_attribute(&self, css: &str, name: &str) -> Option<String> {
        self.live_read(css, &format!("attribute/{name}")).await
    }

    async fn live_read(&self, css: &str, what: &str) -> Option<String> {
        for _ in 0..50 {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                let url = format!("{}/element/{}/{what}", self.session, e.0);
                if let Ok(value) = self.try_call("GET", &url, Value::Null).await {
                    return value.as_str().map(str::to_owned);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no element matching {css} stayed long enough to be read");
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css).await;
        self.cmd(
            "GET",
            &format!("/element/{}/attribute/{name}", e.0),
            Value::Null,
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// The value of a cookie the browser holds for the current page.
    pub async fn cookie(&self, name: &str) -> Option<Value> {
        let all = self.cmd("GET", "/cookie", Value::Null).await;
        all.as_array()?.iter().find(|c| c["name"] == name).cloned()
    }

    /// A Chrome DevTools command.
    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": cmd, "params": params}),
        )
        .await
    }

    /// Shows the page as a `width`-pixel-wide device would (a phone below 700 px).
    pub async fn set_width(&self, width: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 700}),
        )
        .await;
    }

    /// Runs `script` in the page and returns what it evaluates to (JSON). For what a test plays
    /// of the page's surroundings, e.g. the Telegram client around a Mini App.
    pub async fn evaluate(&self, script: &str) -> Value {
        let v = self
            .cdp(
                "Runtime.evaluate",
                json!({"expression": script, "returnByValue": true}),
            )
            .await;
        v["result"]["value"].clone()
    }

    /// The page's width in CSS pixels against the viewport's: more means horizontal scrolling.
    pub async fn overflows_horizontally(&self) -> bool {
        self.evaluate("document.documentElement.scrollWidth > window.innerWidth")
            .await
            == true
    }

    /// Saves a screenshot of the whole page (beyond the viewport) as
    /// `target/screenshots/<name>-<width>.png`, at `width` CSS pixels.
    pub async fn screenshot(&self, name: &str, width: u32) -> PathBuf {
        self.set_width(width).await;
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 png");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}-{width}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Screenshots at a phone's and a desktop's width; checks the phone needs no sideways
    /// scrolling. Leaves the desktop width on.
    pub async fn screenshots(&self, name: &str) {
        self.screenshot(name, 360).await;
        assert!(
            !self.overflows_horizontally().await,
            "{name} scrolls sideways at 360 px"
        );
        self.screenshot(name, 1280).await;
    }
}

impl Browser {
    /// Ends the browser session (Chromium exits) and chromedriver.
    pub async fn quit(self) {
        let url = self.session.clone();
        let _ = self.http.delete(url).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        // The group's id is chromedriver's pid (`process_group(0)`).
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
