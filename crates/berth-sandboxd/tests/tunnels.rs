//! Tunnels driven as berth drives them: the helper on the host (so its
//! loopback is the test's), a server of the test's on 127.0.0.1, and the
//! bytes between them carried over the helper's stdio.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use berth_sandbox_wire::{ErrorKind, Event, FromSandbox, Reply, Request};
use common::Sandbox;

/// The most bytes one `TunnelData` event may carry.
const TUNNEL_CHUNK: usize = 32 * 1024;

impl Sandbox {
    /// Opens a tunnel to `port`: its id.
    fn dial(&mut self, port: u16) -> u64 {
        let rid = self.send(Request::Dial { port }, &[]);
        match self.reply_to(rid).0 {
            Reply::Done => rid,
            other => panic!("not dialled: {other:?}"),
        }
    }

    /// What the tunnel `rid` gives until it is closed, and the error it closed with.
    fn tunnel_until_closed(&mut self, rid: u64) -> (Vec<u8>, Option<String>) {
        let mut bytes = Vec::new();
        loop {
            let (message, data) = self.take(|m| match m {
                FromSandbox::Event(Event::TunnelData { rid: r } | Event::TunnelClosed { rid: r, .. }) => *r == rid,
                _ => false,
            });
            match message {
                FromSandbox::Event(Event::TunnelData { .. }) => {
                    assert!(data.len() <= TUNNEL_CHUNK, "a chunk of {} bytes", data.len());
                    bytes.extend_from_slice(&data);
                }
                FromSandbox::Event(Event::TunnelClosed { error, .. }) => return (bytes, error),
                _ => unreachable!(),
            }
        }
    }
}

/// A server on 127.0.0.1 that serves each of its first `connections`
/// with `serve`; its port and what each serving returned.
fn serve<T: Send + 'static>(
    connections: usize,
    serve: impl Fn(TcpStream) -> T + Send + Sync + Clone + 'static,
) -> (u16, JoinHandle<Vec<T>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on the loopback");
    let port = listener.local_addr().expect("its address").port();
    let server = thread::spawn(move || {
        let served: Vec<JoinHandle<T>> = (0..connections)
            .map(|_| {
                let (stream, _) = listener.accept().expect("a connection");
                let serve = serve.clone();
                thread::spawn(move || serve(stream))
            })
            .collect();
        served.into_iter().map(|s| s.join().expect("served")).collect()
    });
    (port, server)
}

/// Reads `stream` until its request's blank line.
fn read_request(stream: &mut TcpStream) -> String {
    let mut request = Vec::new();
    let mut byte = [0u8];
    while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).expect("the request") == 1 {
        request.push(byte[0]);
    }
    String::from_utf8(request).expect("text")
}

/// A port nobody listens on (one just let go).
fn a_free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("its address").port()
}

#[test]
fn an_http_request_through_a_tunnel_gets_the_answer_then_the_close() {
    let mut sandbox = Sandbox::start();
    let (port, server) = serve(1, |mut stream| {
        let request = read_request(&mut stream);
        stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello from the sandbox").expect("answered");
        request
    });
    let rid = sandbox.dial(port);
    sandbox.send_as(rid, Request::TunnelData, b"GET / HTTP/1.0\r\n\r\n");
    let (answer, error) = sandbox.tunnel_until_closed(rid);
    assert_eq!(String::from_utf8_lossy(&answer), "HTTP/1.0 200 OK\r\n\r\nhello from the sandbox");
    assert_eq!(error, None);
    assert_eq!(server.join().expect("the server"), vec!["GET / HTTP/1.0\r\n\r\n".to_string()]);
    sandbox.send_as(rid, Request::TunnelClose, &[]);
}

#[test]
fn a_closed_write_half_reaches_the_server_as_eof_and_its_answer_still_arrives() {
    let mut sandbox = Sandbox::start();
    let (port, _server) = serve(1, |mut stream| {
        let mut request = Vec::new();
        stream.read_to_end(&mut request).expect("read to EOF");
        let answer = format!("got {} bytes after EOF: {}", request.len(), String::from_utf8_lossy(&request));
        stream.write_all(answer.as_bytes()).expect("answered");
    });
    let rid = sandbox.dial(port);
    sandbox.send_as(rid, Request::TunnelData, b"all ");
    sandbox.send_as(rid, Request::TunnelData, b"of it");
    sandbox.send_as(rid, Request::TunnelClose, &[]);
    let (answer, error) = sandbox.tunnel_until_closed(rid);
    assert_eq!(String::from_utf8_lossy(&answer), "got 9 bytes after EOF: all of it");
    assert_eq!(error, None);
}

