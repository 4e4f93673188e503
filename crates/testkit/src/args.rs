//! One spelling of order's and payment's command lines for every harness: each service on
//! 127.0.0.1, every port 0 (the service logs what it bound), its store where the test says.

/// A service's command line (without the program name), built up flag by flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceArgs(Vec<String>);

impl ServiceArgs {
    /// Order on 127.0.0.1 (gRPC, HTTP and ops on port 0), calling `payment_url`, its orders in
    /// `database_url`.
    pub fn order(payment_url: &str, database_url: &str) -> Self {
        Self::on_loopback(&["--grpc-addr", "--http-addr", "--ops-addr"])
            .flag("--payment-url", payment_url)
            .flag("--database-url", database_url)
    }

    /// Payment on 127.0.0.1 (gRPC and ops on port 0), its ledger in `database_url`.
    pub fn payment(database_url: &str) -> Self {
        Self::on_loopback(&["--grpc-addr", "--ops-addr"]).flag("--database-url", database_url)
    }

    fn on_loopback(listeners: &[&str]) -> Self {
        listeners.iter().fold(Self(Vec::new()), |args, listener| {
            args.flag(listener, "127.0.0.1:0")
        })
    }

    /// Adds `name value`.
    #[must_use]
    pub fn flag(mut self, name: &str, value: &str) -> Self {
        self.0.extend([name.to_owned(), value.to_owned()]);
        self
    }

    /// Adds `extra` (flags and their values, in order). A flag already on the line takes
    /// the value that follows it in `extra` instead of being given twice, which clap refuses:
    /// a test's `--database-url` replaces the default one.
    #[must_use]
    pub fn extend<S: AsRef<str>>(mut self, extra: &[S]) -> Self {
        let mut extra = extra.iter().map(AsRef::as_ref);
        while let Some(arg) = extra.next() {
            let present = arg.starts_with("--") && arg.len() > 2;
            match self.0.iter().position(|given| present && given == arg) {
                Some(at) if at + 1 < self.0.len() => {
                    if let Some(value) = extra.next() {
                        self.0[at + 1] = value.to_owned();
                    }
                }
                _ => self.0.push(arg.to_owned()),
            }
        }
        self
    }

    /// Whether `name` is on the command line already.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|arg| arg == name)
    }

    /// The arguments, for [`Process::start`](crate::Process::start).
    pub fn as_strs(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }

    /// `program` and the arguments, for a clap `Config::try_parse_from`.
    pub fn argv<'a>(&'a self, program: &'a str) -> Vec<&'a str> {
        std::iter::once(program).chain(self.as_strs()).collect()
    }
}

/// `sqlite://<file>`: a SQLite store at `file` (in a test's temporary folder, say).
pub fn sqlite_url(file: &std::path::Path) -> String {
    format!("sqlite://{}", file.display())
}

/// A port free on 127.0.0.1 now, for the processes that cannot report the port they bound
/// (Prometheus, Alertmanager); ours all bind port 0 and say what they got.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listener_is_on_loopback_port_zero_and_flags_follow_in_order() {
        let order =
            ServiceArgs::order("http://127.0.0.1:9", "sqlite://o.db").extend(&["--limit-max", "5"]);
        assert_eq!(
            order.argv("order"),
            [
                "order",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--ops-addr",
                "127.0.0.1:0",
                "--payment-url",
                "http://127.0.0.1:9",
                "--database-url",
                "sqlite://o.db",
                "--limit-max",
                "5"
            ]
        );
        let payment = ServiceArgs::payment("sqlite://p.db");
        assert!(payment.has("--ops-addr") && !payment.has("--http-addr"));
        assert_eq!(payment.as_strs().len(), 6);
    }

    #[test]
    fn a_flag_given_again_replaces_its_value() {
        let order = ServiceArgs::order("http://a", "sqlite://default.db").extend(&[
            "--database-url",
            "postgres://db/x",
            "--quiet",
            "--payment-url",
            "http://b",
            "--limit-min",
            "127.0.0.1:0",
        ]);
        assert_eq!(
            order.as_strs()[..6],
            ServiceArgs::order("", "").as_strs()[..6]
        );
        assert_eq!(
            order.as_strs()[6..],
            [
                "--payment-url",
                "http://b",
                "--database-url",
                "postgres://db/x",
                "--quiet",
                "--limit-min",
                "127.0.0.1:0"
            ]
        );
    }
}
