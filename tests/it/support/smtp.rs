//! A fake SMTP submission server for tests and benches: plain-text ESMTP (no TLS) with AUTH
//! PLAIN/LOGIN, a recorder that decodes the small MIME subset lettre emits, and fault injection
//! (rejected DATA, outages). It serves from its own thread and tokio runtime, so any runtime (or
//! none) can drive it. `benches/` include this file by path, next to `server.rs`
//! (its bounded stop).

// Each includer (a test binary, a bench) uses a different subset of this API.
#![allow(dead_code)]

use std::io;
use std::net::TcpListener as StdTcpListener;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::server::join_within;

pub const SMTP_USER: &str = "mailer";
pub const SMTP_PASSWORD: &str = "mail-password";

/// Name in the greeting and the EHLO reply.
const SERVER_NAME: &str = "fake-smtp.test";
/// Longest command line (AUTH responses included), CRLF included.
const MAX_COMMAND_LINE: usize = 16 * 1024;
/// Largest message accepted by DATA, also advertised as `SIZE`.
const MAX_MESSAGE_BYTES: usize = 32 << 20;
const MAX_RECIPIENTS: usize = 100;
/// Multipart nesting deeper than this is not searched for text parts.
const MAX_MIME_DEPTH: usize = 8;

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Mail {
    /// Envelope sender (`MAIL FROM`), empty for the null sender `<>`.
    pub from: String,
    /// Envelope recipients (`RCPT TO`) in the order given, Bcc included.
    pub to: Vec<String>,
    /// The DATA as sent, dot-unstuffed, without the terminating `CRLF.CRLF` (for lettre: exactly
    /// `Message::formatted()`).
    pub raw: String,
    /// Decoded `Subject` (RFC 2047 encoded-words), empty when absent.
    pub subject: String,
    /// First `text/plain` part (or the body of a message without MIME), transfer encoding undone,
    /// line breaks as `\n`.
    pub text: Option<String>,
    /// First `text/html` part, as `text`.
    pub html: Option<String>,
    /// Top-level headers in order: unfolded, encoded-words decoded, value trimmed.
    pub headers: Vec<(String, String)>,
}

impl Mail {
    /// Parses a message as the server does when it accepts one. Also usable without a server, on
    /// `lettre::Message::formatted()`.
    pub fn parse(from: &str, to: &[String], raw: &str) -> Mail {
        let (head, body) = split_head_body(raw);
        let raw_headers = parse_headers(head);
        let mut parts = TextParts::default();
        collect_text_parts(&raw_headers, body, &mut parts, 0);
        let headers: Vec<(String, String)> = raw_headers
            .iter()
            .map(|(name, value)| (name.clone(), decode_encoded_words(value)))
            .collect();
        let subject = find_header(&headers, "subject")
            .unwrap_or_default()
            .to_owned();
        Mail {
            from: from.to_owned(),
            to: to.to_vec(),
            raw: raw.to_owned(),
            subject,
            text: parts.text,
            html: parts.html,
            headers,
        }
    }