#[test]
fn dialing_a_port_nobody_listens_on_is_not_found() {
    let mut sandbox = Sandbox::start();
    let port = a_free_port();
    match sandbox.ask(Request::Dial { port }) {
        Reply::Error { kind: ErrorKind::NotFound, message } => {
            assert_eq!(message, format!("nothing listens on port {port}"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_tunnels_at_once_keep_their_bytes_apart() {
    let mut sandbox = Sandbox::start();
    let (port, _server) = serve(2, |mut stream| {
        let mut request = Vec::new();
        stream.read_to_end(&mut request).expect("read to EOF");
        stream.write_all(&request.to_ascii_uppercase()).expect("echoed");
    });
    let one = sandbox.dial(port);
    let two = sandbox.dial(port);
    sandbox.send_as(one, Request::TunnelData, b"first ");
    sandbox.send_as(two, Request::TunnelData, b"second ");
    sandbox.send_as(one, Request::TunnelData, b"one");
    sandbox.send_as(two, Request::TunnelData, b"two");
    sandbox.send_as(two, Request::TunnelClose, &[]);
    sandbox.send_as(one, Request::TunnelClose, &[]);
    assert_eq!(sandbox.tunnel_until_closed(two).0, b"SECOND TWO");
    assert_eq!(sandbox.tunnel_until_closed(one).0, b"FIRST ONE");
}

#[test]
fn a_mebibyte_crosses_a_tunnel_both_ways_at_once_intact() {
    let mut sandbox = Sandbox::start();
    let to_server: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 + i / 1000) as u8).collect();
    let to_berth: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 13 + i / 777) as u8).collect();
    let answer = to_berth.clone();
    let (port, server) = serve(1, move |mut stream| {
        let mut writer = stream.try_clone().expect("a second handle");
        let answer = answer.clone();
        let writing = thread::spawn(move || {
            writer.write_all(&answer).expect("sent");
            writer.shutdown(Shutdown::Write).expect("closed");
        });
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("read to EOF");
        writing.join().expect("written");
        got
    });
    let rid = sandbox.dial(port);
    for part in to_server.chunks(64 * 1024) {
        sandbox.send_as(rid, Request::TunnelData, part);
    }
    sandbox.send_as(rid, Request::TunnelClose, &[]);
    let (got, error) = sandbox.tunnel_until_closed(rid);
    assert_eq!(error, None);
    assert!(got == to_berth, "berth got {} bytes, not the server's", got.len());
    let server_got = server.join().expect("the server").remove(0);
    assert!(server_got == to_server, "the server got {} bytes, not berth's", server_got.len());
}

#[test]
fn bytes_for_a_tunnel_that_is_not_open_are_dropped_and_requests_go_on() {
    let mut sandbox = Sandbox::start();
    sandbox.send_as(999, Request::TunnelData, b"for nobody");
    sandbox.send_as(999, Request::TunnelClose, &[]);
    assert!(matches!(sandbox.ask(Request::Hello), Reply::Hello { .. }));
}

#[test]
fn a_tunnel_past_the_bound_is_refused_until_one_is_closed() {
    let mut sandbox = Sandbox::start();
    let (accepted, streams) = std::sync::mpsc::channel();
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("its address").port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            if accepted.send(stream.expect("a connection")).is_err() {
                return;
            }
        }
    });
    let tunnels: Vec<u64> = (0..64).map(|_| sandbox.dial(port)).collect();
    match sandbox.ask(Request::Dial { port }) {
        Reply::Error { kind: ErrorKind::Invalid, message } => {
            assert!(message.contains("too many tunnels"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // The first tunnel ends both ways: berth closes, then the server does.
    sandbox.send_as(tunnels[0], Request::TunnelClose, &[]);
    let mut first = streams.recv_timeout(common::WAIT).expect("the first connection");
    assert_eq!(first.read(&mut [0u8; 1]).expect("EOF"), 0);
    drop(first);
    assert_eq!(sandbox.tunnel_until_closed(tunnels[0]), (Vec::new(), None));
    // Forgetting it is the last thing its threads do: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match sandbox.ask(Request::Dial { port }) {
            Reply::Done => break,
            Reply::Error { kind: ErrorKind::Invalid, .. } if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_connection_the_server_resets_closes_the_tunnel_with_the_error() {
    let mut sandbox = Sandbox::start();
    let (port, _server) = serve(1, |mut stream| {
        use std::os::fd::AsRawFd;
        // Reset once the tunnel is up (its first byte came), not while it dials.
        stream.read_exact(&mut [0u8; 1]).expect("a byte");
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt reads one linger from a live socket's fd.
        let set = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "SO_LINGER set");
        // Closed with a zero linger: a reset, not a FIN.
        drop(stream);
    });
    let rid = sandbox.dial(port);
    sandbox.send_as(rid, Request::TunnelData, b"x");
    let (bytes, error) = sandbox.tunnel_until_closed(rid);
    assert!(bytes.is_empty());
    let error = error.expect("the reset is said");
    assert!(error.contains("reset"), "{error}");
    // Forgotten already: a close for it is dropped.
    sandbox.send_as(rid, Request::TunnelClose, &[]);
    assert!(matches!(sandbox.ask(Request::Hello), Reply::Hello { .. }));
}
