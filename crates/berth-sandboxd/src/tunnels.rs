//! Tunnels: TCP connections the helper makes to ports on the sandbox's
//! loopback, their bytes carried over the request stream, so that berth
//! reaches a server in a sandbox that has no network berth can reach.
//!
//! Each tunnel has two threads: one dials, replies, then writes what berth
//! sends, taking it from a bounded queue so that a slow socket holds the
//! request reader only once the queue is full (back-pressure: the reader
//! waits, and with it every request, until the socket takes some); one
//! reads the socket and sends its bytes as events, then `TunnelClosed`.
//! The directions end apart (TCP's half-close); a tunnel is forgotten once
//! both have ended, or at once when its socket fails.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use berth_sandbox_wire::{Event, Reply};

use crate::error::Failure;
use crate::output::Outbox;

/// The most tunnels open at once.
pub const MAX_TUNNELS: usize = 64;
/// The most bytes one `TunnelData` event carries.
pub const TUNNEL_CHUNK: usize = 32 * 1024;
/// How many of berth's frames may wait for one tunnel's socket. Frames
/// carry at most `MAX_DATA` (256 KiB), so a tunnel holds at most 4 MiB.
const QUEUE: usize = 16;
/// How long a dial may take, both addresses together.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the request reader hands a tunnel's writer.
enum ToSocket {
    Data(Vec<u8>),
    /// Shut the write half.
    Close,
}

/// The open tunnels, shared by the request reader and each tunnel's threads.
#[derive(Clone)]
pub struct Tunnels {
    table: Arc<Mutex<Table>>,
    outbox: Outbox,
}

impl Tunnels {
    pub fn new(outbox: Outbox) -> Tunnels {
        Tunnels { table: Arc::default(), outbox }
    }

    /// Dials `port` as the tunnel `rid`; the reply (`Done` or the error)
    /// comes from the tunnel's thread, so a slow dial does not hold the
    /// request reader. Data sent before the reply waits in the queue.
    pub fn dial(&self, rid: u64, port: u16) {
        if port == 0 {
            return self.outbox.error(rid, &Failure::invalid("port 0 is not a port to dial"));
        }
        let (to_socket, queue) = sync_channel(QUEUE);
        let serial = match self.lock().open(rid, to_socket) {
            Ok(serial) => serial,
            Err(failure) => return self.outbox.error(rid, &failure),
        };
        let tunnels = self.clone();
        let started =
            thread::Builder::new().name(format!("tunnel-{rid}")).spawn(move || tunnels.run(rid, serial, port, queue));
        if let Err(e) = started {
            self.lock().forget(rid, serial);
            self.outbox.error(rid, &Failure::io("a tunnel's thread", e));
        }
    }

    /// Queues `data` for the socket of tunnel `rid`; waits while its queue is full.
    pub fn data(&self, rid: u64, data: Vec<u8>) {
        let to_socket = self.lock().open.get(&rid).and_then(|t| t.to_socket.clone());
        let sent = to_socket.is_some_and(|to_socket| to_socket.send(ToSocket::Data(data)).is_ok());
        if !sent {
            eprintln!("berth-sandboxd: data for no open tunnel ({rid}) was dropped");
        }
    }

    /// Shuts the write half of tunnel `rid` once its queued data is written.
    pub fn close(&self, rid: u64) {
        let to_socket = self.lock().open.get_mut(&rid).and_then(|t| t.to_socket.take());
        let sent = to_socket.is_some_and(|to_socket| to_socket.send(ToSocket::Close).is_ok());
        if !sent {
            eprintln!("berth-sandboxd: a close for no open tunnel ({rid}) was dropped");
        }
    }