    /// First header with this name (case-insensitive), decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The running fake server; stops (bounded) when dropped, closing every connection.
pub struct FakeSmtp {
    shared: Arc<Shared>,
    port: u16,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSmtp {
    /// Binds 127.0.0.1 on a random port; mail is accepted only after AUTH as
    /// `SMTP_USER`/`SMTP_PASSWORD`.
    pub fn start() -> FakeSmtp {
        Self::start_with(Some((SMTP_USER.to_owned(), SMTP_PASSWORD.to_owned())))
    }

    /// Like `start`, for a relay without authentication: AUTH is not advertised (answered 502)
    /// and MAIL needs no login.
    pub fn start_without_auth() -> FakeSmtp {
        Self::start_with(None)
    }

    fn start_with(credentials: Option<(String, String)>) -> FakeSmtp {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind the fake SMTP server");
        let port = listener.local_addr().expect("fake SMTP address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking fake SMTP listener");
        let shared = Arc::new(Shared {
            credentials,
            state: Mutex::new(State::default()),
        });
        let (shutdown, shutdown_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-smtp".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake SMTP runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("fake SMTP listener");
                    let _ = ready_tx.send(());
                    accept_connections(listener, thread_shared, shutdown_rx).await;
                });
                // Dropping the runtime cancels the sessions, which closes their sockets.
            })
            .expect("spawn the fake SMTP thread");
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the fake SMTP server did not start");
        FakeSmtp {
            shared,
            port,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://mailer:mail-password@127.0.0.1:PORT?tls=none` (the shop's `SMTP_URL` format; lettre's
    /// own `from_url` does not know `tls=none`).
    pub fn url(&self) -> String {
        format!(
            "smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}?tls=none",
            self.port
        )
    }

    /// Accepted messages in the order they were accepted.
    pub fn messages(&self) -> Vec<Mail> {
        self.shared.lock().messages.clone()
    }

    pub fn clear(&self) {
        self.shared.lock().messages.clear();
    }

    /// The next `n` DATA transactions end with `code` (4xx temporary, 5xx permanent) instead of 250,
    /// and nothing is recorded. 421 also closes the connection, as a real server does.
    pub fn reject_next(&self, n: usize, code: u16) {
        assert!(
            (400..600).contains(&code),
            "reject_next takes a 4xx or 5xx code, not {code}"
        );
        self.shared.lock().reject_next = (n, code);
    }

    /// While down, new connections get `421` and are closed at once, and open sessions get `421` at
    /// their next command and are closed: a mail server outage.
    pub fn set_down(&self, down: bool) {
        self.shared.lock().down = down;
    }

    /// TCP connections accepted so far, those answered 421 while down included.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Bounded: a session that does not end must not hang the test that is over.
            join_within(thread, Duration::from_secs(5));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server

struct Shared {
    /// `(username, password)`; `None`: no AUTH, mail from anyone.
    credentials: Option<(String, String)>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    messages: Vec<Mail>,
    /// (remaining, code).
    reject_next: (usize, u16),
    down: bool,
    connections: usize,
    queued: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test must not take every later session down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_down(&self) -> bool {
        self.lock().down
    }
}

async fn accept_connections(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.lock().connections += 1;
                    tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

const OUTAGE_REPLY: &str = "421 4.3.2 Service not available, closing transmission channel";

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Replies to pipelined commands are separate small writes; Nagle would delay them.
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut session = Session {
        shared,
        reader: BufReader::new(read),
        writer: write,
        greeting: Greeting::None,
        authenticated: false,
        transaction: None,
    };
    let _ = session.run().await;
    let _ = session.writer.shutdown().await;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Greeting {
    None,
    Helo,
    Ehlo,
}

/// A mail transaction between MAIL and the end of DATA (or RSET).
struct Transaction {
    from: String,
    to: Vec<String>,
    smtputf8: bool,
}

enum Flow {
    Continue,
    Close,
}

struct Session {
    shared: Arc<Shared>,
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: OwnedWriteHalf,
    greeting: Greeting,
    authenticated: bool,
    transaction: Option<Transaction>,
}

impl Session {
    async fn run(&mut self) -> io::Result<()> {
        if self.shared.is_down() {
            return self.reply(OUTAGE_REPLY).await;
        }
        self.reply(&format!("220 {SERVER_NAME} ESMTP fake ready"))
            .await?;
        loop {
            let line = match read_line(&mut self.reader, MAX_COMMAND_LINE).await? {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    self.reply("500 5.5.2 Line too long").await?;
                    continue;
                }
                Line::Text(line) => line,
            };
            if self.shared.is_down() {
                return self.reply(OUTAGE_REPLY).await;
            }
            let Ok(line) = std::str::from_utf8(trim_line_end(&line)) else {
                self.reply("500 5.5.2 Syntax error: command is not UTF-8")
                    .await?;
                continue;
            };
            let line = line.to_owned();
            if let Flow::Close = self.command(&line).await? {
                return Ok(());
            }
        }
    }

    async fn command(&mut self, line: &str) -> io::Result<Flow> {
        let (verb, args) = match line.split_once(' ') {
            Some((verb, args)) => (verb, args.trim()),
            None => (line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.hello(args, Greeting::Ehlo).await,
            "HELO" => self.hello(args, Greeting::Helo).await,
            "AUTH" => self.auth(args).await,
            "MAIL" => self.mail(args).await,
            "RCPT" => self.rcpt(args).await,
            "DATA" => self.data(args).await,
            "RSET" if !args.is_empty() => self.reply_on("501 5.5.4 Syntax: RSET").await,
            "RSET" => {
                self.transaction = None;
                self.reply_on("250 2.0.0 Ok").await
            }
            "NOOP" => self.reply_on("250 2.0.0 Ok").await,
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                Ok(Flow::Close)
            }
            "STARTTLS" | "VRFY" | "EXPN" | "HELP" | "TURN" | "ETRN" | "BDAT" => {
                self.reply_on("502 5.5.1 Command not implemented").await
            }
            _ => self.reply_on("500 5.5.2 Command unrecognized").await,
        }
    }

    async fn hello(&mut self, args: &str, kind: Greeting) -> io::Result<Flow> {
        if args.is_empty() {
            let verb = if kind == Greeting::Ehlo {
                "EHLO"
            } else {
                "HELO"
            };
            return self
                .reply_on(&format!("501 5.5.4 Syntax: {verb} hostname"))
                .await;
        }
        // A new EHLO/HELO aborts the transaction (RFC 5321 4.1.4); the login stays.
        self.greeting = kind;
        self.transaction = None;
        if kind == Greeting::Helo {
            return self.reply_on(&format!("250 {SERVER_NAME}")).await;
        }
        let mut lines = vec![
            format!("{SERVER_NAME} Hello {args}"),
            "PIPELINING".to_owned(),
            format!("SIZE {MAX_MESSAGE_BYTES}"),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
        ];
        if self.shared.credentials.is_some() {
            lines.push("AUTH PLAIN LOGIN".to_owned());
        }
        let last = lines.len() - 1;
        let reply: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("250{}{line}", if i == last { ' ' } else { '-' }))
            .collect();
        self.reply_on(&reply.join("\r\n")).await
    }

    async fn auth(&mut self, args: &str) -> io::Result<Flow> {
        if self.greeting != Greeting::Ehlo {
            return self.reply_on("503 5.5.1 Send EHLO first").await;
        }
        let Some((user, password)) = self.shared.credentials.clone() else {
            return self.reply_on("502 5.5.1 AUTH not supported").await;
        };
        if self.authenticated {
            return self.reply_on("503 5.5.1 Already authenticated").await;
        }
        if self.transaction.is_some() {
            return self
                .reply_on("503 5.5.1 AUTH not permitted during a mail transaction")
                .await;
        }
        let words: Vec<&str> = args.split_whitespace().collect();
        let (mechanism, initial) = match words.as_slice() {
            [mechanism] => (mechanism.to_ascii_uppercase(), None),
            [mechanism, initial] => (mechanism.to_ascii_uppercase(), Some(*initial)),
            _ => {
                return self
                    .reply_on("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
                    .await;
            }
        };
        let given = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    // "=" is an empty initial response (RFC 4954).
                    Some("=") => Vec::new(),
                    Some(initial) => match base64_decode(initial) {
                        Some(bytes) => bytes,
                        None => return self.reply_on(CANNOT_DECODE).await,
                    },
                    None => match self.challenge("334 ").await? {
                        Challenge::Answer(bytes) => bytes,
                        Challenge::Failed(flow) => return Ok(flow),
                    },
                };
                let fields: Vec<&[u8]> = response.split(|b| *b == 0).collect();
                match fields.as_slice() {
                    [authzid, authcid, secret] if authzid.is_empty() || authzid == authcid => {
                        (authcid.to_vec(), secret.to_vec())
                    }
                    [_, _, _] => (Vec::new(), Vec::new()),
                    _ => {
                        return self.reply_on("501 5.5.2 Malformed PLAIN response").await;
                    }
                }
            }
            "LOGIN" => {
                let login = match initial {
                    Some(initial) => match base64_decode(initial) {
                        Some(bytes) => bytes,
                        None => return self.reply_on(CANNOT_DECODE).await,
                    },
                    // "Username:"
                    None => match self.challenge("334 VXNlcm5hbWU6").await? {
                        Challenge::Answer(bytes) => bytes,
                        Challenge::Failed(flow) => return Ok(flow),
                    },
                };
                // "Password:"
                let secret = match self.challenge("334 UGFzc3dvcmQ6").await? {
                    Challenge::Answer(bytes) => bytes,
                    Challenge::Failed(flow) => return Ok(flow),
                };
                (login, secret)
            }
            _ => {
                return self
                    .reply_on("504 5.5.4 Unrecognized authentication mechanism")
                    .await;
            }
        };
        if given.0 == user.as_bytes() && given.1 == password.as_bytes() {
            self.authenticated = true;
            self.reply_on("235 2.7.0 Authentication successful").await
        } else {
            self.reply_on("535 5.7.8 Authentication credentials invalid")
                .await
        }
    }

    /// Sends a 334 challenge and reads the client's base64 answer.
    async fn challenge(&mut self, prompt: &str) -> io::Result<Challenge> {
        self.reply(prompt).await?;
        let line = match read_line(&mut self.reader, MAX_COMMAND_LINE).await? {
            Line::Eof => return Ok(Challenge::Failed(Flow::Close)),
            Line::TooLong => {
                let flow = self
                    .reply_on("500 5.5.6 Authentication exchange line is too long")
                    .await?;
                return Ok(Challenge::Failed(flow));
            }
            Line::Text(line) => line,
        };
        let answer = trim_line_end(&line);
        if answer == b"*" {
            let flow = self.reply_on("501 5.0.0 Authentication cancelled").await?;
            return Ok(Challenge::Failed(flow));
        }
        match std::str::from_utf8(answer).ok().and_then(base64_decode) {
            Some(bytes) => Ok(Challenge::Answer(bytes)),
            None => Ok(Challenge::Failed(self.reply_on(CANNOT_DECODE).await?)),
        }
    }

    async fn mail(&mut self, args: &str) -> io::Result<Flow> {
        if self.greeting == Greeting::None {
            return self.reply_on("503 5.5.1 Send EHLO/HELO first").await;
        }
        if self.shared.credentials.is_some() && !self.authenticated {
            return self.reply_on("530 5.7.0 Authentication required").await;
        }
        if self.transaction.is_some() {
            return self.reply_on("503 5.5.1 Nested MAIL command").await;
        }
        let Some((from, params)) = parse_path(args, "FROM:") else {
            return self.reply_on("501 5.5.4 Syntax: MAIL FROM:<address>").await;
        };
        if self.greeting == Greeting::Helo && !params.is_empty() {
            return self.reply_on("555 5.5.4 ESMTP parameters need EHLO").await;
        }
        let mut smtputf8 = false;
        for param in &params {
            let (key, value) = match param.split_once('=') {
                Some((key, value)) => (key.to_ascii_uppercase(), Some(value)),
                None => (param.to_ascii_uppercase(), None),
            };
            match (key.as_str(), value) {
                ("SMTPUTF8", None) => smtputf8 = true,
                ("BODY", Some(body))
                    if body.eq_ignore_ascii_case("7BIT")
                        || body.eq_ignore_ascii_case("8BITMIME") => {}
                ("SIZE", Some(size)) => match size.parse::<u64>() {
                    Ok(size) if size > MAX_MESSAGE_BYTES as u64 => {
                        return self
                            .reply_on("552 5.3.4 Message size exceeds fixed limit")
                            .await;
                    }
                    Ok(_) => {}
                    Err(_) => return self.reply_on("501 5.5.4 Bad SIZE parameter").await,
                },
                ("AUTH", Some(_)) => {}
                _ => {
                    return self
                        .reply_on(&format!("555 5.5.4 Unsupported parameter {param}"))
                        .await;
                }
            }
        }
        if !from.is_ascii() && !smtputf8 {
            return self
                .reply_on("553 5.6.7 Non-ASCII address needs SMTPUTF8")
                .await;
        }
        self.transaction = Some(Transaction {
            from,
            to: Vec::new(),
            smtputf8,
        });
        self.reply_on("250 2.1.0 Ok").await
    }

    async fn rcpt(&mut self, args: &str) -> io::Result<Flow> {
        let Some(transaction) = &self.transaction else {
            return self.reply_on("503 5.5.1 Need MAIL command").await;
        };
        let Some((to, params)) = parse_path(args, "TO:") else {
            return self.reply_on("501 5.5.4 Syntax: RCPT TO:<address>").await;
        };
        if let Some(param) = params.first() {
            return self
                .reply_on(&format!("555 5.5.4 Unsupported parameter {param}"))
                .await;
        }
        if !to.contains('@') && !to.eq_ignore_ascii_case("postmaster") {
            return self
                .reply_on("501 5.1.3 Bad recipient address syntax")
                .await;
        }
        if !to.is_ascii() && !transaction.smtputf8 {
            return self
                .reply_on("553 5.6.7 Non-ASCII address needs SMTPUTF8")
                .await;
        }
        if transaction.to.len() >= MAX_RECIPIENTS {
            return self.reply_on("452 4.5.3 Too many recipients").await;
        }
        if let Some(transaction) = &mut self.transaction {
            transaction.to.push(to);
        }
        self.reply_on("250 2.1.5 Ok").await
    }

    async fn data(&mut self, args: &str) -> io::Result<Flow> {
        if !args.is_empty() {
            return self.reply_on("501 5.5.4 Syntax: DATA").await;
        }
        match &self.transaction {
            None => return self.reply_on("503 5.5.1 Need MAIL command").await,
            Some(transaction) if transaction.to.is_empty() => {
                return self.reply_on("503 5.5.1 Need RCPT command").await;
            }
            Some(_) => {}
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
        let mut data = Vec::new();
        let mut too_big = false;
        loop {
            let line = match read_line(&mut self.reader, MAX_MESSAGE_BYTES + 3).await? {
                // The client went away mid-message: nothing is delivered.
                Line::Eof => return Ok(Flow::Close),
                Line::TooLong => {
                    too_big = true;
                    continue;
                }
                Line::Text(line) => line,
            };
            if trim_line_end(&line) == b"." {
                break;
            }
            let content = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() + content.len() > MAX_MESSAGE_BYTES + 2 {
                too_big = true;
            } else {
                data.extend_from_slice(content);
            }
        }
        // The line break before the final dot belongs to the terminator.
        if data.ends_with(b"\r\n") {
            data.truncate(data.len() - 2);
        } else if data.ends_with(b"\n") {
            data.truncate(data.len() - 1);
        }
        let Some(transaction) = self.transaction.take() else {
            return Ok(Flow::Continue);
        };
        if too_big {
            return self
                .reply_on("552 5.3.4 Message size exceeds fixed limit")
                .await;
        }
        let mail = Mail::parse(
            &transaction.from,
            &transaction.to,
            &String::from_utf8_lossy(&data),
        );
        let outcome = {
            let mut state = self.shared.lock();
            if state.down {
                Err(421)
            } else if state.reject_next.0 > 0 {
                state.reject_next.0 -= 1;
                Err(state.reject_next.1)
            } else {
                state.messages.push(mail);
                state.queued += 1;
                Ok(state.queued)
            }
        };
        match outcome {
            Ok(id) => {
                self.reply_on(&format!("250 2.0.0 Ok: queued as {id:08X}"))
                    .await
            }
            Err(421) => {
                self.reply(OUTAGE_REPLY).await?;
                Ok(Flow::Close)
            }
            Err(code) => {
                let class = code / 100;
                self.reply_on(&format!(
                    "{code} {class}.0.0 Message rejected (fake reject_next)"
                ))
                .await
            }
        }
    }

    async fn reply(&mut self, text: &str) -> io::Result<()> {
        self.writer
            .write_all(format!("{text}\r\n").as_bytes())
            .await
    }

    async fn reply_on(&mut self, text: &str) -> io::Result<Flow> {
        self.reply(text).await?;
        Ok(Flow::Continue)
    }
}

