//! A headless chromium driven over the DevTools protocol (CDP), for the web console's tests:
//! the system's `chromium` (Debian's; `SCARAB_CHROMIUM` names another), one profile
//! directory per browser, killed on drop. Nothing here downloads a browser.
//!
//! Why not chromiumoxide: its generated bindings of the whole protocol took 12 minutes of a
//! 2-core machine to build (debug), a quarter of CI's budget, and its `new_page` never
//! returned with chromium 156. The tests need seven commands (open a tab, navigate,
//! evaluate, click, insert text, choose files, screenshot), each a JSON message over one WebSocket.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long one protocol command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The window (and screenshot) size.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 860;

/// The commands waiting for an answer; `None` once the connection has ended.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Result<Value>>>>>>;

/// One WebSocket to the browser; commands are matched to answers by id.
#[derive(Clone)]
struct Connection {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: Arc<AtomicU64>,
}

impl Connection {
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        match self.pending.lock().unwrap().as_mut() {
            Some(pending) => pending.insert(id, tx),
            None => bail!("the browser connection is closed"),
        };
        let sent = self.out.send(Message::text(message.to_string()));
        let answer = match sent {
            Ok(()) => Some(tokio::time::timeout(COMMAND_TIMEOUT, rx).await),
            Err(_) => None,
        };
        // Whatever the outcome, the id waits no more.
        if let Some(pending) = self.pending.lock().unwrap().as_mut() {
            pending.remove(&id);
        }
        answer
            .context("the browser connection is closed")?
            .with_context(|| format!("{method} took over {COMMAND_TIMEOUT:?}"))?
            .map_err(|_| anyhow!("the browser connection closed during {method}"))?
            .with_context(|| method.to_string())
    }
}

/// A headless chromium process.
pub struct Browser {
    child: tokio::process::Child,
    connection: Connection,
    _profile: tempfile::TempDir,
}

fn executable() -> Result<PathBuf> {
    let name = std::env::var("SCARAB_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no {name} on the PATH: `apt-get install chromium` (tests/tools/install.sh does)"
            )
        })
}

impl Browser {
    /// Starts chromium and connects to its DevTools endpoint (which it prints on stderr).
    pub async fn launch() -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut child = tokio::process::Command::new(executable()?)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--remote-debugging-port=0",
                &format!("--window-size={WIDTH},{HEIGHT}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start chromium")?;
        let mut lines = BufReader::new(child.stderr.take().context("chromium's stderr")?).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Ok(url.trim().to_string());
                }
            }
            bail!("chromium exited before it listened")
        })
        .await
        .context("chromium did not listen within 60 s")??;
        // Keep draining stderr, or chromium blocks once the pipe is full.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("connect to {url}"))?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = outgoing.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let answers = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                // Events (no id) are not needed: the tests poll the page.
                let Some(id) = v["id"].as_u64() else { continue };
                let tx = answers.lock().unwrap().as_mut().and_then(|p| p.remove(&id));
                let Some(tx) = tx else { continue };
                let _ = tx.send(match v.get("error") {
                    Some(e) => Err(anyhow!("the browser refused: {e}")),
                    None => Ok(v["result"].clone()),
                });
            }
            // The connection ended: fail whatever still waits, and every later command.
            answers.lock().unwrap().take();
        });
        Ok(Browser {
            child,
            connection: Connection {
                out,
                pending,
                next: Arc::new(AtomicU64::new(1)),
            },
            _profile: profile,
        })
    }

    /// A new tab at `url`, once its document has loaded.
    pub async fn open(&self, url: &str) -> Result<Page> {
        let target = self
            .connection
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target = target["targetId"].as_str().context("a target id")?;
        let attached = self
            .connection
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await?;
        let page = Page {
            connection: self.connection.clone(),
            session: attached["sessionId"]
                .as_str()
                .context("a session id")?
                .to_string(),
        };
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        page.goto(url).await?;
        Ok(page)
    }
}

impl Drop for Browser {
    /// Kills chromium and waits (a little) for it to exit, so that its profile directory is
    /// not removed under a running browser.
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One tab.
pub struct Page {
    connection: Connection,
    session: String,
}

impl Page {
    async fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.connection
            .call(Some(&self.session), method, params)
            .await
    }

    /// Navigates to `url` and waits until its document has loaded: the new document when
    /// the navigation loads one (the old one is marked first, so that its own `complete`
    /// does not count), the same one when only the fragment changes.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.eval("window.__scarabLeft = true").await?;
        let answer = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = answer["errorText"].as_str() {
            bail!("navigating to {url}: {error}");
        }
        let loaded = if answer.get("loaderId").is_some() {
            "!window.__scarabLeft && document.readyState === 'complete'"
        } else {
            "document.readyState === 'complete'"
        };
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            // While the document is replaced, evaluating may fail ("context destroyed").
            if let Ok(Value::Bool(true)) = self.eval(loaded).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{url} did not load within {COMMAND_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of the JavaScript expression `expr` (a promise is awaited); an exception
    /// is an error with its message.
    pub async fn eval(&self, expr: &str) -> Result<Value> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(e) = answer.get("exceptionDetails") {
            let message = e["exception"]["description"]
                .as_str()
                .or(e["text"].as_str())
                .unwrap_or("an exception");
            bail!("{expr} threw: {message}");
        }
        Ok(answer["result"]["value"].clone())
    }

    /// A left click, as the mouse makes it, in the middle of the element at `selector`
    /// (scrolled into view first).
    pub async fn click(&self, selector: &str) -> Result<()> {
        let at = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await?;
        let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
            bail!("nothing on the page matches {selector}");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await?;
        }
        Ok(())
    }

    /// Replaces the text of the field at `selector` as a user does: a click into it, its
    /// text selected, and the new text entered (CDP's insertText, how a paste or an input
    /// method enters text: it fires the same `input` event as typing).
    pub async fn type_into(&self, selector: &str, text: &str) -> Result<()> {
        self.click(selector).await?;
        self.eval(&format!("document.querySelector({selector:?}).select()"))
            .await?;
        self.call("Input.insertText", json!({"text": text})).await?;
        Ok(())
    }

    /// Chooses `files` in the file input at `selector`, as the file dialog does (the page
    /// sees a `change` event).
    pub async fn set_files(&self, selector: &str, files: &[&std::path::Path]) -> Result<()> {
        let found = self
            .call(
                "Runtime.evaluate",
                json!({"expression": format!("document.querySelector({selector:?})")}),
            )
            .await?;
        let object = found["result"]["objectId"]
            .as_str()
            .with_context(|| format!("nothing on the page matches {selector}"))?;
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({"files": files, "objectId": object}),
        )
        .await?;
        Ok(())
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let data = shot["data"].as_str().context("screenshot data")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }

    /// Polls `expr` until it is truthy (not null, false, 0 or ""), within `within`, and
    /// answers its value; else fails with the page's text.
    pub async fn wait_for(&self, expr: &str, within: Duration) -> Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(expr).await?;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body.innerText").await?;
                bail!("the page did not show `{expr}` within {within:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
