//! The fake SMTP server of `tests/support/smtp.rs`, driven by the real lettre client the shop uses
//! (plain SMTP, AUTH, multipart/alternative) and by raw TCP for protocol details, so that tests of
//! the shop's email delivery can trust it.

use crate::support;

use std::time::Duration;

use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use support::smtp::{FakeSmtp, Mail, SMTP_PASSWORD, SMTP_USER};

const TIMEOUT: Duration = Duration::from_secs(5);
const SHOP: &str = "VPN Магазин <shop@vpn.test>";
const USER: &str = "user@example.test";

fn transport(smtp: &FakeSmtp, password: &str) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp.port())
        .credentials(Credentials::new(SMTP_USER.to_owned(), password.to_owned()))
        .timeout(Some(TIMEOUT))
        .build()
}

fn mailer(smtp: &FakeSmtp) -> AsyncSmtpTransport<Tokio1Executor> {
    transport(smtp, SMTP_PASSWORD)
}

fn message(subject: &str, text: &str, html: &str) -> Message {
    Message::builder()
        .from(SHOP.parse().expect("from"))
        .to(USER.parse().expect("to"))
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        ))
        .expect("message")
}

fn simple(subject: &str) -> Message {
    message(subject, "text", "<p>html</p>")
}

#[tokio::test]
async fn multipart_alternative_with_cyrillic_round_trips() {
    let smtp = FakeSmtp::start();
    // Long enough that lettre folds the subject over several encoded-words.
    let subject = "Ваша подписка на VPN продлена до 12 мая — спасибо, что остаётесь с нами!";
    let text = "Здравствуйте!\nПодписка продлена на 30 дней.\nСсылка: https://vpn.test/sub/abc";
    let html =
        "<p>Hello! Ссылка: <a href=\"https://vpn.test/sub/abc?x=1&y=2\">подписка</a></p>\n<p>.</p>";
    let email = Message::builder()
        .from(SHOP.parse().unwrap())
        .to(USER.parse().unwrap())
        .bcc("audit@vpn.test".parse().unwrap())
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        ))
        .unwrap();
    let formatted = String::from_utf8(email.formatted()).unwrap();

    mailer(&smtp).send(email).await.expect("send");

    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "shop@vpn.test");
    assert_eq!(mail.to, vec![USER.to_owned(), "audit@vpn.test".to_owned()]);
    assert_eq!(mail.subject, subject);
    assert_eq!(mail.text.as_deref(), Some(text));
    assert_eq!(mail.html.as_deref(), Some(html));
    assert_eq!(mail.header("From"), Some(SHOP));
    assert_eq!(mail.header("to"), Some(USER));
    assert_eq!(mail.header("Bcc"), None);
    assert_eq!(mail.raw, formatted, "raw is the DATA lettre sent");
    // Both transfer encodings lettre picks are exercised: base64 for the mostly Cyrillic text,
    // quoted-printable for the mostly ASCII html.
    assert!(formatted.contains("Content-Transfer-Encoding: base64"));
    assert!(formatted.contains("Content-Transfer-Encoding: quoted-printable"));
    assert!(formatted.contains("Subject: =?utf-8?b?"));
    assert_eq!(smtp.connections(), 1);
}

#[tokio::test]
async fn url_has_the_shop_format() {
    let smtp = FakeSmtp::start();
    assert_eq!(
        smtp.url(),
        format!(
            "smtp://mailer:mail-password@127.0.0.1:{}?tls=none",
            smtp.port()
        )
    );
}

#[tokio::test]
async fn wrong_password_is_a_permanent_error() {
    let smtp = FakeSmtp::start();
    let err = transport(&smtp, "wrong")
        .send(simple("never"))
        .await
        .expect_err("wrong password must fail");
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("535"));
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn auth_login_is_accepted() {
    let smtp = FakeSmtp::start();
    let login_only = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp.port())
        .credentials(Credentials::new(SMTP_USER.into(), SMTP_PASSWORD.into()))
        .authentication(vec![Mechanism::Login])
        .timeout(Some(TIMEOUT))
        .build();
    login_only.send(simple("via LOGIN")).await.expect("send");
    assert_eq!(smtp.messages()[0].subject, "via LOGIN");
}

