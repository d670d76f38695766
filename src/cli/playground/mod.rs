//! `playground`: a local web page that trains small networks live. The server (axum on tokio) binds to
//! 127.0.0.1 and serves the page from the binary itself (`include_str!`, nothing fetched from the
//! internet); each session trains on a thread of its own and streams frames as server-sent events.

mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use serde_json::json;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use wgmlp::Gpu;

use session::{Command, Plan, Request, Session, SharedGpu};

#[derive(Args)]
pub struct PlaygroundArgs {
    /// The port to serve the page on, at 127.0.0.1 (0: any free one)
    #[arg(long, default_value_t = 8080)]
    port: u16,

    /// Open the page in the default browser
    #[arg(long)]
    open: bool,

    #[command(flatten)]
    device: super::AdapterChoice,
}

/// The adapter `--adapter` names for the sessions that train on the GPU, set once before serving.
static ADAPTER: OnceLock<Option<String>> = OnceLock::new();

/// The largest request the server reads: an uploaded CSV file travels in one.
const MAX_BODY: usize = 4 << 20;

/// Sessions trained at once; a page watches one (a sweep's runs are one session).
const MAX_SESSIONS: usize = 4;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("playground.js");
const STYLE: &str = include_str!("playground.css");

pub fn run(args: &PlaygroundArgs) -> anyhow::Result<()> {
    let _ = ADAPTER.set(args.device.adapter.clone());
    if args.device.adapter.is_some() {
        // A name that matches no adapter is said now, not at the page's first GPU run.
        shared_gpu()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}; choose another --port"))?;
        let url = format!("http://{}/", listener.local_addr()?);
        say!("playground at {url} (Ctrl-C stops it)")?;
        if args.open {
            open_browser(&url);
        }
        axum::serve(listener, router(shared_gpu))
            .await
            .context("the server stopped")
    })
}

/// Opens `url` in the desktop's browser, or says to where it cannot.
fn open_browser(url: &str) {
    let opener: &[&str] = if cfg!(target_os = "macos") {
        &["open"]
    } else if cfg!(windows) {
        &["cmd", "/C", "start", ""]
    } else {
        &["xdg-open"]
    };
    let opened = std::process::Command::new(opener[0])
        .args(&opener[1..])
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(error) = opened {
        eprintln!(
            "note: cannot open a browser ({}: {error}); open {url}",
            opener[0]
        );
    }
}

/// The adapter sessions train on, opened on first use and kept for the server's life.
fn shared_gpu() -> wgmlp::Result<&'static Gpu> {
    static GPU: Mutex<Option<&'static Gpu>> = Mutex::new(None);
    let mut shared = GPU.lock().expect("opening the adapter does not panic");
    if let Some(gpu) = *shared {
        return Ok(gpu);
    }
    let name = ADAPTER.get().and_then(Option::as_deref);
    let gpu: &'static Gpu = Box::leak(Box::new(pollster::block_on(Gpu::with_adapter(name))?));
    *shared = Some(gpu);
    Ok(gpu)
}

#[derive(Clone)]
struct Server {
    sessions: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    /// Oldest first: the order in which unwatched sessions give way to new ones.
    order: Arc<Mutex<Vec<String>>>,
    gpu: SharedGpu,
}

impl Server {
    fn session(&self, id: &str) -> Result<Arc<Session>, ApiError> {
        let sessions = self
            .sessions
            .lock()
            .expect("no thread panics holding the sessions");
        sessions.get(id).cloned().ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no session {}: it was closed or the server restarted; press Start for a new one",
                    wgmlp::quote(id)
                ),
            )
        })
    }

    /// Makes room for one more session: the oldest that no page watches give way; an error where every one
    /// is watched.
    fn make_room(&self) -> Result<(), ApiError> {
        let mut sessions = self
            .sessions
            .lock()
            .expect("no thread panics holding the sessions");
        let mut order = self
            .order
            .lock()
            .expect("no thread panics holding the order");
        while sessions.len() >= MAX_SESSIONS {
            let unwatched = order.iter().position(|id| !sessions[id].watched());
            let Some(index) = unwatched else {
                return Err(ApiError(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "the playground trains at most {MAX_SESSIONS} sessions at once, and every one is \
                         open in a page; close one of them"
                    ),
                ));
            };
            sessions.remove(&order.remove(index));
        }
        Ok(())
    }

    fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let mut sessions = self
            .sessions
            .lock()
            .expect("no thread panics holding the sessions");
        self.order
            .lock()
            .expect("no thread panics holding the order")
            .retain(|i| i != id);
        sessions.remove(id)
    }
}