    /// Ends every tunnel both ways: berth, whose ids name them, is gone.
    pub fn close_all(&self) {
        for tunnel in self.lock().open.values_mut() {
            // Its writer finds the queue gone and shuts the socket.
            tunnel.to_socket = None;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tunnel's first thread: dials, replies, starts the reader, then
    /// writes until berth closes.
    fn run(self, rid: u64, serial: u64, port: u16, queue: Receiver<ToSocket>) {
        let socket = connect(port).and_then(|socket| {
            let reader = socket.try_clone().map_err(|e| Failure::io("a tunnel's socket", e))?;
            Ok((socket, reader))
        });
        let (socket, reader) = match socket {
            Ok(both) => both,
            Err(failure) => {
                self.lock().forget(rid, serial);
                return self.outbox.error(rid, &failure);
            }
        };
        // Small writes (keystrokes, a websocket's frames) go out at once.
        let _ = socket.set_nodelay(true);
        self.outbox.reply(rid, Reply::Done);
        let tunnels = self.clone();
        let started = thread::Builder::new()
            .name(format!("tunnel-{rid}-read"))
            .spawn(move || tunnels.read_socket(rid, serial, reader));
        if let Err(e) = started {
            self.lock().forget(rid, serial);
            let _ = socket.shutdown(Shutdown::Both);
            let error = Some(format!("cannot start the tunnel's reader: {e}"));
            return self.outbox.event(Event::TunnelClosed { rid, error }, &[]);
        }
        self.write_socket(rid, serial, socket, &queue);
    }

    /// Writes what berth sends until `TunnelClose` (or the tunnel is gone).
    fn write_socket(&self, rid: u64, serial: u64, mut socket: TcpStream, queue: &Receiver<ToSocket>) {
        let mut failed = false;
        loop {
            match queue.recv() {
                Ok(ToSocket::Data(bytes)) if !failed => {
                    if let Err(e) = socket.write_all(&bytes) {
                        failed = true;
                        self.lock().write_failed(rid, serial, format!("writing to the socket: {e}"));
                        // The reader wakes, reports the error, and the tunnel is forgotten.
                        let _ = socket.shutdown(Shutdown::Both);
                    }
                }
                // Bytes for a socket that failed go nowhere.
                Ok(ToSocket::Data(_)) => {}
                Ok(ToSocket::Close) => {
                    let _ = socket.shutdown(Shutdown::Write);
                    break;
                }
                // Forgotten (its socket failed) or closed with the rest (berth left).
                Err(_) => {
                    let _ = socket.shutdown(Shutdown::Both);
                    break;
                }
            }
        }
        self.lock().write_ended(rid, serial);
    }

    /// Sends what the socket gives until it ends, then `TunnelClosed`.
    fn read_socket(&self, rid: u64, serial: u64, mut socket: TcpStream) {
        let mut buf = vec![0u8; TUNNEL_CHUNK.min(berth_sandbox_wire::MAX_DATA)];
        let read_error = loop {
            match socket.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => self.outbox.event(Event::TunnelData { rid }, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(format!("reading from the socket: {e}")),
            }
        };
        let error = self.lock().read_ended(rid, serial, read_error);
        if error.is_some() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        self.outbox.event(Event::TunnelClosed { rid, error }, &[]);
    }
}

/// The tunnels by the id of their dial.
#[derive(Default)]
struct Table {
    open: HashMap<u64, Tunnel>,
    /// How many tunnels were opened: each one's serial.
    opened: u64,
}

struct Tunnel {
    /// Tells this tunnel from a later one under the same id, so that a
    /// thread of an old one never touches the new one.
    serial: u64,
    /// Where berth's bytes go; none once berth closed the write half.
    to_socket: Option<SyncSender<ToSocket>>,
    read_ended: bool,
    write_ended: bool,
    /// Why writing failed, said in `TunnelClosed`.
    write_error: Option<String>,
}

impl Table {
    /// Opens tunnel `rid`: its serial.
    fn open(&mut self, rid: u64, to_socket: SyncSender<ToSocket>) -> Result<u64, Failure> {
        if self.open.contains_key(&rid) {
            return Err(Failure::invalid(format!("a tunnel under id {rid} is open already")));
        }
        if self.open.len() >= MAX_TUNNELS {
            return Err(Failure::invalid(format!("too many tunnels: {MAX_TUNNELS} are open")));
        }
        self.opened += 1;
        let tunnel = Tunnel {
            serial: self.opened,
            to_socket: Some(to_socket),
            read_ended: false,
            write_ended: false,
            write_error: None,
        };
        self.open.insert(rid, tunnel);
        Ok(self.opened)
    }

    fn get(&mut self, rid: u64, serial: u64) -> Option<&mut Tunnel> {
        self.open.get_mut(&rid).filter(|t| t.serial == serial)
    }

    fn forget(&mut self, rid: u64, serial: u64) {
        if self.get(rid, serial).is_some() {
            self.open.remove(&rid);
        }
    }

    fn write_failed(&mut self, rid: u64, serial: u64, error: String) {
        if let Some(tunnel) = self.get(rid, serial) {
            tunnel.write_error.get_or_insert(error);
        }
    }

    /// The write half is shut; the tunnel is forgotten if the read side
    /// ended too.
    fn write_ended(&mut self, rid: u64, serial: u64) {
        let Some(tunnel) = self.get(rid, serial) else { return };
        tunnel.write_ended = true;
        if tunnel.read_ended {
            self.open.remove(&rid);
        }
    }

    /// The read side ended, with `read_error` if reading failed: the error
    /// `TunnelClosed` says. A failed socket (either way) is forgotten at
    /// once, its writer let go; a clean end waits for the write half.
    fn read_ended(&mut self, rid: u64, serial: u64, read_error: Option<String>) -> Option<String> {
        let Some(tunnel) = self.get(rid, serial) else { return read_error };
        let error = read_error.or_else(|| tunnel.write_error.clone());
        tunnel.read_ended = true;
        if error.is_some() || tunnel.write_ended {
            self.open.remove(&rid);
        }
        error
    }
}

/// Connects to `port` on 127.0.0.1, or on ::1 when 127.0.0.1 refuses.
fn connect(port: u16) -> Result<TcpStream, Failure> {
    let deadline = Instant::now() + DIAL_TIMEOUT;
    match TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), DIAL_TIMEOUT) {
        Ok(socket) => return Ok(socket),
        Err(e) if !is_refused(&e) => return Err(Failure::io(format!("dialing port {port}"), e)),
        Err(_) => {}
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Failure::NothingListens(port));
    }
    TcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), left).map_err(|e| after_refusal(port, e))
}