#[tokio::test]
async fn server_without_auth_takes_mail_without_credentials() {
    let smtp = FakeSmtp::start_without_auth();
    let anonymous = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp.port())
        .timeout(Some(TIMEOUT))
        .build();
    anonymous.send(simple("relay")).await.expect("send");
    assert_eq!(smtp.messages()[0].subject, "relay");
}

#[tokio::test]
async fn temporary_rejection_is_transient_and_the_next_send_works() {
    let smtp = FakeSmtp::start();
    let mailer = mailer(&smtp);
    smtp.reject_next(1, 451);

    let err = mailer
        .send(simple("first try"))
        .await
        .expect_err("rejected");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("451"));
    assert!(smtp.messages().is_empty());

    mailer.send(simple("second try")).await.expect("retry");
    let subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    assert_eq!(subjects, ["second try"]);
}

#[tokio::test]
async fn permanent_rejection_is_permanent() {
    let smtp = FakeSmtp::start();
    smtp.reject_next(2, 550);
    let mailer = mailer(&smtp);
    for _ in 0..2 {
        let err = mailer.send(simple("spam?")).await.expect_err("rejected");
        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("550"));
    }
    mailer.send(simple("fine")).await.expect("third send");
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn outage_fails_sends_until_the_server_is_back() {
    let smtp = FakeSmtp::start();
    let mailer = mailer(&smtp);
    smtp.set_down(true);

    let err = mailer.send(simple("lost?")).await.expect_err("server down");
    assert!(err.is_transient(), "421 greeting: {err:?}");
    assert!(smtp.messages().is_empty());
    assert_eq!(smtp.connections(), 1, "the connection was made and refused");

    smtp.set_down(false);
    mailer.send(simple("after the outage")).await.expect("send");
    assert_eq!(smtp.messages()[0].subject, "after the outage");
}

#[tokio::test]
async fn outage_closes_open_sessions() {
    let smtp = FakeSmtp::start();
    let mut conn = connect_lettre(&smtp).await;
    smtp.set_down(true);
    let email = simple("mid-outage");
    let err = conn
        .send(email.envelope(), &email.formatted())
        .await
        .expect_err("session cut");
    assert!(err.is_transient(), "{err:?}");
    assert!(smtp.messages().is_empty());
}

/// lettre's own connection type, as its pool holds it (the shop builds lettre without the `pool`
/// feature, so `AsyncSmtpTransport` opens one connection per message).
async fn connect_lettre(smtp: &FakeSmtp) -> AsyncSmtpConnection {
    let mut conn = AsyncSmtpConnection::connect_tokio1(
        ("127.0.0.1", smtp.port()),
        Some(TIMEOUT),
        &ClientId::Domain("shop.test".into()),
        None,
        None,
    )
    .await
    .expect("connect");
    conn.auth(
        &[Mechanism::Plain],
        &Credentials::new(SMTP_USER.into(), SMTP_PASSWORD.into()),
    )
    .await
    .expect("auth");
    conn
}

#[tokio::test]
async fn several_messages_over_one_connection() {
    let smtp = FakeSmtp::start();
    let mut conn = connect_lettre(&smtp).await;
    for i in 0..3 {
        let email = simple(&format!("message {i}"));
        conn.send(email.envelope(), &email.formatted())
            .await
            .expect("send");
    }
    smtp.reject_next(1, 451);
    let email = simple("rejected");
    let err = conn
        .send(email.envelope(), &email.formatted())
        .await
        .expect_err("rejected");
    assert!(err.is_transient());
    // lettre QUITs a connection after any failed command; its pool then opens a new one.
    assert!(conn.has_broken());

    let subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    assert_eq!(subjects, ["message 0", "message 1", "message 2"]);
    assert_eq!(smtp.connections(), 1);
}

