//! Shared by the Wasm integration tests: locating (building once) the test guests, a runtime
//! per test binary, a minimal HTTP/1.1 client, and instance configs writing to a temp log.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::Digest;
use skiff_node_runtime::logs::{read_log, ContainerLog, LogOptions, DEFAULT_MAX_LOG_BYTES};
use skiff_node_runtime::wasm::{InstanceConfig, LoadedComponent, WasmConfig, WasmRuntime};

/// The directory holding the guests: `SKIFF_TEST_GUESTS_DIR`, or the build script's output
/// (built on first use if a guest is missing).
pub fn guests_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    static BUILD: Mutex<()> = Mutex::new(());
    DIR.get_or_init(|| {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("SKIFF_TEST_GUESTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("../target/wasm/wasm32-wasip2/release"));
        let names = [
            "hello_wasm",
            "wasm-job",
            "fail-exit",
            "trap",
            "spin",
            "hog",
            "env-reader",
            "sleeper",
        ];
        if names
            .iter()
            .any(|n| !dir.join(format!("{n}.wasm")).exists())
        {
            let _guard = BUILD.lock().unwrap();
            let status = std::process::Command::new("bash")
                .arg(manifest.join("../scripts/build-guests.sh"))
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run scripts/build-guests.sh");
            assert!(status.success(), "scripts/build-guests.sh failed");
        }
        dir
    })
    .clone()
}

pub fn guest(name: &str) -> PathBuf {
    guests_dir().join(format!("{name}.wasm"))
}

/// `sha256:<hex>` of a file (the tests use the component file's own digest).
pub fn digest_of(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read guest");
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// One runtime per test binary, its compile cache in cargo's per-target test directory so that
/// each guest is compiled once across test binaries and runs (the cache tests use their own
/// directories). Not tied to a tokio runtime, so every `#[tokio::test]` can use it.
pub fn runtime() -> &'static WasmRuntime {
    static RT: OnceLock<WasmRuntime> = OnceLock::new();
    RT.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skiff-wasm-cache");
        WasmRuntime::new(WasmConfig::new(dir)).expect("wasm runtime")
    })
}

pub async fn load(name: &str) -> Arc<LoadedComponent> {
    let path = guest(name);
    runtime()
        .load(&digest_of(&path), &path)
        .await
        .expect("load guest")
}

/// An instance config logging to `<dir>/0.log`.
pub fn instance(dir: &Path, args: &[&str]) -> InstanceConfig {
    InstanceConfig {
        env: Vec::new(),
        args: args.iter().map(|a| a.to_string()).collect(),
        preopens: Vec::new(),
        working_dir: None,
        memory_limit_bytes: None,
        cpu_limit_millis: None,
        deadline: None,
        log: ContainerLog::open(dir.join("0.log"), DEFAULT_MAX_LOG_BYTES).expect("open log"),
        egress: None,
        usage: Default::default(),
    }
}

pub fn log_text(dir: &Path) -> String {
    String::from_utf8(read_log(&dir.join("0.log"), &LogOptions::default()).expect("read log"))
        .expect("utf-8 log")
}

/// A response read by [`HttpClient`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// A minimal HTTP/1.1 client on one keep-alive connection (responses need `content-length`).
pub struct HttpClient {
    reader: BufReader<TcpStream>,
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        HttpClient {
            reader: BufReader::new(stream),
        }
    }

    pub fn get(&mut self, path: &str) -> HttpResponse {
        let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send request");
        let mut status_line = String::new();
        self.reader
            .read_line(&mut status_line)
            .expect("status line");
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content-length");
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        HttpResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// Blocking HTTP calls from async tests.
pub async fn get_once(addr: SocketAddr, path: &str) -> HttpResponse {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || HttpClient::connect(addr).get(&path))
        .await
        .unwrap()
}
