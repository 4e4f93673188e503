//! The processes under test: the release `order` and `payment` binaries (and this binary's own
//! echo server) started as children on 127.0.0.1, port 0, and the admin calls that set them up.
//!
//! `testkit::Process` does the same for tests, but keeps every log line in memory
//! until it is dropped; a benchmark run logs hundreds of thousands of lines (`order.placed`,
//! `payment.processed`), so here a thread reads the child's stdout, hands over the
//! `*.listening` line and throws the rest away, as a log shipper would read it.

use std::{
    io::BufRead as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// How long a child may take to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the release binaries are: next to this one.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub order: PathBuf,
    pub payment: PathBuf,
    pub loadgen: PathBuf,
    pub bench: PathBuf,
}

impl Binaries {
    /// Finds `order`, `payment` and `loadgen` beside the running executable. Run by `cargo run`
    /// (`cargo` is the path cargo gives in `CARGO`), it first builds them in this binary's
    /// profile, which costs a second when they are fresh.
    pub fn locate(cargo: Option<&Path>) -> anyhow::Result<Self> {
        let bench = std::env::current_exe().context("cannot tell where this binary is")?;
        let dir = bench
            .parent()
            .context("this binary has no parent directory")?
            .to_path_buf();
        if let Some(cargo) = cargo {
            let profile = match dir.file_name().and_then(|name| name.to_str()) {
                Some("debug") => vec![],
                Some("release") => vec!["--release".to_owned()],
                Some(other) => vec!["--profile".to_owned(), other.to_owned()],
                None => bail!("cannot tell this binary's profile from {}", dir.display()),
            };
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "stormproof-order",
                    "-p",
                    "stormproof-payment",
                    "-p",
                    "stormproof-loadgen",
                ])
                .args(profile)
                .status()
                .context("cannot run cargo build")?;
            if !status.success() {
                bail!("building order, payment and loadgen failed: {status}");
            }
        }
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "{} is missing: build the services first, in the same profile \
                     (`cargo build --release -p stormproof-order -p stormproof-payment \
                     -p stormproof-loadgen`, or run \
                     this through `cargo run --release -p stormproof-bench`, which builds them \
                     with the workspace)",
                    path.display()
                )
            }
        };
        Ok(Self {
            order: find("order")?,
            payment: find("payment")?,
            loadgen: find("loadgen")?,
            bench,
        })
    }

    /// The cargo profile these binaries were built in: the name of their directory.
    pub fn profile(&self) -> String {
        self.bench.parent().and_then(Path::file_name).map_or_else(
            || "unknown".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        )
    }

    /// The target directory (`…/target`), for criterion's output.
    pub fn target_dir(&self) -> Option<&Path> {
        self.bench.parent()?.parent()
    }
}

/// Where `tool` is on the `PATH` (`command -v`), if it is.
pub fn which(tool: &str) -> Option<PathBuf> {
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Child,
    listening: Value,
}

impl Service {
    /// Starts `binary` in `dir` with `args` and `env` and waits for its `<name>.listening` log
    /// line.
    pub async fn start(
        name: &str,
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command
            .current_dir(dir)
            .args(args)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("the child has no stdout")?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let early = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = early.clone();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if sender.is_some() {
                    // What it said before it listened: the reason, if it never does.
                    if let Ok(mut kept) = kept.lock() {
                        kept.push(line.clone());
                    }
                    let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
                    let message = parsed["message"].as_str().unwrap_or_default();
                    if message.ends_with(".listening")
                        && let Some(sender) = sender.take()
                    {
                        let _ = sender.send(parsed);
                    }
                }
            }
        });
        let mut service = Self {
            name: name.to_owned(),
            child,
            listening: Value::Null,
        };
        service.listening = tokio::time::timeout(START_TIMEOUT, receiver)
            .await
            .ok()
            .and_then(Result::ok)
            .with_context(|| {
                let said = early
                    .lock()
                    .map(|lines| lines.join("\n"))
                    .unwrap_or_default();
                format!("{name} never said it was listening; it said:\n{said}")
            })?;
        Ok(service)
    }

    /// A bound address from the listening line (`grpc_addr`, `ops_addr`, …).
    pub fn addr(&self, field: &str) -> anyhow::Result<String> {
        self.listening["fields"][field]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{} did not log its {field}", self.name))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("{} exited: {status}", self.name),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident and peak resident memory of a process, in KiB, from `/proc/<pid>/status`.
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The ops API of a service, with its admin token.
#[derive(Debug, Clone)]
pub struct Admin {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    pub fn new(ops_addr: &str, token: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: format!("http://{ops_addr}"),
            token: token.to_owned(),
        }
    }

    /// `PUT <path>` with a JSON body; the answer's JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("PUT {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("PUT {path} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("PUT {path} answered {text}"))
    }

    /// `GET <path>`; the answer's JSON body.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?
            .error_for_status()?;
        Ok(response.json().await?)
    }
}
