//! Admin broadcasts: who receives them (the audience) and what a valid message is — Telegram's
//! HTML subset, at most 4096 characters of text, an optional URL button.

use serde::{Deserialize, Serialize};

use crate::domain::Language;

/// Which users a broadcast goes to (banned users and users who blocked the bot never do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Everyone.
    All,
    /// Users whose subscription is running now.
    Active,
    /// Users whose subscription has ended.
    Expired,
    /// Users on a free trial now.
    Trial,
    /// Users who never paid.
    NeverPaid,
}

impl Segment {
    pub const ALL: [Segment; 5] = [
        Segment::All,
        Segment::Active,
        Segment::Expired,
        Segment::Trial,
        Segment::NeverPaid,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Segment::All => "all",
            Segment::Active => "active",
            Segment::Expired => "expired",
            Segment::Trial => "trial",
            Segment::NeverPaid => "never_paid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Audience {
    pub segment: Segment,
    /// Only users with this language; `None`: every language.
    #[schema(value_type = Option<String>, example = "ru")]
    pub language: Option<Language>,
}

/// A validated broadcast message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastMessage {
    /// Telegram HTML.
    pub html: String,
    pub button: Option<(String, String)>,
}

/// Why a broadcast message is refused, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

/// Telegram's limit on the text of one message, after entities are parsed.
pub const MAX_TEXT_CHARS: usize = 4096;
const MAX_BUTTON_CHARS: usize = 64;

/// Tags Telegram accepts with `parse_mode=HTML`.
const TAGS: [&str; 16] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-spoiler",
    "span",
    "tg-emoji",
];

/// Checks the HTML (known tags, balanced, `href` on links, only `&lt; &gt; &amp; &quot;` and
/// numeric entities) and the length of the text, and the button: both or neither of a label (1–64
/// characters) and an `http(s)://` or `tg://` URL.
pub fn validate(
    html: &str,
    button_text: Option<&str>,
    button_url: Option<&str>,
) -> Result<BroadcastMessage, Invalid> {
    let text_chars = check_html(html).map_err(|m| invalid("text", m))?;
    if text_chars == 0 {
        return Err(invalid("text", "the message is empty"));
    }
    if text_chars > MAX_TEXT_CHARS {
        return Err(invalid(
            "text",
            format!("{text_chars} characters of text; Telegram allows {MAX_TEXT_CHARS}"),
        ));
    }
    let button = match (button_text.map(str::trim), button_url.map(str::trim)) {
        (None, None) => None,
        (Some(text), Some(url)) => {
            let chars = text.chars().count();
            if chars == 0 || chars > MAX_BUTTON_CHARS {
                return Err(invalid(
                    "button_text",
                    format!("must be 1 to {MAX_BUTTON_CHARS} characters"),
                ));
            }
            let scheme_ok = ["https://", "http://", "tg://"]
                .iter()
                .any(|s| url.starts_with(s));
            if !scheme_ok || url.len() > 2048 || url.chars().any(char::is_whitespace) {
                return Err(invalid("button_url", "must be an http(s):// or tg:// URL"));
            }
            Some((text.to_owned(), url.to_owned()))
        }
        (Some(_), None) => return Err(invalid("button_url", "a button needs a URL")),
        (None, Some(_)) => return Err(invalid("button_text", "a button needs a label")),
    };
    Ok(BroadcastMessage {
        html: html.to_owned(),
        button,
    })
}