/// The playground's routes; `gpu` opens the adapter that sessions share.
pub fn router(gpu: SharedGpu) -> Router {
    let server = Server {
        sessions: Arc::default(),
        order: Arc::default(),
        gpu,
    };
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/playground.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/playground.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/sessions", post(create))
        .route("/api/sessions/{id}", axum::routing::delete(close))
        .route("/api/sessions/{id}/events", get(events))
        .route("/api/sessions/{id}/model", get(model))
        .route("/api/sessions/{id}/{action}", post(control))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such page".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(server)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json")];
    (status, headers, value.to_string()).into_response()
}

/// An error as the page shows it: `{"error": "..."}` with a 4xx status (5xx where the server failed).
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_reply(self.0, &json!({ "error": self.1 }))
    }
}

impl ApiError {
    fn bad(error: anyhow::Error) -> Self {
        ApiError(StatusCode::BAD_REQUEST, format!("{error:#}"))
    }
}

/// A request body read whole, or the error that says why not (too large: 413).
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request is larger than the {} MiB the playground reads; upload a smaller file",
                MAX_BODY >> 20
            ),
        ),
        status => ApiError(status, rejection.body_text()),
    })
}

/// JSON of type `T` from a request body, or a 400 that says what is wrong with it.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the request is not the JSON expected: {e}"),
        )
    })
}

/// `POST /api/sessions`: a new session from the page's settings; replies with what the page draws once.
async fn create(
    State(server): State<Server>,
    request: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: Request = parse_json(&body(request)?)?;
    let plan = Plan::new(request).map_err(ApiError::bad)?;
    server.make_room()?;
    let (session, mut introduction) = Session::start(plan, server.gpu)
        .await
        .map_err(ApiError::bad)?;
    let id = format!("{:016x}", rand::random::<u64>());
    introduction["id"] = json!(id);
    server.make_room()?;
    let mut sessions = server
        .sessions
        .lock()
        .expect("no thread panics holding the sessions");
    sessions.insert(id.clone(), Arc::new(session));
    server
        .order
        .lock()
        .expect("no thread panics holding the order")
        .push(id);
    Ok(json_reply(StatusCode::CREATED, &introduction))
}

/// `DELETE /api/sessions/{id}`: ends a session (its thread stops with it).
async fn close(
    State(server): State<Server>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    server.session(&id)?;
    server.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /api/sessions/{id}/start`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Speed {
    epochs_per_second: Option<f64>,
}

/// `POST /api/sessions/{id}/start|pause|step|reset`.
async fn control(
    State(server): State<Server>,
    Path((id, action)): Path<(String, String)>,
    request: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let session = server.session(&id)?;
    let request = body(request)?;
    let command = match action.as_str() {
        "start" => {
            let speed: Speed = match request.is_empty() {
                true => Speed::default(),
                false => parse_json(&request)?,
            };
            if let Some(rate) = speed
                .epochs_per_second
                .filter(|r| !(r.is_finite() && *r > 0.0))
            {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "epochs_per_second {rate}: give a number above 0, or leave it out for full speed"
                    ),
                ));
            }
            Command::Start {
                epochs_per_second: speed.epochs_per_second,
            }
        }
        "pause" => Command::Pause,
        "step" => Command::Step,
        "reset" => Command::Reset,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no action {}: a session takes start, pause, step and reset",
                    wgmlp::quote(other)
                ),
            ));
        }
    };
    match session.send(command) {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ended(&id)),
    }
}

fn ended(id: &str) -> ApiError {
    ApiError(
        StatusCode::GONE,
        format!(
            "session {} has ended; press Start for a new one",
            wgmlp::quote(id)
        ),
    )
}

/// `GET /api/sessions/{id}/events`: the session's frames as server-sent events, the latest first.
async fn events(
    State(server): State<Server>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let session = server.session(&id)?;
    let frames = WatchStream::new(session.watch())
        .filter(|frame| !frame.is_empty())
        .map(|frame| Ok::<_, std::convert::Infallible>(Event::default().data(frame)));
    Ok(Sse::new(frames)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /api/sessions/{id}/model`: the safetensors file `train --save` writes for the page's command.
async fn model(State(server): State<Server>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let session = server.session(&id)?;
    let (reply, bytes) = tokio::sync::oneshot::channel();
    if !session.send(Command::Save(reply)) {
        return Err(ended(&id));
    }
    let bytes = bytes.await.map_err(|_| ended(&id))?;
    let bytes = bytes.map_err(|reason| ApiError(StatusCode::CONFLICT, reason))?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream"),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"model.safetensors\"",
        ),
    ];
    Ok((headers, bytes).into_response())
}

