//! A real Prometheus and Alertmanager, started with the repository's `prometheus/` configs, and
//! a small client of their HTTP APIs.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{repo, tool};

/// A child process killed on drop, its output in a log file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(program: &Path, args: &[String], log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|error| panic!("{} does not start: {error}", program.display()));
        Self { child, log }
    }

    /// The last lines of its log, for a failure message.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(http: &reqwest::Client, url: &str, daemon: &Daemon) {
    for _ in 0..150 {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} never became ready; log:\n{}", daemon.tail());
}

/// Alertmanager with `prometheus/alertmanager.yml`, clustering off.
pub struct Alertmanager {
    pub url: String,
    http: reqwest::Client,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = testkit::free_port();
        let program = tool(&["alertmanager", "prometheus-alertmanager"]);
        let args = [
            format!(
                "--config.file={}",
                repo().join("prometheus/alertmanager.yml").display()
            ),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_owned(),
        ];
        let daemon = Daemon::spawn(&program, &args, dir.path().join("alertmanager.log"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_ready(&http, &format!("{url}/-/ready"), &daemon).await;
        Self {
            url,
            http,
            _daemon: daemon,
            _dir: dir,
        }
    }

    /// The alerts Alertmanager holds (`/api/v2/alerts`).
    pub async fn alerts(&self) -> Vec<Value> {
        get_json(&self.http, &format!("{}/api/v2/alerts", self.url), &[])
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Prometheus with a copy of `prometheus/` (the real `prometheus.yml` and rules), its scrape
/// and rule intervals shortened to 1 s and its target files pointing at the given addresses.
pub struct Prometheus {
    pub url: String,
    http: reqwest::Client,
    config_dir: PathBuf,
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// `targets`: job name → `host:port`, written to `targets/<job>.yml`; the other jobs of
    /// `prometheus/targets/` get an empty target list.
    pub async fn start(targets: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_dir = dir.path().join("prometheus");
        std::fs::create_dir_all(config_dir.join("rules")).expect("rules dir");
        std::fs::create_dir_all(config_dir.join("targets")).expect("targets dir");
        let source = repo().join("prometheus");
        let config =
            std::fs::read_to_string(source.join("prometheus.yml")).expect("prometheus.yml");
        let fast = [
            ("  scrape_interval: 5s", "  scrape_interval: 1s"),
            ("  scrape_timeout: 4s", "  scrape_timeout: 1s"),
            ("  evaluation_interval: 5s", "  evaluation_interval: 1s"),
        ]
        .iter()
        .fold(config, |config, (from, to)| {
            assert!(
                config.contains(from),
                "prometheus.yml has no `{from}` line to shorten"
            );
            config.replace(from, to)
        });
        std::fs::write(config_dir.join("prometheus.yml"), fast).expect("write config");
        for entry in std::fs::read_dir(source.join("rules")).expect("rules") {
            let path = entry.expect("rule file").path();
            std::fs::copy(
                &path,
                config_dir
                    .join("rules")
                    .join(path.file_name().expect("name")),
            )
            .expect("copy rules");
        }
        let prometheus = {
            let port = testkit::free_port();
            let args = [
                format!(
                    "--config.file={}",
                    config_dir.join("prometheus.yml").display()
                ),
                format!("--storage.tsdb.path={}", dir.path().join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ];
            let daemon = Daemon::spawn(
                &tool(&["prometheus"]),
                &args,
                dir.path().join("prometheus.log"),
            );
            Self {
                url: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::new(),
                config_dir,
                daemon,
                _dir: dir,
            }
        };
        // Every target file the config names exists; the jobs not given have no target.
        for entry in std::fs::read_dir(source.join("targets")).expect("targets") {
            let name = entry.expect("target file").file_name();
            std::fs::write(prometheus.config_dir.join("targets").join(name), "[]\n")
                .expect("write targets");
        }
        for (job, address) in targets {
            prometheus.set_target(job, address);
        }
        wait_ready(
            &prometheus.http,
            &format!("{}/-/ready", prometheus.url),
            &prometheus.daemon,
        )
        .await;
        prometheus
    }

    /// Points `job` at `address` (Prometheus re-reads target files when they change).
    pub fn set_target(&self, job: &str, address: &str) {
        let path = self.config_dir.join("targets").join(format!("{job}.yml"));
        std::fs::write(&path, format!("- targets: ['{address}']\n")).expect("write targets");
    }

    /// Prometheus' log, for a failure message.
    pub fn log_tail(&self) -> String {
        self.daemon.tail()
    }

    /// An instant query: the result vector, or Prometheus' error.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let body = get_json(
            &self.http,
            &format!("{}/api/v1/query", self.url),
            &[("query", expr)],
        )
        .await;
        if body["status"] != "success" {
            return Err(body["error"].as_str().unwrap_or("no error text").to_owned());
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The label sets of the series `selector` matched over the last hour.
    pub async fn series(&self, selector: &str) -> Vec<serde_json::Map<String, Value>> {
        let start = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|now| now.as_secs().saturating_sub(3600))
                .unwrap_or_default()
        );
        let body = get_json(
            &self.http,
            &format!("{}/api/v1/series", self.url),
            &[("match[]", selector), ("start", &start)],
        )
        .await;
        body["data"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .filter_map(|labels| labels.as_object().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `/api/v1/rules`: every rule group as loaded.
    pub async fn rule_groups(&self) -> Vec<Value> {
        get_json(&self.http, &format!("{}/api/v1/rules", self.url), &[]).await["data"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `/api/v1/alerts`: the alerts pending or firing now.
    pub async fn alerts(&self) -> Vec<Value> {
        get_json(&self.http, &format!("{}/api/v1/alerts", self.url), &[]).await["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `/api/v1/targets`: the active targets.
    pub async fn targets(&self) -> Vec<Value> {
        get_json(&self.http, &format!("{}/api/v1/targets", self.url), &[]).await["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

async fn get_json(http: &reqwest::Client, url: &str, query: &[(&str, &str)]) -> Value {
    let response = http
        .get(url)
        .query(query)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    response
        .json()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"))
}