#[tokio::test]
async fn twenty_concurrent_sends_are_all_recorded() {
    let smtp = FakeSmtp::start();
    let mailer = mailer(&smtp);
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..20 {
        let mailer = mailer.clone();
        sends.spawn(async move { mailer.send(simple(&format!("concurrent {i}"))).await });
    }
    while let Some(sent) = sends.join_next().await {
        sent.expect("task").expect("send");
    }
    let mut subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    subjects.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("concurrent {i}")).collect();
    expected.sort();
    assert_eq!(subjects, expected);
    assert!(smtp.connections() >= 1);

    smtp.clear();
    assert!(smtp.messages().is_empty());
}

#[test]
fn works_without_a_runtime_and_stops_on_drop() {
    let smtp = FakeSmtp::start();
    let port = smtp.port();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut greeting = [0u8; 3];
    std::io::Read::read_exact(&mut stream, &mut greeting).unwrap();
    assert_eq!(&greeting, b"220");
    drop(smtp);
    // The session was closed with the server: the rest of the greeting, then end of stream.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut rest).expect("closed, not timed out");
    assert!(rest.ends_with(b"\r\n"));
}

// ---------------------------------------------------------------------------------------------
// Raw protocol

/// `\0mailer\0mail-password` in base64 (the tests have no base64 crate).
const PLAIN_OK: &str = "AG1haWxlcgBtYWlsLXBhc3N3b3Jk";
/// `\0mailer\0wrong`.
const PLAIN_WRONG: &str = "AG1haWxlcgB3cm9uZw==";

struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(smtp: &FakeSmtp) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", smtp.port()))
            .await
            .expect("connect");
        let (read, writer) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(read),
            writer,
        };
        assert_eq!(client.reply().await.0, 220);
        client
    }

    async fn send(&mut self, data: &str) {
        self.writer.write_all(data.as_bytes()).await.expect("write");
    }

    /// One reply: code and lines (without the code).
    async fn reply(&mut self) -> (u16, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut line))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(read > 0, "connection closed, lines so far: {lines:?}");
            let line = line.trim_end();
            let code = line[..3].parse().expect("reply code");
            lines.push(line[4..].to_owned());
            if line.as_bytes()[3] == b' ' {
                return (code, lines);
            }
        }
    }

    async fn command(&mut self, command: &str) -> u16 {
        self.send(&format!("{command}\r\n")).await;
        self.reply().await.0
    }

    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(TIMEOUT, self.reader.read_to_end(&mut rest))
            .await
            .expect("close in time");
        matches!(read, Ok(0))
    }
}

