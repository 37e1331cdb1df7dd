//! Benchmark peer: `fastwebsockets` behind a `hyper` 1 HTTP/1.1 server (its `upgrade`
//! feature), on tokio.
//!
//! `peer-fastwebsockets echo --listen 127.0.0.1:PORT [--threads N]`
//!
//! `--threads 0` (the default) is tokio's multi-thread runtime with one worker per core;
//! `--threads 1` is the current-thread runtime; N > 1 is a multi-thread runtime with N workers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use fastwebsockets::upgrade::{self, UpgradeFut};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Limit on incoming messages: the same as `rfc6455 echo` (64 MiB), well above the 16 MiB
/// messages the benchmark sends.
const MAX_SIZE: usize = 64 << 20;

struct Args {
    listen: SocketAddr,
    threads: usize,
}

fn parse_args() -> Option<Args> {
    let mut echo = false;
    let mut listen = None;
    let mut threads = 0;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "echo" if !echo => echo = true,
            "--listen" => listen = Some(it.next()?.parse().ok()?),
            "--threads" => threads = it.next()?.parse().ok()?,
            _ => return None,
        }
    }
    echo.then_some(())?;
    Some(Args { listen: listen?, threads })
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        eprintln!("usage: peer-fastwebsockets echo --listen 127.0.0.1:PORT [--threads N]");
        return ExitCode::from(2);
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if args.threads > 1 {
            b.worker_threads(args.threads);
        }
        b.enable_all().build()
    };
    let runtime = runtime.expect("tokio runtime");
    match runtime.block_on(run(args.listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(addr: SocketAddr) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listener = TcpListener::bind(addr).await?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(request))
                        .with_upgrades()
                        .await;
                });
            }
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        }
    }
}

/// Any path: a valid WebSocket upgrade gets 101 and an echo task, anything else 400.
async fn request(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    if !upgrade::is_upgrade_request(&req) {
        return Ok(bad_request());
    }
    match upgrade::upgrade(&mut req) {
        Ok((response, upgraded)) => {
            tokio::spawn(async move {
                let _ = echo(upgraded).await;
            });
            Ok(response)
        }
        Err(_) => Ok(bad_request()),
    }
}

fn bad_request() -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// Echo every data message. fastwebsockets unmasks, answers pings and replies to a Close
/// itself (its defaults, kept on); the FragmentCollector reassembles fragmented messages
/// and validates UTF-8 across fragments.
async fn echo(upgraded: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = upgraded.await?;
    ws.set_max_message_size(MAX_SIZE);
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    ws.set_auto_apply_mask(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            OpCode::Close => return Ok(()),
            _ => {}
        }
    }
}
