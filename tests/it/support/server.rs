//! The HTTP plumbing every fake shares: a listener on 127.0.0.1, a thread with its own actix
//! System (so any runtime, or none, can drive the fake), the server handle and a bounded stop.
//! A fake keeps its own state and routes and hands them over as a `configure` function; one that
//! must drop a connection without answering (as Remnawave does) starts with
//! [`FakeServer::start_droppable`] and calls [`drop_connection`].
//! Self-contained: `benches/` include this file by path next to the fakes.

// Each includer (the test binary, a bench) uses a different subset of this API.
#![allow(dead_code)]

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpServer, web};

/// How long a stop may take before the fake gives up waiting for its thread.
const STOP_WITHIN: Duration = Duration::from_secs(5);

type Configure = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A running HTTP server on 127.0.0.1 (random port); stops, bounded, when dropped.
pub struct FakeServer {
    name: String,
    addr: SocketAddr,
    configure: Configure,
    droppable: bool,
    running: Mutex<Option<Running>>,
}

struct Running {
    handle: ServerHandle,
    thread: JoinHandle<()>,
}

impl FakeServer {
    /// Binds 127.0.0.1 on a random port and returns once the server is listening. `name` names
    /// the thread and the messages (`"fake-marzban"`); `configure` adds the fake's app data and
    /// services to the app of each worker.
    pub fn start(
        name: &str,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> FakeServer {
        Self::start_with(name, configure, false)
    }

    /// Like [`FakeServer::start`], and each request can reach its connection's socket, so that
    /// the fake can close it without an answer ([`drop_connection`]).
    pub fn start_droppable(
        name: &str,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> FakeServer {
        Self::start_with(name, configure, true)
    }

    fn start_with(
        name: &str,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
        droppable: bool,
    ) -> FakeServer {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind the {name}: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the {name} address: {e}"));
        let configure: Configure = Arc::new(configure);
        let running = run(name, listener, Arc::clone(&configure), droppable);
        FakeServer {
            name: name.to_owned(),
            addr,
            configure,
            droppable,
            running: Mutex::new(Some(running)),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listening socket and every open connection (answers in flight are dropped):
    /// from now on a connection to the port is refused, as when the service's process is down,
    /// until [`FakeServer::listen_again`]. The fake's state is kept.
    pub fn stop_listening(&self) {
        if let Some(running) = self.running().take() {
            let name = &self.name;
            assert!(
                stop(running),
                "the {name} did not stop within {STOP_WITHIN:?}"
            );
        }
    }

    /// Listens again on the same port, with the same state, after [`FakeServer::stop_listening`].
    pub fn listen_again(&self) {
        let mut running = self.running();
        if running.is_none() {
            let name = &self.name;
            // std sets SO_REUSEADDR: connections of the stopped server in TIME_WAIT do not
            // keep the port.
            let listener = TcpListener::bind(self.addr)
                .unwrap_or_else(|e| panic!("bind the {name} again on {}: {e}", self.addr));
            *running = Some(run(
                name,
                listener,
                Arc::clone(&self.configure),
                self.droppable,
            ));
        }
    }

    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(running) = self.running().take() {
            // Bounded: a fake that does not stop must not hang the test that is over.
            stop(running);
        }
    }
}

/// A second handle on a connection's socket (a duplicated descriptor), kept in the connection's
/// data of a droppable fake.
#[derive(Clone)]
struct Socket(Arc<TcpStream>);

/// Closes the connection `req` came on, both ways, so that no answer reaches the client (it sees
/// the connection closed); whether the fake could (it must be started droppable).
pub fn drop_connection(req: &HttpRequest) -> bool {
    req.conn_data::<Socket>()
        .is_some_and(|socket| socket.0.shutdown(Shutdown::Both).is_ok())
}

/// Serves `listener` on a new thread with its own actix System; returns once it listens.
fn run(name: &str, listener: TcpListener, configure: Configure, droppable: bool) -> Running {
    let (handle_tx, handle_rx) = mpsc::channel();
    let thread_name = name.to_owned();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let system = actix_rt::System::new();
            let result = system.block_on(async move {
                let server = HttpServer::new(move || {
                    let configure = Arc::clone(&configure);
                    App::new().configure(move |config| configure(config))
                });
                let server = if droppable {
                    server.on_connect(|connection, data| {
                        let socket = connection
                            .downcast_ref::<actix_web::rt::net::TcpStream>()
                            .and_then(|tcp| tcp.as_fd().try_clone_to_owned().ok());
                        if let Some(fd) = socket {
                            data.insert(Socket(Arc::new(TcpStream::from(fd))));
                        }
                    })
                } else {
                    server
                };
                let server = server
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .listen(listener)?
                    .run();
                let _ = handle_tx.send(server.handle());
                server.await
            });
            if let Err(e) = result {
                eprintln!("the {thread_name} stopped with an error: {e}");
            }
        })
        .unwrap_or_else(|e| panic!("spawn the {name} thread: {e}"));
    let handle = handle_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("the {name} did not start"));
    Running { handle, thread }
}

/// Stops the server at once and waits (bounded) for its thread; whether it ended.
fn stop(running: Running) -> bool {
    // Not graceful: a parked or delayed answer must not hold the stop up. The stop command is
    // sent eagerly; the returned future only reports completion.
    std::mem::drop(running.handle.stop(false));
    join_within(running.thread, STOP_WITHIN)
}

/// Waits up to `within` for `thread` to end (joining it if it did); whether it ended. For the
/// fakes that run their own loop on a thread (SMTP) and must not hang a test that is over.
pub fn join_within(thread: JoinHandle<()>, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let finished = thread.is_finished();
    if finished {
        let _ = thread.join();
    }
    finished
}

/// A path segment or form value as sent: `%XX` decoded (an incomplete or invalid escape kept as
/// written), the bytes read as UTF-8 (lossily).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
