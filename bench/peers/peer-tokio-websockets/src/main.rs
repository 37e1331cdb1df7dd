//! Benchmark peer: the `tokio-websockets` server, on tokio.
//!
//! `peer-tokio-websockets echo --listen 127.0.0.1:PORT [--threads N]`
//!
//! `--threads 0` (the default) is tokio's multi-thread runtime with one worker per core;
//! `--threads 1` is the current-thread runtime; N > 1 is a multi-thread runtime with N workers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::Poll;

use futures_util::{Sink, SinkExt, Stream};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{Limits, Message, ServerBuilder};

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
        eprintln!("usage: peer-tokio-websockets echo --listen 127.0.0.1:PORT [--threads N]");
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
                tokio::spawn(echo(stream));
            }
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        }
    }
}

/// Echo every data message (tokio-websockets reassembles fragments and validates UTF-8), the
/// way `StreamExt::forward` moves a stream into a sink (without splitting the socket): each
/// message is queued as it is read, and the queue is flushed once no further message is
/// ready. Pongs and the close reply are queued by the library and flushed when the stream is
/// next polled.
async fn echo(stream: TcpStream) {
    let builder = ServerBuilder::new().limits(Limits::default().max_payload_len(Some(MAX_SIZE)));
    let Ok((_request, mut ws)) = builder.accept(stream).await else {
        return;
    };
    let mut ws = Pin::new(&mut ws);
    let mut queued: Option<Message> = None;
    std::future::poll_fn(|cx| {
        loop {
            if let Some(msg) = queued.take() {
                match ws.as_mut().poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        if ws.as_mut().start_send(msg).is_err() {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {
                        queued = Some(msg);
                        return Poll::Pending;
                    }
                }
            }
            match ws.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    if msg.is_text() || msg.is_binary() {
                        queued = Some(msg);
                    }
                }
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => {
                    return match ws.as_mut().poll_flush(cx) {
                        Poll::Ready(Err(_)) => Poll::Ready(()),
                        _ => Poll::Pending,
                    };
                }
            }
        }
    })
    .await;
    // The stream ended or failed: still deliver the echoes queued before that (and, on a
    // protocol error, the Close the library queued for it).
    let _ = ws.flush().await;
}