/// The routes, called in-process (no network); sessions train on the CPU.
#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use clap::Parser;
    use serde_json::Value;
    use tower::ServiceExt;

    /// No adapter: the route tests train on the CPU, and a GPU setting meets the missing adapter's error.
    fn no_gpu() -> wgmlp::Result<&'static Gpu> {
        Err(wgmlp::Error::NoAdapter {
            reason: "the route tests open none".into(),
        })
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a test runtime starts");
        runtime.block_on(future)
    }

    async fn call(router: &Router, method: &str, path: &str, body: impl Into<Body>) -> Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(body.into())
            .unwrap();
        router.clone().oneshot(request).await.unwrap()
    }

    /// The status and the `"error"` of a JSON error reply.
    async fn error(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json: Value = serde_json::from_slice(&bytes).expect("errors are JSON");
        (
            status,
            json["error"]
                .as_str()
                .expect("an error message")
                .to_string(),
        )
    }

    async fn create(router: &Router, body: Value) -> Response {
        call(router, "POST", "/api/sessions", body.to_string()).await
    }

    /// Expects `body` refused with `status` and a message holding every fragment.
    async fn refused(router: &Router, body: Value, status: StatusCode, fragments: &[&str]) {
        let (got, message) = error(create(router, body.clone()).await).await;
        assert_eq!(got, status, "{body}: {message}");
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{body}: {fragment:?} missing from {message:?}"
            );
        }
    }

    fn xor_on_cpu() -> Value {
        serde_json::json!({ "settings": { "dataset": "xor", "backend": "cpu" } })
    }

    /// The frames of a session's event stream, read until `until` accepts one.
    async fn frame_until(router: &Router, id: &str, until: impl Fn(&Value) -> bool) -> Value {
        let response = call(
            router,
            "GET",
            &format!("/api/sessions/{id}/events"),
            Body::empty(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut stream = response.into_body().into_data_stream();
        let mut text = String::new();
        loop {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
                .await
                .expect("a frame within 30 s")
                .expect("the stream goes on")
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let frame: Value = serde_json::from_str(data).unwrap();
                    if until(&frame) {
                        return frame;
                    }
                }
            }
        }
    }

    #[test]
    fn serves_the_page_and_its_assets() {
        block_on(async {
            let router = router(no_gpu);
            for (path, fragment) in [
                ("/", "<canvas id=\"regions\""),
                ("/playground.js", "EventSource"),
                ("/playground.css", "#stats"),
            ] {
                let response = call(&router, "GET", path, Body::empty()).await;
                assert_eq!(response.status(), StatusCode::OK, "{path}");
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let body = String::from_utf8(body.to_vec()).unwrap();
                assert!(body.contains(fragment), "{path} lacks {fragment:?}");
                // Nothing is fetched from elsewhere: no CDN, no absolute URL.
                assert!(
                    !body.contains("http://") && !body.contains("https://"),
                    "{path} links out"
                );
            }
            let (status, message) =
                error(call(&router, "GET", "/nowhere", Body::empty()).await).await;
            assert_eq!(
                (status, message.as_str()),
                (StatusCode::NOT_FOUND, "no such page")
            );
        });
    }

    #[test]
    fn bad_settings_get_the_command_lines_errors_as_json() {
        block_on(async {
            let router = router(no_gpu);
            let bad = StatusCode::BAD_REQUEST;
            let settings = |pairs: Value| serde_json::json!({ "settings": pairs });
            let (status, message) =
                error(call(&router, "POST", "/api/sessions", "{not json").await).await;
            assert_eq!(status, bad);
            assert!(message.contains("not the JSON expected"), "{message}");
            refused(
                &router,
                serde_json::json!({ "options": {} }),
                bad,
                &["unknown field `options`"],
            )
            .await;
            // Nothing names a file on the server.
            for option in ["save", "init", "export", "plot", "validation"] {
                let body = settings(serde_json::json!({ "dataset": "xor", option: "/tmp/x" }));
                refused(&router, body, bad, &["unknown setting", option]).await;
            }
            let cases: &[(Value, &[&str])] = &[
                (
                    serde_json::json!({ "dataset": "xor", "layers": "2,0,1" }),
                    &["--layers", "0"],
                ),
                (
                    serde_json::json!({ "dataset": "xor", "layers": "3,4,1" }),
                    &["--layers 3,4,1", "first size must be 2"],
                ),
                (
                    serde_json::json!({ "dataset": "xor", "lr": "-1" }),
                    &["--lr", "-1"],
                ),
                (
                    serde_json::json!({ "dataset": "xor", "lr": "fast" }),
                    &["--lr", "\"fast\" is not a number"],
                ),
                (
                    serde_json::json!({ "dataset": "moons", "activation": "swish" }),
                    &["swish"],
                ),
                (
                    serde_json::json!({ "dataset": "moons", "noise": "-1" }),
                    &["--noise", "≥ 0"],
                ),
                (
                    serde_json::json!({ "dataset": "moons", "samples": "100000000" }),
                    &["--samples 100000000", "at most 10000"],
                ),
                (
                    serde_json::json!({ "dataset": "xor", "runs": "5000" }),
                    &["--runs 5000", "at most 1024"],
                ),
                (
                    serde_json::json!({ "dataset": "moons", "layers": "2,1000,1000,1" }),
                    &["1005001 parameters", "at most 100000"],
                ),
                (
                    serde_json::json!({ "dataset": "moons", "backend": "gpu" }),
                    &["no GPU adapter found", "--backend cpu"],
                ),
                (
                    serde_json::json!({ "dataset": "data.csv" }),
                    &["\"data.csv\"", "upload a CSV file"],
                ),
            ];
            for (pairs, fragments) in cases {
                refused(&router, settings(pairs.clone()), bad, fragments).await;
            }
        });
    }

    #[test]
    fn bad_uploads_are_refused_with_the_file_named() {
        block_on(async {
            let router = router(no_gpu);
            let bad = StatusCode::BAD_REQUEST;
            let upload = |name: &str, csv: &str| serde_json::json!({ "settings": { "dataset": name }, "upload": { "name": name, "csv": csv } });
            refused(
                &router,
                upload("points.csv", "a,b,y\n1,2,0\n3,4\n"),
                bad,
                &["points.csv", "line 3"],
            )
            .await;
            let three = "a,b,c,y\n1,2,3,0\n4,5,6,1\n";
            refused(
                &router,
                upload("wide.csv", three),
                bad,
                &["two inputs", "3 feature column(s)"],
            )
            .await;
            // A path in the name is reduced to the file's own name, so it never names a server file.
            refused(
                &router,
                upload("../../etc/passwd", "x\n1\n"),
                bad,
                &["passwd, line 1"],
            )
            .await;
            let builtin_and_file = serde_json::json!({
                "settings": { "dataset": "xor" }, "upload": { "name": "a.csv", "csv": "x,y\n1,0\n" }
            });
            refused(
                &router,
                builtin_and_file,
                bad,
                &["built-in", "one or the other"],
            )
            .await;
            let huge = upload("big.csv", &"1,2,0\n".repeat(MAX_BODY / 6 + 1));
            refused(
                &router,
                huge,
                StatusCode::PAYLOAD_TOO_LARGE,
                &["larger than the 4 MiB"],
            )
            .await;
        });
    }

    #[test]
    fn unknown_sessions_and_actions_are_named() {
        block_on(async {
            let router = router(no_gpu);
            for (method, path) in [
                ("POST", "/api/sessions/feed/start"),
                ("GET", "/api/sessions/feed/events"),
                ("GET", "/api/sessions/feed/model"),
                ("DELETE", "/api/sessions/feed"),
            ] {
                let (status, message) =
                    error(call(&router, method, path, Body::empty()).await).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
                assert!(message.contains("no session \"feed\""), "{message}");
            }
            let (id, _) = session_id(create(&router, xor_on_cpu()).await).await;
            let (status, message) = error(
                call(
                    &router,
                    "POST",
                    &format!("/api/sessions/{id}/jump"),
                    Body::empty(),
                )
                .await,
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert!(
                message.contains("start, pause, step and reset"),
                "{message}"
            );
            for speed in [
                "{\"epochs_per_second\": -3}",
                "{\"epochs_per_second\": 0}",
                "{\"speed\": 1}",
            ] {
                let response =
                    call(&router, "POST", &format!("/api/sessions/{id}/start"), speed).await;
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{speed}");
            }
            let (status, message) = error(
                call(
                    &router,
                    "GET",
                    &format!("/api/sessions/{id}/model"),
                    Body::empty(),
                )
                .await,
            )
            .await;
            assert_eq!(status, StatusCode::CONFLICT);
            assert!(message.contains("train at least one epoch"), "{message}");
            let closed = call(
                &router,
                "DELETE",
                &format!("/api/sessions/{id}"),
                Body::empty(),
            )
            .await;
            assert_eq!(closed.status(), StatusCode::NO_CONTENT);
            let again = call(
                &router,
                "POST",
                &format!("/api/sessions/{id}/step"),
                Body::empty(),
            )
            .await;
            assert_eq!(again.status(), StatusCode::NOT_FOUND);
        });
    }

    async fn session_id(response: Response) -> (String, Value) {
        assert_eq!(response.status(), StatusCode::CREATED);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let introduction: Value = serde_json::from_slice(&bytes).unwrap();
        (
            introduction["id"].as_str().unwrap().to_string(),
            introduction,
        )
    }

    /// XOR steps, trains, pauses; the model it saves is the file that its "Copy command" line writes.
    #[test]
    fn a_session_trains_and_its_command_saves_the_same_model() {
        block_on(async {
            let router = router(no_gpu);
            let (id, introduction) = session_id(create(&router, xor_on_cpu()).await).await;
            assert_eq!(introduction["network"], "2,3,1");
            assert_eq!(introduction["engine"], "cpu");
            assert_eq!(
                introduction["points"]["value"],
                serde_json::json!([0.0, 1.0, 1.0, 0.0])
            );
            let first = frame_until(&router, &id, |_| true).await;
            assert_eq!(first["epoch"], 0);
            let cells = session::GRID_SIDE * session::GRID_SIDE;
            assert_eq!(
                first["regions"][0]["values"].as_array().unwrap().len(),
                cells
            );
            let post = |action: &'static str, body: &'static str| {
                let router = router.clone();
                let path = format!("/api/sessions/{id}/{action}");
                async move { call(&router, "POST", &path, body).await.status() }
            };
            assert_eq!(post("step", "").await, StatusCode::NO_CONTENT);
            let stepped = frame_until(&router, &id, |f| f["epoch"] == 1).await;
            assert_eq!(stepped["running"], false);
            assert_eq!(
                post("start", "{\"epochs_per_second\": 20000}").await,
                StatusCode::NO_CONTENT
            );
            let trained = frame_until(&router, &id, |f| f["epoch"].as_u64().unwrap() >= 4000).await;
            assert_eq!(trained["running"], true);
            assert!(trained["epochs_per_second"].as_f64().unwrap() > 0.0);
            assert_eq!(post("pause", "").await, StatusCode::NO_CONTENT);
            let paused = frame_until(&router, &id, |f| f["running"] == false).await;
            let loss = paused["loss"].as_f64().unwrap();
            assert!(
                loss < 0.5 * first["loss"].as_f64().unwrap(),
                "the loss fell from {} to {loss}",
                first["loss"]
            );
            let curve = &paused["curve"]["train"];
            assert_eq!(
                curve[0], first["loss"],
                "the curve starts at epoch 0's loss"
            );
            let regions = &paused["regions"][0]["values"];
            assert_ne!(
                regions, &first["regions"][0]["values"],
                "the regions changed"
            );

            let saved = call(
                &router,
                "GET",
                &format!("/api/sessions/{id}/model"),
                Body::empty(),
            )
            .await;
            assert_eq!(saved.status(), StatusCode::OK);
            let saved = axum::body::to_bytes(saved.into_body(), usize::MAX)
                .await
                .unwrap();
            let command = paused["command"].as_str().unwrap();
            let epochs = paused["epoch"].as_u64().unwrap();
            assert!(
                command.starts_with("wgmlp train --dataset xor --backend cpu"),
                "{command}"
            );
            assert!(
                command.ends_with(&format!("--epochs {epochs} --save model.safetensors")),
                "{command}"
            );
            // The command line, run in-process: it writes the same bytes.
            let dir = std::env::temp_dir()
                .join(format!("wgmlp-playground-command-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("model.safetensors");
            let words = command.replace("model.safetensors", path.to_str().unwrap());
            let words = words.split(' ').skip(1).chain(["--quiet"]);
            let parsed = session::TrainCommand::try_parse_from(words).unwrap();
            crate::cli::train::run(&parsed.args, false).unwrap();
            assert!(
                std::fs::read(&path).unwrap() == saved,
                "the saved model differs from the command's"
            );
            std::fs::remove_dir_all(&dir).unwrap();

            assert_eq!(post("reset", "").await, StatusCode::NO_CONTENT);
            let reset = frame_until(&router, &id, |f| f["epoch"] == 0).await;
            assert_eq!(
                reset["loss"], first["loss"],
                "a reset starts from the same weights"
            );
        });
    }

    /// A sweep reports how many runs converged and the regions of the first few.
    #[test]
    fn a_sweep_shows_a_few_runs_and_counts_the_converged() {
        block_on(async {
            let router = router(no_gpu);
            let body = serde_json::json!({ "settings": { "dataset": "xor", "backend": "cpu", "runs": "8", "lr": "2" } });
            let (id, introduction) = session_id(create(&router, body).await).await;
            assert_eq!(introduction["runs"], 8);
            let path = format!("/api/sessions/{id}/start");
            assert_eq!(
                call(&router, "POST", &path, "").await.status(),
                StatusCode::NO_CONTENT
            );
            let frame = frame_until(&router, &id, |f| f["epoch"].as_u64().unwrap() >= 3000).await;
            assert_eq!(frame["runs"], 8);
            assert_eq!(frame["regions"].as_array().unwrap().len(), 6);
            let seeds: Vec<u64> = (frame["regions"].as_array().unwrap().iter())
                .map(|r| r["seed"].as_u64().unwrap())
                .collect();
            assert_eq!(seeds, [7, 8, 9, 10, 11, 12]);
            let converged = frame["converged"].as_u64().unwrap();
            assert!((1..=8).contains(&converged), "{converged} of 8 converged");
        });
    }

    /// At most MAX_SESSIONS train at once: unwatched ones give way, watched ones do not.
    #[test]
    fn sessions_are_limited() {
        block_on(async {
            let router = router(no_gpu);
            let mut ids = Vec::new();
            for _ in 0..MAX_SESSIONS + 1 {
                ids.push(session_id(create(&router, xor_on_cpu()).await).await.0);
            }
            // The oldest, unwatched, gave way to the last.
            let gone = call(
                &router,
                "POST",
                &format!("/api/sessions/{}/step", ids[0]),
                Body::empty(),
            )
            .await;
            assert_eq!(gone.status(), StatusCode::NOT_FOUND);
            let mut watching = Vec::new();
            for id in &ids[1..] {
                let events = call(
                    &router,
                    "GET",
                    &format!("/api/sessions/{id}/events"),
                    Body::empty(),
                )
                .await;
                watching.push(events);
            }
            refused(
                &router,
                xor_on_cpu(),
                StatusCode::TOO_MANY_REQUESTS,
                &["at most 4 sessions"],
            )
            .await;
            drop(watching);
        });
    }
}
