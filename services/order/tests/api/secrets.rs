//! Secrets stay out of the logs. The real `order` and `payment` binaries run with an admin
//! token and database URLs that carry passwords; everything they print, stdout and stderr,
//! debug level included, is captured and searched for the secrets.

use std::{
    io::BufRead as _,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};

const ORDER: &str = env!("CARGO_BIN_EXE_order");
const TOKEN: &str = "tok-5f0c1e9a-never-logged";
const PASSWORD: &str = "pw-8b27d4-never-logged";

/// The payment binary, built beside order's by a workspace build.
fn payment_binary() -> String {
    let binary = std::path::Path::new(ORDER).with_file_name("payment");
    assert!(
        binary.exists(),
        "{} is missing: build the workspace (cargo nextest run --workspace builds it)",
        binary.display()
    );
    binary.display().to_string()
}

/// A binary whose stdout and stderr are both captured, line by line.
struct Captured {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Captured {
    fn start(name: &'static str, binary: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OTEL_SDK_DISABLED", "true")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child
            .stdout
            .take()
            .map(|out| Box::new(out) as Box<dyn std::io::Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|err| Box::new(err) as Box<dyn std::io::Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Ok(mut lines) = lines.lock() {
                        lines.push(line);
                    }
                }
            });
        }
        Self { name, child, lines }
    }

    fn output(&self) -> String {
        self.lines
            .lock()
            .map(|lines| lines.join("\n"))
            .unwrap_or_default()
    }

    /// Waits for the `<name>.listening` line and returns its bound `field` address.
    async fn listening(&self, field: &str) -> String {
        let message = format!("{}.listening", self.name);
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let found = self.lines.lock().ok().and_then(|lines| {
                    lines.iter().find_map(|line| {
                        let line: Value = serde_json::from_str(line).ok()?;
                        (line["message"] == message.as_str())
                            .then(|| line["fields"][field].as_str().map(str::to_owned))
                            .flatten()
                    })
                });
                if let Some(addr) = found {
                    return addr;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} never listened: {}", self.name, self.output()))
    }

    /// SIGTERM, then waits for the exit (the drain logs too).
    async fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.wait().await
    }

    /// Waits up to 30 s for the process to exit on its own; returns everything it printed.
    async fn wait(&mut self) -> String {
        let exited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if exited.is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The reader threads finish once the pipes close.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.output()
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_no_secret(output: &str, what: &str) {
    assert!(!output.is_empty(), "{what} printed something");
    for secret in [TOKEN, PASSWORD] {
        assert!(
            !output.contains(secret),
            "{what} printed a secret:\n{}",
            output
                .lines()
                .filter(|line| line.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_never_reaches_the_logs_through_traffic_and_refused_admin_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let payment_db = format!("sqlite://{}/payment.db", dir.path().display());
    let order_db = format!("sqlite://{}/order.db", dir.path().display());
    let payment = Captured::start(
        "payment",
        &payment_binary(),
        &[
            ("PAYMENT_GRPC_ADDR", "127.0.0.1:0"),
            ("PAYMENT_OPS_ADDR", "127.0.0.1:0"),
            ("PAYMENT_DATABASE_URL", &payment_db),
            ("ADMIN_TOKEN", TOKEN),
        ],
    );
    let payment_url = format!("http://{}", payment.listening("grpc_addr").await);
    let payment_ops = payment.listening("ops_addr").await;
    let order = Captured::start(
        "order",
        ORDER,
        &[
            ("ORDER_GRPC_ADDR", "127.0.0.1:0"),
            ("ORDER_HTTP_ADDR", "127.0.0.1:0"),
            ("ORDER_OPS_ADDR", "127.0.0.1:0"),
            ("DATABASE_URL", &order_db),
            ("PAYMENT_URL", &payment_url),
            ("ADMIN_TOKEN", TOKEN),
        ],
    );
    let (http_addr, ops_addr) = (
        order.listening("http_addr").await,
        order.listening("ops_addr").await,
    );

    let http = reqwest::Client::new();
    let place = || async {
        http.post(format!("http://{http_addr}/v1/orders"))
            .json(&json!({ "customer_id": "cust-secret", "lines": [{ "sku": "CAP-RED", "quantity": 1 }] }))
            .send()
            .await
            .expect("answered")
            .status()
            .as_u16()
    };
    assert_eq!(place().await, 201);

    // Refused admin calls: a wrong token, the right one in the wrong scheme, and a header
    // that is only the token.
    let breaker = format!("http://{ops_addr}/admin/breaker");
    let faults = format!("http://{payment_ops}/admin/faults");
    for url in [&breaker, &faults] {
        for authorization in [
            format!("Bearer {TOKEN}-wrong"),
            format!("Basic {TOKEN}"),
            TOKEN.to_owned(),
        ] {
            let status = http
                .put(url)
                .header("authorization", authorization)
                .json(&json!({ "state": "forced_open", "outage": true }))
                .send()
                .await
                .expect("answered")
                .status();
            assert_eq!(status, 401, "{url}");
        }
    }

    // Accepted admin calls: payment down, an order falls back, payment healed; the breaker
    // forced open and closed again (order logs the override).
    let put = |url: &str, body: Value| http.put(url).bearer_auth(TOKEN).json(&body).send();
    assert_eq!(
        put(&faults, json!({ "outage": true }))
            .await
            .expect("answered")
            .status(),
        200
    );
    assert_eq!(place().await, 202);
    assert_eq!(
        put(&faults, json!({})).await.expect("answered").status(),
        200
    );
    for state in ["forced_open", "closed"] {
        let status = put(&breaker, json!({ "state": state }))
            .await
            .expect("answered")
            .status();
        assert_eq!(status, 200);
    }
    assert_eq!(place().await, 201);

    let order_output = order.stop().await;
    let payment_output = payment.stop().await;
    assert!(
        order_output.contains("breaker.overridden"),
        "{order_output}"
    );
    assert_no_secret(&order_output, "order");
    assert_no_secret(&payment_output, "payment");
}

/// A PostgreSQL server that refuses every login as a real one does with a wrong password
/// (SQLSTATE 28P01), so a start-up fails at once instead of retrying a refused connection for
/// sqlx's 30 s acquire timeout. It speaks just enough of the protocol: it declines TLS, reads
/// the startup message and answers with an ErrorResponse.
async fn refusing_postgres() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let Ok(length) = socket.read_i32().await else {
                        return;
                    };
                    let mut body = vec![0; usize::try_from(length - 4).unwrap_or(0)];
                    if socket.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    if body.starts_with(&80_877_103_i32.to_be_bytes()) {
                        let _ = socket.write_all(b"N").await; // SSLRequest: no TLS here
                        continue;
                    }
                    let mut fields = Vec::new();
                    for (code, value) in [
                        (b'S', "FATAL"),
                        (b'V', "FATAL"),
                        (b'C', "28P01"),
                        (b'M', "password authentication failed"),
                    ] {
                        fields.push(code);
                        fields.extend_from_slice(value.as_bytes());
                        fields.push(0);
                    }
                    fields.push(0);
                    let mut message = vec![b'E'];
                    let length = i32::try_from(fields.len() + 4).unwrap_or(i32::MAX);
                    message.extend_from_slice(&length.to_be_bytes());
                    message.extend_from_slice(&fields);
                    let _ = socket.write_all(&message).await;
                    return;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_password_never_reaches_the_logs_when_the_database_refuses_the_login() {
    let postgres = refusing_postgres().await;
    let cases: [(&'static str, String, &str); 4] = [
        (
            "order",
            ORDER.to_owned(),
            "postgres://order:{pw}@{addr}/orders",
        ),
        (
            "payment",
            payment_binary(),
            "postgres://payment:{pw}@{addr}/ledger",
        ),
        // Not a supported database at all: refused while the URL is read.
        (
            "order",
            ORDER.to_owned(),
            "mysql://order:{pw}@{addr}/orders",
        ),
        (
            "payment",
            payment_binary(),
            "mysql://payment:{pw}@{addr}/ledger",
        ),
    ];
    for (name, binary, url) in cases {
        let url = url
            .replace("{pw}", PASSWORD)
            .replace("{addr}", &postgres.to_string());
        let variable = if name == "order" {
            "DATABASE_URL"
        } else {
            "PAYMENT_DATABASE_URL"
        };
        let mut process = Captured::start(
            name,
            &binary,
            &[
                ("ORDER_GRPC_ADDR", "127.0.0.1:0"),
                ("ORDER_HTTP_ADDR", "127.0.0.1:0"),
                ("ORDER_OPS_ADDR", "127.0.0.1:0"),
                ("PAYMENT_GRPC_ADDR", "127.0.0.1:0"),
                ("PAYMENT_OPS_ADDR", "127.0.0.1:0"),
                (variable, &url),
                ("ADMIN_TOKEN", TOKEN),
            ],
        );
        let output = process.wait().await;
        let code = process
            .child
            .try_wait()
            .ok()
            .flatten()
            .and_then(|status| status.code());
        assert!(
            matches!(code, Some(code) if code != 0),
            "{name} with {url} must not start (exit {code:?}): {output}"
        );
        assert_no_secret(&output, name);
    }
}
