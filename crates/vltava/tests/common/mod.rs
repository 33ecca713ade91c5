//! Runs the built `vltava` binary: a server on free loopback ports in a temp dir, and client
//! commands against it. Every process started here is killed when its handle drops.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_vltava");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub metrics_port: u16,
}

impl Server {
    /// `vltava server` with `extra` arguments after the port overrides.
    pub fn start(config: Option<&Path>, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, controller, metrics_port) = (free_port(), free_port(), free_port());
        let mut cmd = Command::new(BIN);
        cmd.arg("server");
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let overrides = [
            format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"),
            format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port}"),
            format!("controller.quorum.voters=1@127.0.0.1:{controller}"),
            format!("log.dirs={}", dir.path().join("data").display()),
            format!("metrics.listener=127.0.0.1:{metrics_port}"),
            "group.initial.rebalance.delay.ms=0".to_string(),
        ];
        for o in &overrides {
            cmd.arg("--override").arg(o);
        }
        cmd.args(extra);
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn vltava server");
        let server = Server {
            child,
            dir,
            port,
            metrics_port,
        };
        server.wait_ready();
        server
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not start:\n{}", self.log());
    }

    /// Runs a client command against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, None)
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("VLTAVA_BOOTSTRAP_SERVER", self.bootstrap())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn vltava");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input).expect("write stdin");
        }
        child.wait_with_output().expect("vltava output")
    }

    /// `GET path` on the metrics endpoint: (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        // The endpoint binds once the broker has started, a little after the Kafka listener.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", self.metrics_port)) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() > deadline => panic!("metrics endpoint: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        (
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `vltava` with no server behind it.
pub fn vltava(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vltava")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, showing stderr if not.
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    o
}

/// The repository root (for deploy/ files).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