/// Walks the HTML; returns the number of text characters (entities count as one).
fn check_html(html: &str) -> Result<usize, String> {
    let mut open: Vec<String> = Vec::new();
    let mut chars = 0usize;
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest
                    .find('>')
                    .ok_or("a '<' that does not start a tag: write &lt;")?;
                let tag = &rest[1..end];
                rest = &rest[end + 1..];
                if let Some(name) = tag.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some(expected) if expected == name => {}
                        Some(expected) => return Err(format!("</{name}> closes <{expected}>")),
                        None => return Err(format!("</{name}> closes nothing")),
                    }
                    continue;
                }
                let (name, attributes) = tag
                    .split_once(char::is_whitespace)
                    .map_or((tag, ""), |(n, a)| (n, a.trim()));
                let name = name.to_ascii_lowercase();
                if !TAGS.contains(&name.as_str()) {
                    return Err(format!(
                        "<{name}> is not allowed; Telegram accepts b, i, u, s, a, code, pre, blockquote, tg-spoiler"
                    ));
                }
                if name == "a" && !attributes.starts_with("href=") {
                    return Err("a link needs href=\"…\"".into());
                }
                if name == "span" && attributes != "class=\"tg-spoiler\"" {
                    return Err("<span> is only allowed as <span class=\"tg-spoiler\">".into());
                }
                open.push(name);
            }
            '>' => return Err("a '>' outside a tag: write &gt;".into()),
            '&' => {
                let end = rest
                    .find(';')
                    .filter(|e| *e <= 10)
                    .ok_or("a '&' that does not start an entity: write &amp;")?;
                let entity = &rest[1..end];
                let known = matches!(entity, "lt" | "gt" | "amp" | "quot")
                    || entity.strip_prefix('#').is_some_and(|n| {
                        n.parse::<u32>().is_ok()
                            || n.strip_prefix('x')
                                .is_some_and(|h| u32::from_str_radix(h, 16).is_ok())
                    });
                if !known {
                    return Err(format!("&{entity}; is not an entity Telegram knows"));
                }
                rest = &rest[end + 1..];
                chars += 1;
            }
            c => {
                rest = &rest[c.len_utf8()..];
                chars += 1;
            }
        }
    }
    match open.pop() {
        Some(tag) => Err(format!("<{tag}> is not closed")),
        None => Ok(chars),
    }
}

