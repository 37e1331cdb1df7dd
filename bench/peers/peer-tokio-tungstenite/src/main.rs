//! Benchmark peer: `tokio` + `tokio-tungstenite`.
//!
//! `peer-tokio-tungstenite echo --listen 127.0.0.1:PORT [--threads N]`
//! `peer-tokio-tungstenite broadcast --listen 127.0.0.1:PORT [--threads N] [--capacity N]`
//!
//! `--threads 0` (the default) is tokio's multi-thread runtime with one worker per core;
//! `--threads 1` is the current-thread runtime; N > 1 is a multi-thread runtime with N workers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::Poll;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

/// Limits on incoming data: the same as `rfc6455 echo` (64 MiB), well above the 16 MiB
/// messages the benchmark sends.
const MAX_SIZE: usize = 64 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    Broadcast,
}

struct Args {
    mode: Mode,
    listen: SocketAddr,
    threads: usize,
    capacity: usize,
}

fn parse_args() -> Option<Args> {
    let mut mode = None;
    let mut listen = None;
    let mut threads = 0;
    let mut capacity = 1 << 16;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "echo" if mode.is_none() => mode = Some(Mode::Echo),
            "broadcast" if mode.is_none() => mode = Some(Mode::Broadcast),
            "--listen" => listen = Some(it.next()?.parse().ok()?),
            "--threads" => threads = it.next()?.parse().ok()?,
            "--capacity" => capacity = it.next()?.parse().ok().filter(|&c| c > 0)?,
            _ => return None,
        }
    }
    Some(Args { mode: mode?, listen: listen?, threads, capacity })
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        eprintln!(
            "usage: peer-tokio-tungstenite echo|broadcast --listen 127.0.0.1:PORT \
             [--threads N] [--capacity N]"
        );
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
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(MAX_SIZE)).max_frame_size(Some(MAX_SIZE))
}

async fn run(args: Args) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listener = TcpListener::bind(args.listen).await?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    // The hub of the broadcast mode: every client task holds a receiver; a text message
    // is sent into it once and each receiver gets a clone sharing the same bytes.
    let (hub, _) = broadcast::channel::<Message>(args.capacity);
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                match args.mode {
                    Mode::Echo => {
                        tokio::spawn(echo(stream));
                    }
                    Mode::Broadcast => {
                        tokio::spawn(chat(stream, hub.clone()));
                    }
                }
            }
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        }
    }
}

/// Echo every data message, the way `StreamExt::forward` moves a stream into a sink (without
/// splitting the socket): each message is queued as it is read, and the queued messages are
/// flushed together once no further message is ready. Pongs and the close reply are queued
/// by tungstenite itself and written on the next read or flush.
async fn echo(stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config())).await
    else {
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
                    if is_data(&msg) {
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

fn is_data(msg: &Message) -> bool {
    matches!(msg, Message::Text(_) | Message::Binary(_))
}

/// One chat client: text messages from it go into the hub; everything from the hub is
/// written to it. A client that falls `capacity` messages behind is closed with 1008
/// rather than silently skipping messages.
async fn chat(stream: TcpStream, hub: broadcast::Sender<Message>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config())).await
    else {
        return;
    };
    let mut rx = hub.subscribe();
    loop {
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(msg @ Message::Text(_))) => {
                    let _ = hub.send(msg);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            out = rx.recv() => {
                let msg = match out {
                    Ok(msg) => msg,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = too_slow(&mut ws).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if ws.feed(msg).await.is_err() {
                    return;
                }
                loop {
                    match rx.try_recv() {
                        Ok(msg) => {
                            if ws.feed(msg).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::TryRecvError::Lagged(_)) => {
                            let _ = too_slow(&mut ws).await;
                            return;
                        }
                        Err(_) => break,
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn too_slow(ws: &mut WebSocketStream<TcpStream>) -> Result<(), Error> {
    let frame = CloseFrame { code: CloseCode::Policy, reason: "too slow".into() };
    ws.close(Some(frame)).await
}
