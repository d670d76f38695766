//! The playground end to end: the binary serves the page, headless chromium (Debian's `chromium`, which
//! .ci/run installs) loads it, and the test drives it through the DevTools protocol: it starts XOR on the
//! GPU (lavapipe in CI) and checks that the loss falls and the decision regions change.
//!
//! Without chromium the test fails where CI is set, and elsewhere says that it skipped. With
//! WGMLP_SCREENSHOT=FILE.png it also saves a screenshot of the page (the README's, tests/playground.png).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

mod common;

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The chromium to drive: $CHROMIUM, or `chromium` on the PATH.
fn chromium() -> Option<String> {
    let name = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    found.is_ok_and(|status| status.success()).then_some(name)
}

/// The first line of `stream` that holds `marker`, from there on (the server prints its address first).
fn line_with(stream: impl Read, marker: &str) -> String {
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line.expect("the child's output is text");
        if let Some(at) = line.find(marker) {
            return line[at..].trim().to_string();
        }
    }
    panic!("the child ended without printing {marker:?}");
}

/// A page driven through the DevTools protocol, over the browser's connection.
struct Page {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// The page's session, once attached; commands without it go to the browser.
    session: Option<String>,
}

impl Page {
    /// Sends one DevTools command and waits for its reply (events in between are dropped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap();
        loop {
            let Message::Text(text) = self.socket.read().unwrap() else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page (awaited where it is a promise).
    fn eval(&mut self, expression: &str) -> Value {
        let params =
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let result = self.call("Runtime.evaluate", params);
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is true, at most `limit`.
    fn wait_for(&mut self, expression: &str, limit: Duration) {
        let start = Instant::now();
        // Before the page has loaded, its elements and globals are not there yet: false, not an error.
        let guarded =
            format!("(() => {{ try {{ return {expression}; }} catch (_) {{ return false; }} }})()");
        while self.eval(&guarded) != json!(true) {
            let error = self.eval("document.getElementById('error')?.textContent");
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for {expression}; error shown: {error}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn the_page_trains_xor_on_the_gpu_and_the_loss_falls() {
    let Some(chromium) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "the playground's end-to-end test needs chromium (CI is set): apt-get install -y chromium"
            );
        }
        eprintln!(
            "skipped: no chromium (apt-get install -y chromium, or set CHROMIUM); .ci/run installs it"
        );
        return;
    };
    // The adapter the page's run trains on: a missing one fails here, with the install hint.
    eprintln!("the page trains on {}", common::gpu().adapter());
    let mut server = Command::new(env!("CARGO_BIN_EXE_wgmlp"))
        .args(["playground", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = server.stdout.take().unwrap();
    let _server = Killed(server);
    let url = line_with(stdout, "http://");
    let url = url.split_whitespace().next().unwrap().to_string();

    let profile = common::scratch("playground-chromium");
    let browser = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--window-size=1400,980",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let _browser = Killed(browser);
    // Chromium writes the port it chose, and the browser's path, to this file in its profile.
    let started = Instant::now();
    let devtools = loop {
        let written =
            std::fs::read_to_string(profile.join("DevToolsActivePort")).unwrap_or_default();
        if let [port, path] = written.lines().collect::<Vec<_>>()[..] {
            break format!("ws://127.0.0.1:{port}{path}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "chromium opened no DevTools port in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (socket, _) = tungstenite::connect(&devtools).unwrap();
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        // A browser that hangs fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
    }
    let mut page = Page {
        socket,
        next_id: 0,
        session: None,
    };
    let targets = page.call("Target.getTargets", json!({}));
    let target = (targets["targetInfos"].as_array().unwrap().iter())
        .find(|t| t["type"] == "page" && t["url"].as_str().unwrap().starts_with(&url))
        .expect("chromium has the page open");
    let attached = page.call(
        "Target.attachToTarget",
        json!({ "targetId": target["targetId"], "flatten": true }),
    );
    page.session = Some(attached["sessionId"].as_str().unwrap().to_string());

    // XOR is shown at epoch 0 once the page has its session; then the GPU, at full speed.
    let summary = "document.getElementById('summary').textContent";
    page.wait_for(
        &format!("{summary}.includes('network 2,3,1')"),
        Duration::from_secs(20),
    );
    page.eval(
        "document.querySelector('[name=backend]').value = 'gpu'; \
         document.getElementById('speed').value = ''; apply()",
    );
    page.wait_for(
        &format!("{summary}.includes('fused engine')"),
        Duration::from_secs(60),
    );
    page.wait_for(
        "frame !== null && frame.epoch === 0",
        Duration::from_secs(10),
    );
    let before = page.eval("document.getElementById('regions').toDataURL()");
    let first_loss = page.eval("frame.loss").as_f64().unwrap();
    page.eval("document.getElementById('start').click()");
    page.wait_for(
        &format!("frame.epoch >= 5000 && frame.loss < {}", first_loss / 4.0),
        Duration::from_secs(60),
    );
    page.eval("document.getElementById('pause').click()");
    page.wait_for("!frame.running", Duration::from_secs(10));
    let after = page.eval("document.getElementById('regions').toDataURL()");
    assert_ne!(before, after, "the decision regions did not change");
    let shown = page.eval("Number(document.getElementById('loss').textContent)");
    assert!(
        shown.as_f64().unwrap() < first_loss / 4.0,
        "the page shows loss {shown}, from {first_loss}"
    );
    let curve = page.eval("frame.curve.train.length").as_u64().unwrap();
    assert!(curve >= 2, "the loss curve has {curve} point(s)");
    assert_eq!(
        page.eval("document.getElementById('error').hidden"),
        json!(true)
    );
    let command = page.eval("document.getElementById('command').textContent");
    assert!(
        command
            .as_str()
            .unwrap()
            .starts_with("wgmlp train --dataset xor --backend gpu --epochs "),
        "{command}"
    );

    if let Some(path) = std::env::var_os("WGMLP_SCREENSHOT") {
        let shot = page.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = data_encoding::BASE64
            .decode(shot["data"].as_str().unwrap().as_bytes())
            .unwrap();
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot saved to {}", path.to_string_lossy());
    }
    std::fs::remove_dir_all(&profile).ok();
}

#[test]
fn a_bad_or_taken_port_is_named() {
    common::fails_with(&["playground", "--port", "70000"], &["--port", "70000"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    common::fails_with(
        &["playground", "--port", &port],
        &[
            &format!("cannot listen on 127.0.0.1:{port}"),
            "choose another --port",
        ],
    );
}
