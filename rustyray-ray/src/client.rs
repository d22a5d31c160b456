//! A typed client of the Ray Jobs REST API: only the calls the runner needs
//! (submit, status, logs, stop, delete, version, and the package upload
//! that carries a binary to the cluster), each with a timeout, each failure
//! a [`RayError`] that names the dashboard and the Ray job.
//!
//! Token authentication works as in Ray's own `JobSubmissionClient`: the
//! token goes in an `Authorization: Bearer` header. [`RayClient::from_env`]
//! finds it where Ray does: `RAY_AUTH_TOKEN`, the file named by
//! `RAY_AUTH_TOKEN_PATH`, or `~/.ray/auth_token`; a token from a file is read
//! again when the dashboard refuses it, so a rotated token is picked up
//! (and a circuit breaker opened by the refusal closes) without a restart.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rustyray_ray::RayError> {
//! use rustyray_ray::{JobSubmission, RayClient};
//! let ray = RayClient::from_env("http://127.0.0.1:8265")?;
//! let id = ray.submit(&JobSubmission::new("echo hello").submission_id("hello-1")).await?;
//! let status = ray.job(&id).await?.status;
//! println!("{id}: {status:?}");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{RayError, Result};

/// A Ray job's status, as the dashboard reports it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Waiting for the cluster to start it.
    Pending,
    /// Its entrypoint runs.
    Running,
    /// Stopped by a stop request.
    Stopped,
    /// The entrypoint exited with status 0.
    Succeeded,
    /// The entrypoint failed, or the job could not start.
    Failed,
    /// A status this client does not know (a newer Ray).
    #[serde(other)]
    Unknown,
}

impl JobStatus {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Stopped | JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// What the dashboard knows of one Ray job (the fields the runner reads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobDetails {
    /// The submission id.
    pub submission_id: Option<String>,
    /// Ray's job id, once its driver runs.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The status.
    pub status: JobStatus,
    /// Ray's message about the status.
    #[serde(default)]
    pub message: Option<String>,
    /// Ray's class of failure, when it failed.
    #[serde(default)]
    pub error_type: Option<String>,
    /// When it started, ms since the epoch.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// When it ended, ms since the epoch.
    #[serde(default)]
    pub end_time: Option<u64>,
    /// The entrypoint's exit code, once it exited.
    #[serde(default)]
    pub driver_exit_code: Option<i64>,
}

/// A job to submit: `POST /api/jobs/`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct JobSubmission {
    /// The shell command the job runs.
    pub entrypoint: String,
    /// The id to submit under; a second submit with the same id is refused,
    /// which makes a repeated submit harmless.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submission_id: Option<String>,
    /// Labels shown with the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// CPUs reserved for the entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_cpus: Option<f64>,
    /// GPUs reserved for the entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_gpus: Option<f64>,
    /// Memory reserved for the entrypoint, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_memory: Option<u64>,
    /// Custom resources reserved for the entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_resources: Option<BTreeMap<String, f64>>,
    /// The job's runtime environment (`working_dir`, `env_vars`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_env: Option<serde_json::Value>,
}

impl JobSubmission {
    /// A job running `entrypoint`.
    pub fn new(entrypoint: impl Into<String>) -> Self {
        JobSubmission { entrypoint: entrypoint.into(), ..JobSubmission::default() }
    }

    /// Submits under `id`.
    pub fn submission_id(mut self, id: impl Into<String>) -> Self {
        self.submission_id = Some(id.into());
        self
    }
}

/// The dashboard's version, `GET /api/version`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RayVersion {
    /// The Jobs API version.
    pub version: String,
    /// Ray's release.
    pub ray_version: String,
}

/// A client of one Ray dashboard. Cheap to clone.
#[derive(Clone)]
pub struct RayClient {
    base: String,
    http: reqwest::Client,
    /// The token, shared by the clones: one read again from `token_file`
    /// serves them all.
    token: Arc<RwLock<Option<String>>>,
    /// The file the token came from, read again when a request is refused
    /// (a token rotated on the cluster is picked up without a restart).
    token_file: Option<Arc<PathBuf>>,
    timeout: Duration,
}

