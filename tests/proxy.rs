//! The chat behind a real reverse proxy: Debian's `nginx`, started here on a free loopback port
//! with a configuration and a directory of its own. With `--trust-proxy` the per-address cap
//! counts the client's address from `X-Forwarded-For`; without, every client is the proxy.
//! Without nginx these tests say that they are skipped (and fail under
//! `RFC6455_REQUIRE_PEERS=1`, as in CI).

mod common;

use common::TestServer;
use common::chat::Member;
use common::{Client, upgrade_request};
use rfc6455::chat::{Chat, ChatOptions};
use rfc6455::server::Options;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";

/// An nginx of our own, proxying WebSockets to `backend`.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts one, or `None` (said on stderr) when there is no nginx.
    fn start(test: &str, backend: SocketAddr) -> Option<Nginx> {
        if !std::path::Path::new(NGINX).exists() {
            assert!(
                std::env::var_os("RFC6455_REQUIRE_PEERS").is_none(),
                "RFC6455_REQUIRE_PEERS is set and nginx is missing"
            );
            eprintln!("SKIPPED {test}: no {NGINX} (apt install nginx)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("rfc6455-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        // The WebSocket part is what docs/deploy.md shows; the rest keeps nginx in `dir`.
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n\
             access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
             server {{\nlisten 127.0.0.1:{port};\nlocation / {{\n\
             proxy_pass http://{backend};\nproxy_http_version 1.1;\n\
             proxy_set_header Upgrade $http_upgrade;\n\
             proxy_set_header Connection $connection_upgrade;\nproxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             proxy_read_timeout 1h;\n}}\n}}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "nginx did not listen: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx { child, addr, dir })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A chat allowing two connections per address, trusting 127.0.0.1 as a proxy or not.
fn chat(trust_loopback: bool) -> TestServer<Chat> {
    let mut options = Options::default();
    options.max_connections_per_ip = 2;
    if trust_loopback {
        options.trusted_proxies.push("127.0.0.1".parse().unwrap());
    }
    let mut chat = ChatOptions::default();
    (chat.heartbeat, chat.rate_limit) = (None, None);
    let chats = Chat::group(common::test_loops(), chat, rfc6455::chat::policy());
    TestServer::start_group(options, chats, |chat, handles| chat.attach(handles))
}

/// The status line of a handshake through `proxy` from a client claiming to be `claimed`
/// (nginx appends the address it saw, 127.0.0.1); the connection, if it was upgraded.
fn through(proxy: SocketAddr, claimed: &str) -> (String, Option<Member>) {
    let mut client = Client::unconnected(proxy);
    let request = upgrade_request(&proxy).replacen(
        "\r\n\r\n",
        &format!("\r\nX-Forwarded-For: {claimed}\r\n\r\n"),
        1,
    );
    client.stream.write_all(request.as_bytes()).unwrap();
    let head = client.response_head();
    let status = head.get(..12).unwrap_or(&head).to_owned();
    if status != "HTTP/1.1 101" {
        return (status, None);
    }
    let mut member = Member { client, pings: 0 };
    assert_eq!(member.next()["type"], 4, "the welcome");
    (status, Some(member))
}

#[test]
fn behind_nginx_the_cap_counts_the_forwarded_address_and_the_chat_works() {
    let server = chat(true);
    let Some(nginx) = Nginx::start("behind_nginx", server.addr) else { return };
    let (_, a) = through(nginx.addr, "203.0.113.1");
    let (_, b) = through(nginx.addr, "203.0.113.1");
    let (mut a, mut b) = (a.expect("first from .1"), b.expect("second from .1"));
    // The third from the same client is over the cap of two; another client is not.
    let (status, _) = through(nginx.addr, "203.0.113.1");
    assert_eq!(status, "HTTP/1.1 503");
    let (status, c) = through(nginx.addr, "198.51.100.7");
    assert_eq!(status, "HTTP/1.1 101");
    // The chat works through the proxy.
    a.say("through nginx");
    assert_eq!(b.next_message()["message"], "through nginx");
    assert_eq!(c.unwrap().next_message()["message"], "through nginx");
}

#[test]
fn without_trust_every_client_behind_nginx_is_the_proxy() {
    let server = chat(false);
    let Some(nginx) = Nginx::start("without_trust", server.addr) else { return };
    let (_, a) = through(nginx.addr, "203.0.113.1");
    let (_, b) = through(nginx.addr, "198.51.100.7");
    assert!(a.is_some() && b.is_some());
    // The header is the client's own word: ignored, and the cap counts nginx's address.
    let (status, _) = through(nginx.addr, "192.0.2.99");
    assert_eq!(status, "HTTP/1.1 503");
}