/// A message that passed [`validate`] as the console shows it in its preview: each Telegram tag
/// becomes an HTML element without attributes (`strong`, `em`, `u`, `s`, `code`, `pre`,
/// `blockquote`, a spoiler `span`), a link keeps only an `http(s)://` or `tg://` `href`; text and
/// entities stay as written (validation allows no bare `<`, `>` or `&`). Safe to insert into a
/// page: no attribute of the author's reaches it but a checked, escaped link. Anything
/// unexpected (text that did not pass validation) is escaped rather than kept.
pub fn preview_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 32);
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c != '<' {
            match c {
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                '&' if !starts_entity(rest) => out.push_str("&amp;"),
                c => out.push(c),
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let Some(end) = rest.find('>') else {
            out.push_str("&lt;");
            rest = &rest[1..];
            continue;
        };
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        let (closing, body) = match tag.strip_prefix('/') {
            Some(name) => (true, name.trim()),
            None => (false, tag),
        };
        let (name, attributes) = body
            .split_once(char::is_whitespace)
            .map_or((body, ""), |(n, a)| (n, a.trim()));
        let name = name.to_ascii_lowercase();
        let element = match name.as_str() {
            "b" | "strong" => "strong",
            "i" | "em" => "em",
            "u" | "ins" => "u",
            "s" | "strike" | "del" => "s",
            "code" => "code",
            "pre" => "pre",
            "blockquote" => "blockquote",
            "a" => "a",
            "tg-spoiler" | "span" => "span",
            "tg-emoji" => "span",
            // Not a Telegram tag: shown as the text it is.
            _ => {
                out.push_str("&lt;");
                out.push_str(&escape_text(tag));
                out.push_str("&gt;");
                continue;
            }
        };
        if closing {
            out.push_str("</");
            out.push_str(element);
            out.push('>');
            continue;
        }
        match name.as_str() {
            "a" => match link_target(attributes) {
                Some(href) => {
                    out.push_str("<a href=\"");
                    out.push_str(&escape_text(&href));
                    out.push_str("\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">");
                }
                None => out.push_str("<a>"),
            },
            "tg-spoiler" | "span" => out.push_str("<span class=\"spoiler\">"),
            _ => {
                out.push('<');
                out.push_str(element);
                out.push('>');
            }
        }
    }
    out
}

/// Whether `text` (starting with `&`) starts an entity that [`validate`] accepts.
fn starts_entity(text: &str) -> bool {
    let Some(end) = text.find(';').filter(|e| *e <= 10) else {
        return false;
    };
    let entity = &text[1..end];
    matches!(entity, "lt" | "gt" | "amp" | "quot")
        || entity.strip_prefix('#').is_some_and(|n| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                || n.strip_prefix('x')
                    .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
}

fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `href` of a link's attributes when it is an `http(s)://` or `tg://` URL, unquoted and
/// with Telegram's entities (`&amp;`…) read.
fn link_target(attributes: &str) -> Option<String> {
    let value = attributes.strip_prefix("href=")?;
    let value = match value.chars().next()? {
        q @ ('"' | '\'') => {
            let inner = &value[1..];
            &inner[..inner.find(q)?]
        }
        _ => value.split(char::is_whitespace).next()?,
    };
    let url = value
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let lower = url.to_ascii_lowercase();
    ["https://", "http://", "tg://"]
        .iter()
        .any(|s| lower.starts_with(s))
        .then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_telegram_html() {
        let m = validate(
            "<b>Sale</b> &amp; <i>more</i>: <a href=\"https://x.example\">link</a> <span class=\"tg-spoiler\">s</span>",
            Some("Open"),
            Some("https://t.me/shop"),
        )
        .unwrap();
        assert_eq!(m.button, Some(("Open".into(), "https://t.me/shop".into())));
    }

    #[test]
    fn refuses_what_telegram_would_refuse() {
        for (html, problem) in [
            ("", "empty"),
            ("<script>x</script>", "not allowed"),
            ("<b>x", "not closed"),
            ("<b>x</i>", "closes <b>"),
            ("x </b>", "closes nothing"),
            ("a < b", "does not start a tag"),
            ("a > b", "outside a tag"),
            ("fish & chips", "write &amp;"),
            ("&nbsp;", "not an entity"),
            ("<a>x</a>", "href"),
            ("<span>x</span>", "tg-spoiler"),
        ] {
            let err = validate(html, None, None).unwrap_err();
            assert_eq!(err.field, "text");
            assert!(err.message.contains(problem), "{html}: {err}");
        }
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert!(
            validate(&long, None, None)
                .unwrap_err()
                .message
                .contains("4097")
        );
        assert!(
            validate(
                &format!("<b>{}</b>", "я".repeat(MAX_TEXT_CHARS)),
                None,
                None
            )
            .is_ok()
        );
        assert_eq!(
            validate("x", Some("Go"), None).unwrap_err().field,
            "button_url"
        );
        assert_eq!(
            validate("x", None, Some("https://a")).unwrap_err().field,
            "button_text"
        );
        assert_eq!(
            validate("x", Some("Go"), Some("javascript:alert(1)"))
                .unwrap_err()
                .field,
            "button_url"
        );
        assert_eq!(
            validate("x", Some(&"b".repeat(65)), Some("https://a"))
                .unwrap_err()
                .field,
            "button_text"
        );
    }

    #[test]
    fn the_preview_keeps_the_formatting_and_nothing_of_the_author_s_markup() {
        assert_eq!(
            preview_html("<b>Sale</b> &amp; <i>more</i>\n<tg-spoiler>x</tg-spoiler>"),
            "<strong>Sale</strong> &amp; <em>more</em>\n<span class=\"spoiler\">x</span>"
        );
        assert_eq!(
            preview_html("<a href=\"https://x.example/?a=1&amp;b=2\">go</a>"),
            "<a href=\"https://x.example/?a=1&amp;b=2\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">go</a>"
        );
        // Attributes Telegram would ignore, and links to anything but the web or Telegram, go.
        assert_eq!(
            preview_html("<b onclick=\"alert(1)\">x</b><a href=\"javascript:alert(1)\">y</a>"),
            "<strong>x</strong><a>y</a>"
        );
        assert_eq!(
            preview_html("<script>alert(1)</script> 1 < 2 & \"q\""),
            "&lt;script&gt;alert(1)&lt;/script&gt; 1 &lt; 2 &amp; &quot;q&quot;"
        );
    }

    proptest! {
        #[test]
        fn a_message_is_taken_as_written_or_refused_by_field(
            html in prop_oneof![".{0,200}", "[a-zа-я ]{1,60}", "<b>[a-z ]{1,20}</b> [a-z]{0,10}"],
            text in proptest::option::of(prop_oneof![".{0,80}", " ?[A-Za-z]{1,70} ?"]),
            url in proptest::option::of(prop_oneof![".{0,80}", "(https?|tg|ftp)://[a-zA-Z./]{1,30}"]),
        ) {
            match validate(&html, text.as_deref(), url.as_deref()) {
                Ok(message) => {
                    prop_assert_eq!(&message.html, &html);
                    match (text.as_deref().map(str::trim), url.as_deref().map(str::trim)) {
                        (None, None) => prop_assert_eq!(message.button, None),
                        (Some(t), Some(u)) => {
                            prop_assert!((1..=64).contains(&t.chars().count()), "{:?}", t);
                            prop_assert!(
                                ["https://", "http://", "tg://"].iter().any(|s| u.starts_with(s)),
                                "{:?}", u
                            );
                            prop_assert_eq!(message.button, Some((t.to_owned(), u.to_owned())));
                        }
                        _ => prop_assert!(false, "a label without a URL or the reverse was taken"),
                    }
                }
                Err(e) => {
                    prop_assert!(["text", "button_text", "button_url"].contains(&e.field), "{:?}", e);
                    prop_assert!(!e.message.is_empty());
                    // A label without a URL (or the reverse) is refused for the missing one.
                    if check_html(&html).is_ok_and(|n| (1..=MAX_TEXT_CHARS).contains(&n)) {
                        match (&text, &url) {
                            (Some(_), None) => prop_assert_eq!(e.field, "button_url"),
                            (None, Some(_)) => prop_assert_eq!(e.field, "button_text"),
                            (None, None) => prop_assert!(false, "valid text refused: {:?}", e),
                            _ => prop_assert!(e.field.starts_with("button_"), "{:?}", e),
                        }
                    }
                }
            }
        }

        #[test]
        fn a_preview_never_carries_markup_of_its_own(
            html in prop_oneof![
                ".{0,300}",
                "(<(/?)(b|i|a|span|tg-spoiler|script|img|a href=[\"']?[a-z:/\"'<> ]{0,14}|b on[a-z]{1,5}=\"x\")>|[a-z &;#<>\"'=/]){0,40}",
            ]
        ) {
            let out = preview_html(&html);
            // Every tag in the output is one of ours, with no attribute but a checked link's.
            let mut rest = out.as_str();
            while let Some(at) = rest.find('<') {
                let end = rest[at..].find('>').map(|e| at + e);
                prop_assert!(end.is_some(), "an unclosed '<' in {:?}", out);
                let tag = &rest[at + 1..end.unwrap_or(at)];
                let name = tag.trim_start_matches('/').split(' ').next().unwrap_or("");
                prop_assert!(
                    ["strong", "em", "u", "s", "code", "pre", "blockquote", "a", "span"].contains(&name),
                    "tag {:?} in {:?}", tag, out
                );
                if let Some((_, attrs)) = tag.split_once(' ') {
                    prop_assert!(
                        attrs == "class=\"spoiler\""
                            || (attrs.starts_with("href=\"http") || attrs.starts_with("href=\"tg://"))
                                && attrs.ends_with("rel=\"noopener noreferrer nofollow\" target=\"_blank\""),
                        "attributes {:?} in {:?}", attrs, out
                    );
                }
                rest = &rest[end.unwrap_or(at) + 1..];
            }
        }
    }
}
