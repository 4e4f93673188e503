//! `probe http://127.0.0.1:9464/readyz`: the health check of Stormproof's container images.
//!
//! The images are distroless (no shell, no curl), so compose.yaml's `healthcheck` runs this:
//! one HTTP/1.1 GET over plain TCP, exit 0 if the answer is 2xx, 1 otherwise (with the reason on
//! stderr), 64 for a bad command line. Kubernetes probes the ports itself and does not need it.

use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs as _},
    process::ExitCode,
    time::Duration,
};

const TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(url), None) = (args.next(), args.next()) else {
        eprintln!("usage: probe http://HOST:PORT/PATH");
        return ExitCode::from(64);
    };
    let Some((authority, path)) = url.strip_prefix("http://").map(|rest| {
        rest.split_once('/')
            .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")))
    }) else {
        eprintln!("probe: {url:?} is not an http:// URL");
        return ExitCode::from(64);
    };
    match get(authority, &path) {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("probe: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("probe: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The status code of `GET path` on `authority`.
fn get(authority: &str, path: &str) -> std::io::Result<u16> {
    let address = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0_u8; 32];
    let read = stream.read(&mut head)?;
    // "HTTP/1.1 200 OK": the status is the second word of the first line.
    std::str::from_utf8(&head[..read])
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}