fn is_refused(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ECONNREFUSED)
}

/// Why a dial of `port` failed, its IPv4 connection refused and its IPv6
/// one failed with `v6`: a sandbox without IPv6 is one where nothing
/// listens on IPv6 either.
fn after_refusal(port: u16, v6: io::Error) -> Failure {
    match v6.raw_os_error() {
        Some(
            libc::ECONNREFUSED | libc::EADDRNOTAVAIL | libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EAFNOSUPPORT,
        ) => Failure::NothingListens(port),
        _ => Failure::io(format!("dialing port {port} on ::1 (127.0.0.1 refused)"), v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_sandbox_wire::ErrorKind;

    fn opened(table: &mut Table, rid: u64) -> (u64, Receiver<ToSocket>) {
        let (to_socket, queue) = sync_channel(QUEUE);
        (table.open(rid, to_socket).expect("opened"), queue)
    }

    #[test]
    fn a_tunnel_past_the_bound_is_too_many() {
        let mut table = Table::default();
        let _queues: Vec<_> = (0..MAX_TUNNELS as u64).map(|rid| opened(&mut table, rid)).collect();
        let (to_socket, _queue) = sync_channel(QUEUE);
        let refused = table.open(999, to_socket).expect_err("over the bound");
        assert_eq!(refused.kind(), ErrorKind::Invalid);
        assert!(refused.to_string().contains("too many tunnels"), "{refused}");
    }

    #[test]
    fn a_dial_under_an_open_tunnels_id_is_invalid() {
        let mut table = Table::default();
        let _open = opened(&mut table, 7);
        let (to_socket, _queue) = sync_channel(QUEUE);
        assert_eq!(table.open(7, to_socket).expect_err("in use").kind(), ErrorKind::Invalid);
    }

    #[test]
    fn a_tunnel_is_forgotten_once_both_directions_ended() {
        let mut table = Table::default();
        let (serial, _queue) = opened(&mut table, 7);
        assert_eq!(table.read_ended(7, serial, None), None);
        assert!(table.open.contains_key(&7), "berth may still write");
        table.write_ended(7, serial);
        assert!(table.open.is_empty());
    }

    #[test]
    fn a_tunnel_whose_write_failed_is_forgotten_when_its_read_ends_and_says_why() {
        let mut table = Table::default();
        let (serial, queue) = opened(&mut table, 7);
        table.write_failed(7, serial, "reset".into());
        assert_eq!(table.read_ended(7, serial, None).as_deref(), Some("reset"));
        assert!(table.open.is_empty());
        assert!(queue.recv().is_err(), "its writer is let go");
    }

    #[test]
    fn a_thread_of_an_old_tunnel_leaves_a_new_one_under_the_same_id_alone() {
        let mut table = Table::default();
        let (old, _old_queue) = opened(&mut table, 7);
        table.forget(7, old);
        let (new, _new_queue) = opened(&mut table, 7);
        table.write_ended(7, old);
        assert_eq!(table.read_ended(7, old, Some("late".into())).as_deref(), Some("late"));
        assert_eq!(table.get(7, new).map(|t| (t.read_ended, t.write_ended)), Some((false, false)));
    }

    #[test]
    fn a_refusal_on_both_addresses_or_no_ipv6_is_nothing_listening() {
        for errno in [libc::ECONNREFUSED, libc::EADDRNOTAVAIL, libc::ENETUNREACH] {
            let failure = after_refusal(8000, io::Error::from_raw_os_error(errno));
            assert_eq!(failure.kind(), ErrorKind::NotFound);
            assert_eq!(failure.to_string(), "nothing listens on port 8000");
        }
        assert_eq!(after_refusal(8000, io::Error::from_raw_os_error(libc::ETIMEDOUT)).kind(), ErrorKind::Io);
    }
}