impl fmt::Debug for RayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RayClient")
            .field("address", &self.base)
            .field("token", &self.current_token().map(|_| "***"))
            .field("token_file", &self.token_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How much of an error body is kept in a message.
const MESSAGE_LIMIT: usize = 2000;

impl RayClient {
    /// A client of the dashboard at `address` (`http://HOST:8265`), without a token.
    pub fn new(address: &str) -> Result<Self> {
        let trimmed = address.trim().trim_end_matches('/');
        let parsed = url::Url::parse(trimmed)
            .map_err(|error| RayError::InvalidAddress { address: address.to_string(), reason: error.to_string() })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(RayError::InvalidAddress {
                address: address.to_string(),
                reason: "it needs an http:// or https:// scheme and a host".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| RayError::InvalidAddress { address: address.to_string(), reason: error.to_string() })?;
        Ok(RayClient {
            base: trimmed.to_string(),
            http,
            token: Arc::default(),
            token_file: None,
            timeout: Duration::from_secs(30),
        })
    }

    /// A client of `address` with the token found where Ray looks for it:
    /// `RAY_AUTH_TOKEN`, the file `RAY_AUTH_TOKEN_PATH` names, or
    /// `~/.ray/auth_token` (none found: no token, for a cluster without auth).
    /// A token from a file is read again when the dashboard refuses it.
    pub fn from_env(address: &str) -> Result<Self> {
        let client = Self::new(address)?;
        Ok(match token_from_env()? {
            Found::Token(token) => client.with_token(token),
            Found::File(path) => client.with_token_file(path)?,
        })
    }

    /// Sends `token` with every request (`None`: none).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = Arc::new(RwLock::new(clean(token)));
        self.token_file = None;
        self
    }

    /// Sends the token the file at `path` holds (read now), and reads it
    /// again whenever the dashboard refuses a request (401, 403): a refused
    /// request is sent once more if the token changed, so a token rotated
    /// on the cluster is picked up without a restart.
    pub fn with_token_file(mut self, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        self.token = Arc::new(RwLock::new(read_token(&path)?));
        self.token_file = Some(Arc::new(path));
        Ok(self)
    }

    /// The token sent now.
    fn current_token(&self) -> Option<String> {
        self.token.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Reads the token file again, if the token came from one; returns
    /// whether the token changed.
    fn reload_token(&self) -> bool {
        let Some(path) = &self.token_file else { return false };
        let fresh = match read_token(path) {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(%error, "cannot read the Ray token again");
                return false;
            }
        };
        let mut token = self.token.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *token == fresh {
            return false;
        }
        tracing::info!(path = %path.display(), "the Ray token changed: sending the new one");
        *token = fresh;
        true
    }

    /// How long one request may take (default 30 s; uploads get longer).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The dashboard's address.
    pub fn address(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).timeout(self.timeout)
    }

    /// Sends `request` with the token; a refusal with a token file that has
    /// changed since is sent once more, with the new token.
    async fn send(&self, request: reqwest::RequestBuilder, action: &str, what: &str) -> Result<reqwest::Response> {
        let again = self.token_file.as_ref().and_then(|_| request.try_clone());
        let authorized = |request: reqwest::RequestBuilder| match self.current_token() {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let mut response = authorized(request).send().await.map_err(|error| self.unreachable(action, &error))?;
        if matches!(response.status().as_u16(), 401 | 403)
            && let Some(again) = again
            && self.reload_token()
        {
            response = authorized(again).send().await.map_err(|error| self.unreachable(action, &error))?;
        }
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = ray_message(&body);
        Err(match status {
            401 | 403 => RayError::Unauthorized { address: self.base.clone(), action: action.into(), status, message },
            404 => RayError::NotFound { address: self.base.clone(), what: what.to_string() },
            _ => RayError::Rejected { address: self.base.clone(), action: action.into(), status, message },
        })
    }

    fn unreachable(&self, action: &str, error: &reqwest::Error) -> RayError {
        use std::error::Error as _;
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        RayError::Unreachable { address: self.base.clone(), action: action.into(), message }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, response: reqwest::Response, action: &str) -> Result<T> {
        let bytes = response.bytes().await.map_err(|error| self.unreachable(action, &error))?;
        serde_json::from_slice(&bytes).map_err(|error| RayError::Protocol {
            address: self.base.clone(),
            action: action.into(),
            message: format!("{error}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)])),
        })
    }

    /// `GET /api/version`: is the dashboard there, and which Ray is it.
    pub async fn version(&self) -> Result<RayVersion> {
        let action = "reading the version";
        let response = self.send(self.request(reqwest::Method::GET, "/api/version"), action, "/api/version").await?;
        self.json(response, action).await
    }

    /// `POST /api/jobs/`: submits a job; returns its submission id. A job
    /// with the same submission id already there is
    /// [`RayError::AlreadyExists`].
    pub async fn submit(&self, job: &JobSubmission) -> Result<String> {
        let id = job.submission_id.as_deref().unwrap_or("(new)");
        let action = format!("submitting Ray job {id}");
        let request = self.request(reqwest::Method::POST, "/api/jobs/").json(job);
        match self.send(request, &action, &format!("the jobs API (submitting {id})")).await {
            Ok(response) => {
                #[derive(Deserialize)]
                struct Submitted {
                    submission_id: String,
                }
                let submitted: Submitted = self.json(response, &action).await?;
                Ok(submitted.submission_id)
            }
            Err(RayError::Rejected { message, .. }) if message.contains("already exists") => {
                Err(RayError::AlreadyExists { address: self.base.clone(), submission_id: id.to_string() })
            }
            Err(error) => Err(error),
        }
    }

    /// `GET /api/jobs/{id}`: the job's status and Ray's message.
    pub async fn job(&self, id: &str) -> Result<JobDetails> {
        let action = format!("reading Ray job {id}");
        let response = self
            .send(self.request(reqwest::Method::GET, &format!("/api/jobs/{id}")), &action, &format!("Ray job {id}"))
            .await?;
        self.json(response, &action).await
    }

    /// `GET /api/jobs/{id}/logs`, whole.
    pub async fn logs(&self, id: &str) -> Result<String> {
        self.logs_tail(id, usize::MAX).await
    }

    /// The last `max_bytes` (about) of a job's log. The body is read as it
    /// comes and only its end is kept, so a huge log costs bounded memory.
    pub async fn logs_tail(&self, id: &str, max_bytes: usize) -> Result<String> {
        let action = format!("reading the log of Ray job {id}");
        let request = self.request(reqwest::Method::GET, &format!("/api/jobs/{id}/logs"));
        let mut response = self.send(request, &action, &format!("Ray job {id}")).await?;
        // `{"logs": "..."}`: keep the end of the raw body, then decode that.
        let keep = max_bytes.saturating_mul(2).saturating_add(64);
        let mut body: Vec<u8> = Vec::new();
        let mut cut = false;
        while let Some(chunk) = response.chunk().await.map_err(|error| self.unreachable(&action, &error))? {
            body.extend_from_slice(&chunk);
            if body.len() > keep.saturating_mul(2) {
                body.drain(..body.len() - keep);
                cut = true;
            }
        }
        if !cut {
            #[derive(Deserialize)]
            struct Logs {
                logs: String,
            }
            let logs: Logs = serde_json::from_slice(&body).map_err(|error| RayError::Protocol {
                address: self.base.clone(),
                action: action.clone(),
                message: error.to_string(),
            })?;
            return Ok(tail_chars(&logs.logs, max_bytes).to_string());
        }
        Ok(tail_chars(&decode_string_tail(&body), max_bytes).to_string())
    }

    /// `POST /api/jobs/{id}/stop`: asks the job to stop; `false` when it had
    /// ended already.
    pub async fn stop(&self, id: &str) -> Result<bool> {
        let action = format!("stopping Ray job {id}");
        let request = self.request(reqwest::Method::POST, &format!("/api/jobs/{id}/stop"));
        let response = self.send(request, &action, &format!("Ray job {id}")).await?;
        #[derive(Deserialize)]
        struct Stopped {
            stopped: bool,
        }
        Ok(self.json::<Stopped>(response, &action).await?.stopped)
    }

    /// `DELETE /api/jobs/{id}`: forgets an ended job and its log.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let action = format!("deleting Ray job {id}");
        let request = self.request(reqwest::Method::DELETE, &format!("/api/jobs/{id}"));
        let response = self.send(request, &action, &format!("Ray job {id}")).await?;
        #[derive(Deserialize)]
        struct Deleted {
            deleted: bool,
        }
        Ok(self.json::<Deleted>(response, &action).await?.deleted)
    }

    /// `GET /api/packages/gcs/{name}`: whether the cluster holds a package.
    pub async fn package_exists(&self, name: &str) -> Result<bool> {
        let action = format!("looking for package {name}");
        let request = self.request(reqwest::Method::GET, &format!("/api/packages/gcs/{name}"));
        match self.send(request, &action, &format!("package {name}")).await {
            Ok(_) => Ok(true),
            Err(RayError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `PUT /api/packages/gcs/{name}`: uploads a zip package (what a job's
    /// `runtime_env.working_dir` of `gcs://{name}` unpacks).
    pub async fn upload_package(&self, name: &str, zip: Vec<u8>) -> Result<()> {
        let action = format!("uploading package {name} ({} bytes)", zip.len());
        let request = self
            .request(reqwest::Method::PUT, &format!("/api/packages/gcs/{name}"))
            .timeout(self.timeout.max(Duration::from_secs(600)))
            .body(zip);
        self.send(request, &action, &format!("package {name}")).await?;
        Ok(())
    }
}

/// Where the token was found.
enum Found {
    /// In `RAY_AUTH_TOKEN`, or nowhere.
    Token(Option<String>),
    /// In this file.
    File(PathBuf),
}

/// The token, found where Ray looks for it.
fn token_from_env() -> Result<Found> {
    if let Ok(token) = std::env::var("RAY_AUTH_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(Found::Token(Some(token)));
    }
    if let Ok(path) = std::env::var("RAY_AUTH_TOKEN_PATH")
        && !path.is_empty()
    {
        return Ok(Found::File(PathBuf::from(path)));
    }
    let Some(home) = std::env::var_os("HOME") else { return Ok(Found::Token(None)) };
    let path = std::path::Path::new(&home).join(".ray").join("auth_token");
    match std::fs::metadata(&path) {
        Ok(_) => Ok(Found::File(path)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Found::Token(None)),
        Err(error) => Err(RayError::Token { path: path.display().to_string(), message: error.to_string() }),
    }
}

/// The token the file at `path` holds (`None` if it is empty).
fn read_token(path: &Path) -> Result<Option<String>> {
    std::fs::read_to_string(path)
        .map(|token| clean(Some(token)))
        .map_err(|error| RayError::Token { path: path.display().to_string(), message: error.to_string() })
}

/// A token without surrounding white space; none if that leaves nothing.
fn clean(token: Option<String>) -> Option<String> {
    token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Ray's words in an error body: a Python traceback's last line, or the body.
fn ray_message(body: &str) -> String {
    let body = body.trim();
    let message = if body.contains("Traceback (most recent call last)") {
        body.lines().rev().map(str::trim).find(|line| !line.is_empty() && *line != ".").unwrap_or(body)
    } else {
        body
    };
    let message = message.trim_end_matches('.').trim();
    if message.is_empty() { "(no message)".to_string() } else { head_chars(message, MESSAGE_LIMIT).to_string() }
}

fn head_chars(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The last `max` bytes of `text`, cut at a line start when one is near.
pub(crate) fn tail_chars(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    match tail.find('\n') {
        Some(newline) if newline < 200 => &tail[newline + 1..],
        _ => tail,
    }
}

/// Decodes the end of a `{"logs": "..."}` body whose start was dropped:
/// the tail of a JSON string, cut anywhere (even inside an escape).
fn decode_string_tail(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end();
    let text = text.strip_suffix('}').unwrap_or(text).trim_end();
    let text = text.strip_suffix('"').unwrap_or(text);
    // A cut before the string began leaves the key: drop it.
    let text = match text.find("\"logs\"") {
        Some(at) if at < 16 => {
            let rest = &text[at + 6..];
            rest.find('"').map(|quote| &rest[quote + 1..]).unwrap_or(rest)
        }
        _ => text,
    };
    // Skip ahead until what is left is a whole JSON string body.
    for skip in 0..8.min(text.len()) {
        if !text.is_char_boundary(skip) {
            continue;
        }
        if let Ok(decoded) = serde_json::from_str::<String>(&format!("\"{}\"", &text[skip..])) {
            return decoded;
        }
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceback_becomes_its_last_line() {
        let body = "Traceback (most recent call last):\n  File \"x.py\"\nValueError: Job with submission_id t1 already exists.\n.\n";
        assert_eq!(ray_message(body), "ValueError: Job with submission_id t1 already exists");
        assert_eq!(ray_message("Job nope does not exist"), "Job nope does not exist");
    }

    #[test]
    fn a_log_cut_anywhere_still_decodes() {
        let logs = "line one\nline \"two\"\n\tthree\u{e9}\n".repeat(50);
        let body = serde_json::to_vec(&serde_json::json!({ "logs": logs })).unwrap();
        for cut in [1, 7, 100, 333, body.len() - 40] {
            let decoded = decode_string_tail(&body[cut..]);
            assert!(decoded.ends_with("three\u{e9}\n"), "cut at {cut}: {decoded:?}");
            assert!(decoded.len() <= logs.len());
        }
        assert_eq!(tail_chars("abc\ndef", 100), "abc\ndef");
        assert_eq!(tail_chars("abc\ndef\nghi", 6), "ghi");
    }

    #[test]
    fn addresses_are_checked() {
        assert!(matches!(RayClient::new("127.0.0.1:8265"), Err(RayError::InvalidAddress { .. })));
        assert_eq!(RayClient::new("http://127.0.0.1:8265/").unwrap().address(), "http://127.0.0.1:8265");
    }
}