const CANNOT_DECODE: &str = "501 5.5.2 Cannot decode response";

enum Challenge {
    Answer(Vec<u8>),
    /// Already answered; the session goes on (or ends) with this.
    Failed(Flow),
}

enum Line {
    /// With its line break.
    Text(Vec<u8>),
    /// Longer than the limit; consumed up to and including its line break.
    TooLong,
    /// The peer closed (a partial last line is dropped).
    Eof,
}

async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, limit: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(Line::Eof);
        }
        let (taken, complete) = match buffer.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buffer.len(), false),
        };
        if !too_long {
            if line.len() + taken > limit {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(&buffer[..taken]);
            }
        }
        reader.consume(taken);
        if complete {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Text(line)
            });
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `FROM:<a@b> PARAM…` (keyword case-insensitive, a space after the colon tolerated) → the address
/// (source route dropped) and the parameters.
fn parse_path(args: &str, keyword: &str) -> Option<(String, Vec<String>)> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args[keyword.len()..].trim_start().strip_prefix('<')?;
    let (path, params) = rest.split_once('>')?;
    if path.contains(char::is_whitespace) {
        return None;
    }
    let address = match path.split_once(':') {
        Some((route, address)) if route.starts_with('@') => address,
        _ => path,
    };
    if params.starts_with(|c: char| !c.is_whitespace()) {
        return None;
    }
    let params = params.split_whitespace().map(str::to_owned).collect();
    Some((address.to_owned(), params))
}