#[tokio::test]
async fn protocol_enforces_the_command_sequence() {
    let smtp = FakeSmtp::start();
    let mut c = Client::connect(&smtp).await;
    assert_eq!(c.command("MAIL FROM:<a@x.test>").await, 503, "before EHLO");
    assert_eq!(c.command("AUTH PLAIN").await, 503, "before EHLO");
    assert_eq!(c.command("EHLO").await, 501, "no hostname");

    c.send("EHLO client.test\r\n").await;
    let (code, lines) = c.reply().await;
    assert_eq!(code, 250);
    assert!(lines.contains(&"AUTH PLAIN LOGIN".to_owned()), "{lines:?}");
    assert!(lines.contains(&"8BITMIME".to_owned()));
    assert!(lines.contains(&"SMTPUTF8".to_owned()));
    assert!(lines.contains(&"PIPELINING".to_owned()));
    assert!(!lines.iter().any(|l| l.contains("STARTTLS")), "{lines:?}");

    assert_eq!(c.command("MAIL FROM:<a@x.test>").await, 530, "before AUTH");
    assert_eq!(c.command("RCPT TO:<b@x.test>").await, 503, "before MAIL");
    assert_eq!(c.command("DATA").await, 503, "before MAIL");
    assert_eq!(c.command("FROB").await, 500);
    assert_eq!(c.command("STARTTLS").await, 502);
    assert_eq!(c.command("AUTH CRAM-MD5").await, 504);
    assert_eq!(c.command(&format!("AUTH PLAIN {PLAIN_WRONG}")).await, 535);
    assert_eq!(c.command("AUTH PLAIN !!!").await, 501);
    assert_eq!(c.command(&format!("AUTH PLAIN {PLAIN_OK}")).await, 235);
    assert_eq!(c.command(&format!("AUTH PLAIN {PLAIN_OK}")).await, 503);

    assert_eq!(c.command("MAIL FROM:a@x.test").await, 501, "no brackets");
    assert_eq!(c.command("MAIL FROM:<a@x.test> FOO=1").await, 555);
    assert_eq!(c.command("MAIL FROM:<>").await, 250, "null sender");
    assert_eq!(c.command("MAIL FROM:<a@x.test>").await, 503, "nested");
    assert_eq!(c.command("DATA").await, 503, "no RCPT");
    assert_eq!(c.command("RCPT TO:<>").await, 501);
    assert_eq!(c.command("RCPT TO:<b@x.test>").await, 250);
    assert_eq!(c.command("RSET").await, 250);
    assert_eq!(c.command("RCPT TO:<b@x.test>").await, 503, "RSET ended it");
    assert_eq!(c.command("NOOP").await, 250);
    assert_eq!(c.command("QUIT").await, 221);
    assert!(c.closed().await);
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn data_is_dot_unstuffed_and_pipelining_works() {
    let smtp = FakeSmtp::start();
    let mut c = Client::connect(&smtp).await;
    assert_eq!(c.command("EHLO client.test").await, 250);
    // AUTH LOGIN with its two challenges.
    c.send("AUTH LOGIN\r\n").await;
    assert_eq!(c.reply().await, (334, vec!["VXNlcm5hbWU6".to_owned()]));
    c.send("bWFpbGVy\r\n").await;
    assert_eq!(c.reply().await, (334, vec!["UGFzc3dvcmQ6".to_owned()]));
    assert_eq!(c.command("bWFpbC1wYXNzd29yZA==").await, 235);

    // One write: the envelope, DATA, and (after 354) nothing else.
    c.send("MAIL FROM:<a@x.test> BODY=8BITMIME\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n")
        .await;
    for expected in [250, 250, 250, 354] {
        assert_eq!(c.reply().await.0, expected);
    }
    c.send("Subject: dots\r\n\r\n..leading dot\r\n..\r\nmiddle\r\n...\r\n.\r\n")
        .await;
    assert_eq!(c.reply().await.0, 250);
    // The session goes on: a second transaction on the same connection.
    c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
        .await;
    for expected in [250, 250, 354] {
        assert_eq!(c.reply().await.0, expected);
    }
    c.send("Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(c.reply().await.0, 221);

    let mails = smtp.messages();
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0].from, "a@x.test");
    assert_eq!(mails[0].to, ["b@x.test", "c@x.test"]);
    assert_eq!(
        mails[0].raw,
        "Subject: dots\r\n\r\n.leading dot\r\n.\r\nmiddle\r\n.."
    );
    assert_eq!(
        mails[0].text.as_deref(),
        Some(".leading dot\n.\nmiddle\n..")
    );
    assert_eq!(mails[1].subject, "second");
    assert_eq!(smtp.connections(), 1);
}

