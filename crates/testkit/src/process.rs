//! Service binaries as child processes: run one to its exit, or start one and learn its bound
//! addresses from its `<service>.listening` log line.

use std::time::Duration;

/// Runs `command`, which is expected to stop by itself (a start-up refusal, say), with its
/// stdout and stderr captured; kills it after `timeout`. Returns its exit code (`None` when it
/// was killed or ended by a signal) and what it printed, stdout then stderr.
pub fn run_to_exit(
    command: &mut std::process::Command,
    timeout: Duration,
) -> (Option<i32>, String) {
    use std::{io::Read as _, process::Stdio};

    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Read both pipes beside the wait, so that a chatty child never blocks on a full pipe.
    let readers = [
        child
            .stdout
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn std::io::Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let printed = readers
        .into_iter()
        .map(|reader| reader.join().unwrap_or_default())
        .collect();
    (status.and_then(|status| status.code()), printed)
}

/// A service binary run as a child process, for tests that need a real process: a real
/// SIGTERM, a `kill -9`. It learns the bound addresses from the service's `<name>.listening`
/// JSON log line, so the service can be started on port 0.
#[derive(Debug)]
pub struct Process {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    listening: serde_json::Value,
}

impl Process {
    /// Starts `binary` with `args` and `env`, and waits (up to 30 s) for its `listening` line.
    pub async fn start(binary: &str, args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Self> {
        use std::io::BufRead as _;

        let mut command = std::process::Command::new(binary);
        command
            .args(args)
            .env("OTEL_SDK_DISABLED", "true")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (sender, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let listening = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.recv().await {
                let line: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if line["message"]
                    .as_str()
                    .is_some_and(|message| message.ends_with(".listening"))
                {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(listening) = listening else {
            // A process that never got ready must not outlive the test that started it.
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "{binary} never said it was listening"
            )));
        };
        Ok(Self {
            child,
            lines,
            listening,
        })
    }

    /// A bound address from the listening line (`grpc_addr`, `http_addr`, `ops_addr`).
    pub fn addr(&self, field: &str) -> String {
        self.listening["fields"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `KILL`, …) with kill(1).
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("kill -{signal} failed")))
        }
    }

    /// Waits for the process to exit and returns its exit code (`None` if a signal ended it).
    pub async fn wait(mut self) -> std::io::Result<Option<i32>> {
        tokio::task::spawn_blocking(move || self.child.wait().map(|status| status.code()))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Waits up to `timeout` for a log line containing `text`.
    pub async fn logged(&mut self, text: &str, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(text) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