// ---------------------------------------------------------------------------------------------
// MIME: the subset lettre emits

#[derive(Default)]
struct TextParts {
    text: Option<String>,
    html: Option<String>,
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Headers end at the first empty line; without one, everything is header.
fn split_head_body(entity: &str) -> (&str, &str) {
    let mut pos = 0;
    while pos < entity.len() {
        let end = entity[pos..]
            .find('\n')
            .map_or(entity.len(), |i| pos + i + 1);
        let line = &entity[pos..end];
        if line == "\r\n" || line == "\n" {
            return (&entity[..pos], &entity[end..]);
        }
        pos = end;
    }
    (entity, "")
}

/// Unfolded (RFC 5322 2.2.3: the line break goes, the whitespace stays), values trimmed.
fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    for (_, value) in &mut headers {
        *value = value.trim().to_owned();
    }
    headers
}

fn collect_text_parts(
    headers: &[(String, String)],
    body: &str,
    parts: &mut TextParts,
    depth: usize,
) {
    let is_attachment = find_header(headers, "content-disposition").is_some_and(|d| {
        d.trim_start()
            .to_ascii_lowercase()
            .starts_with("attachment")
    });
    if is_attachment {
        return;
    }
    let (media_type, params) =
        parse_content_type(find_header(headers, "content-type").unwrap_or("text/plain"));
    if media_type.starts_with("multipart/") {
        let boundary = params
            .iter()
            .find(|(name, _)| name == "boundary")
            .map(|(_, value)| value.as_str());
        if let Some(boundary) = boundary.filter(|_| depth < MAX_MIME_DEPTH) {
            for part in split_multipart(body, boundary) {
                let (head, part_body) = split_head_body(part);
                collect_text_parts(&parse_headers(head), part_body, parts, depth + 1);
            }
        }
        return;
    }
    let slot = match media_type.as_str() {
        "text/plain" => &mut parts.text,
        "text/html" => &mut parts.html,
        _ => return,
    };
    if slot.is_none() {
        let encoding = find_header(headers, "content-transfer-encoding").unwrap_or("7bit");
        *slot = Some(decode_transfer_encoding(body, encoding).replace("\r\n", "\n"));
    }
}