#[tokio::test]
async fn q_encoded_words_folding_and_quoted_printable_are_decoded() {
    let smtp = FakeSmtp::start();
    let mut c = Client::connect(&smtp).await;
    assert_eq!(c.command("EHLO client.test").await, 250);
    assert_eq!(c.command(&format!("AUTH PLAIN {PLAIN_OK}")).await, 235);
    assert_eq!(c.command("MAIL FROM:<a@x.test>").await, 250);
    assert_eq!(c.command("RCPT TO:<b@x.test>").await, 250);
    assert_eq!(c.command("DATA").await, 354);
    c.send(concat!(
        "Subject: =?UTF-8?Q?=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82=2C_?=\r\n",
        " =?utf-8?B?0LzQuNGA?= and more\r\n",
        "X-Folded: one\r\n\ttwo\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n",
        "\r\n",
        "preamble\r\n",
        "--outer\r\n",
        "Content-Type: multipart/alternative; boundary=inner\r\n",
        "\r\n",
        "--inner\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "Content-Transfer-Encoding: quoted-printable\r\n",
        "\r\n",
        "=D0=A1=D1=81=D1=8B=D0=BB=D0=BA=D0=B0: a=3Db soft=\r\n",
        "break   \r\n",
        "second line\r\n",
        "--inner\r\n",
        "Content-Type: text/html; charset=utf-8\r\n",
        "Content-Transfer-Encoding: 7bit\r\n",
        "\r\n",
        "<b>html</b>\r\n",
        "--inner--\r\n",
        "--outer\r\n",
        "Content-Type: text/plain\r\n",
        "Content-Disposition: attachment; filename=\"a.txt\"\r\n",
        "\r\n",
        "attached, not the text\r\n",
        "--outer--\r\n",
        ".\r\n",
    ))
    .await;
    assert_eq!(c.reply().await.0, 250);

    let mail = &smtp.messages()[0];
    assert_eq!(mail.subject, "Привет, мир and more");
    assert_eq!(mail.header("x-folded"), Some("one\ttwo"));
    assert_eq!(
        mail.text.as_deref(),
        Some("Ссылка: a=b softbreak\nsecond line")
    );
    assert_eq!(mail.html.as_deref(), Some("<b>html</b>"));
}

/// ASCII or Cyrillic words joined by single spaces.
fn subject() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        "[a-zA-Z0-9,.!?:;()=_\"'-]{1,12}|[а-яА-ЯёЁa-z0-9,.!?—-]{1,12}",
        0..12,
    )
    .prop_map(|words| words.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever lettre builds from a subject and two bodies, the parser gets back. Subjects have
    /// single spaces: lettre writes a run of spaces between two non-ASCII words as whitespace
    /// between encoded-words, which RFC 2047 (and so every mail client) drops.
    #[test]
    fn lettre_messages_parse_back(
        subject in subject(),
        text in "([a-zA-Zа-я0-9 =.,:/?!-]{0,90}\n?){0,8}",
        html in "(<p>[^\r\n\\x00]{0,90}</p>\n?){0,4}",
    ) {
        let email = message(&subject, &text, &html);
        let raw = String::from_utf8(email.formatted()).unwrap();
        let mail = Mail::parse("shop@vpn.test", &[USER.to_owned()], &raw);
        prop_assert_eq!(mail.subject, subject);
        prop_assert_eq!(mail.text.as_deref(), Some(text.as_str()));
        prop_assert_eq!(mail.html.as_deref(), Some(html.as_str()));
    }

    #[test]
    fn any_data_parses_to_a_mail_that_keeps_it(raw in "(?s).{0,400}", boundary in "[a-z]{1,5}") {
        let to = vec![USER.to_owned()];
        let mime = format!("Content-Type: multipart/alternative; boundary={boundary}\r\n\r\n{raw}");
        for data in [raw.clone(), mime] {
            let mail = Mail::parse("shop@vpn.test", &to, &data);
            // The envelope and the data as sent, whatever the data.
            prop_assert_eq!(&mail.from, "shop@vpn.test");
            prop_assert_eq!(&mail.to, &to);
            prop_assert_eq!(&mail.raw, &data);
            // A subject only from a Subject header.
            prop_assert!(
                mail.subject.is_empty() || data.to_ascii_lowercase().contains("subject:"),
                "{:?} from {:?}", mail.subject, data
            );
        }
    }
}
