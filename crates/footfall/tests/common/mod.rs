//! Driving the real binary: offline commands, and `serve` on a free loopback port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_footfall");
pub const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

/// Runs an offline command on `data`; fails the test if it fails; returns its stdout.
pub fn run(args: &[&str], data: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `footfall serve` on `data`, configured by environment, on a free port.
pub fn serve_command(data: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("serve")
        .env("FOOTFALL_DATA_DIR", data)
        .env("FOOTFALL_LISTEN", "127.0.0.1:0")
        .env("FOOTFALL_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped());
    c
}

/// Starts `footfall serve`; returns the process and its base URL, read from the line it
/// prints once it is listening.
pub fn serve(data: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = serve_command(data, env).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("footfall listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, base)
}

/// SIGTERM, then waits: the stop must be graceful (exit status 0).
pub fn term(mut child: Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
}