/// `type/subtype; name=value; name="quoted value"` → lowercase type, lowercase names.
fn parse_content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut fields = Vec::new();
    let (mut field, mut quoted, mut escaped) = (String::new(), false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                field.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    let media_type = fields[0].trim().to_ascii_lowercase();
    let params = fields[1..]
        .iter()
        .filter_map(|field| field.split_once('='))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (media_type, params)
}

/// The bodies between `--boundary` lines, up to `--boundary--` (or the end). The line break before
/// a delimiter belongs to the delimiter.
fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let next = body[pos..].find('\n').map_or(body.len(), |i| pos + i + 1);
        let line = body[pos..next].trim_end_matches(['\r', '\n']);
        if let Some(rest) = line.strip_prefix(&delimiter) {
            let closing = rest.starts_with("--");
            if closing || rest.trim().is_empty() {
                if let Some(start) = start {
                    let part = &body[start..pos];
                    let part = part.strip_suffix('\n').unwrap_or(part);
                    parts.push(part.strip_suffix('\r').unwrap_or(part));
                }
                if closing {
                    return parts;
                }
                start = Some(next);
            }
        }
        pos = next;
    }
    if let Some(start) = start {
        parts.push(&body[start.min(body.len())..]);
    }
    parts
}

fn decode_transfer_encoding(body: &str, encoding: &str) -> String {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "base64" => {
            let bytes = base64_decode(body).unwrap_or_else(|| body.as_bytes().to_vec());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        "quoted-printable" => String::from_utf8_lossy(&quoted_printable_decode(body)).into_owned(),
        _ => body.to_owned(),
    }
}

/// RFC 2045 6.7: `=XX` bytes, `=` at the end of a line joins it with the next, trailing whitespace
/// is dropped; hard line breaks come out as `\r\n`.
fn quoted_printable_decode(body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_end_matches([' ', '\t']);
        let (line, soft_break) = match line.strip_suffix('=') {
            Some(line) => (line, true),
            None => (line, false),
        };
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1..i + 3).and_then(hex_byte)) {
                (b'=', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        if !soft_break && lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Decodes RFC 2047 encoded-words (`=?charset?B|Q?text?=`); whitespace between two adjacent
/// encoded-words is dropped, and their bytes are joined before decoding, so a UTF-8 character split
/// across two words survives. Anything malformed stays as it is.
fn decode_encoded_words(value: &str) -> String {
    enum Piece<'a> {
        Text(&'a str),
        Word { charset: String, bytes: Vec<u8> },
    }
    let mut pieces = Vec::new();
    let mut rest = value;
    while let Some((start, end, charset, bytes)) = next_encoded_word(rest) {
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        pieces.push(Piece::Word { charset, bytes });
        rest = &rest[end..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }

    let mut out = String::with_capacity(value.len());
    let mut pending: Option<(String, Vec<u8>)> = None;
    let flush = |pending: &mut Option<(String, Vec<u8>)>, out: &mut String| {
        if let Some((charset, bytes)) = pending.take() {
            out.push_str(&decode_charset(&charset, &bytes));
        }
    };
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Text(text) => {
                let between_words = i > 0
                    && matches!(pieces[i - 1], Piece::Word { .. })
                    && matches!(pieces.get(i + 1), Some(Piece::Word { .. }))
                    && text.chars().all(char::is_whitespace);
                if !between_words {
                    flush(&mut pending, &mut out);
                    out.push_str(text);
                }
            }
            Piece::Word { charset, bytes } => match &mut pending {
                Some((pending_charset, pending_bytes)) if pending_charset == charset => {
                    pending_bytes.extend_from_slice(bytes);
                }
                _ => {
                    flush(&mut pending, &mut out);
                    pending = Some((charset.clone(), bytes.clone()));
                }
            },
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// The first well-formed encoded-word: (start, end, charset, decoded bytes).
fn next_encoded_word(text: &str) -> Option<(usize, usize, String, Vec<u8>)> {
    let mut from = 0;
    while let Some(offset) = text[from..].find("=?") {
        let start = from + offset;
        if let Some((len, charset, bytes)) = parse_encoded_word(&text[start..]) {
            return Some((start, start + len, charset, bytes));
        }
        from = start + 2;
    }
    None
}

fn parse_encoded_word(text: &str) -> Option<(usize, String, Vec<u8>)> {
    let inner = text.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let encoded = &rest[..end];
    let malformed = |s: &str| s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '=');
    if malformed(charset) || encoded.contains(char::is_whitespace) {
        return None;
    }
    let bytes = match encoding {
        "b" | "B" => base64_decode(encoded)?,
        "q" | "Q" => q_decode(encoded),
        _ => return None,
    };
    let len = "=?".len() + charset.len() + 1 + encoding.len() + 1 + end + "?=".len();
    // RFC 2231 language suffix: `utf-8*ru`.
    let charset = charset.split('*').next().unwrap_or(charset);
    Some((len, charset.to_ascii_lowercase(), bytes))
}

/// RFC 2047 4.2: `_` is a space, `=XX` a byte.
fn q_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(hex_byte)) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'_', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn decode_charset(charset: &str, bytes: &[u8]) -> String {
    match charset {
        "iso-8859-1" | "latin1" | "us-ascii" => bytes.iter().map(|b| char::from(*b)).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    match pair {
        [high, low] => Some((digit(*high)? * 16 + digit(*low)?) as u8),
        _ => None,
    }
}

/// Standard alphabet; whitespace ignored, decoding stops at `=`; `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            break;
        }
        let value = ALPHABET.iter().position(|a| *a == c)?;
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}
