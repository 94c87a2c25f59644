//! The fake Telegram Bot API against `shared/reference/telegram-payments.md`: the protocol over
//! plain HTTP, and teloxide 0.17 talking to it, so that tests of the bot, the notifier and the
//! payments can trust it.

use crate::support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use teloxide::payloads::setters::*;
use teloxide::prelude::Requester;
use teloxide::types::{
    AllowedUpdate, BotCommand, CallbackQueryId, ChatId, InlineKeyboardButton, InlineKeyboardMarkup,
    InputFile, LabeledPrice, MessageId, MessageKind, ParseMode, PreCheckoutQueryId, Recipient,
    Seconds, TelegramTransactionId, UpdateKind, UserId,
};
use teloxide::{ApiError, Bot, RequestError};

use support::telegram::{
    BOT_ID, BOT_USERNAME, FakeTelegram, SUBSCRIPTION_PERIOD, StarPayment, TOKEN,
};

const USER: i64 = 4242;

/// A fake and an HTTP client for it.
struct Api {
    tg: FakeTelegram,
    http: reqwest::Client,
}

/// A fake without flood limits: these tests send several messages to one chat at once to check
/// the protocol; the limits have tests of their own (which turn on the one they check), and
/// `limits_are_telegrams_by_default` checks the fake as every other test gets it.
fn api() -> Api {
    let tg = FakeTelegram::start();
    tg.without_limits();
    Api {
        tg,
        http: reqwest::Client::new(),
    }
}

impl Api {
    fn method_url(&self, method: &str) -> String {
        format!("{}/bot{TOKEN}/{method}", self.tg.url())
    }

    /// POSTs a JSON body; status and envelope.
    async fn call(&self, method: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.method_url(method))
            .json(&body)
            .send()
            .await
            .expect("request");
        read(resp).await
    }

    async fn send(&self, chat_id: i64, text: &str) -> (u16, Value) {
        self.call("sendMessage", json!({"chat_id": chat_id, "text": text}))
            .await
    }

    fn bot(&self) -> Bot {
        Bot::new(TOKEN).set_api_url(self.tg.url().parse().expect("fake url"))
    }
}

async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json().await.expect("JSON body");
    (status, body)
}

fn keyboard() -> Value {
    json!({"inline_keyboard": [[{"text": "30 days — 150 ⭐", "callback_data": "buy:30:xtr"}]]})
}

// ---------------------------------------------------------------------------------------------
// Protocol

#[tokio::test]
async fn success_is_wrapped_in_an_ok_envelope() {
    let api = api();
    let (status, body) = api.call("getMe", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["result"]["id"], BOT_ID);
    assert_eq!(body["result"]["is_bot"], true);
    assert_eq!(body["result"]["username"], BOT_USERNAME);
    // GET works too, and method names are case-insensitive as in the Bot API.
    let resp = api.http.get(api.method_url("getme")).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_eq!((status, body["ok"].clone()), (200, json!(true)));
    assert_eq!(api.tg.calls_to("getMe").len(), 2);
}

#[tokio::test]
async fn wrong_token_is_401_and_unknown_method_is_404() {
    let api = api();
    let url = api.tg.url();
    let post = |path: String| {
        api.http
            .post(format!("{url}{path}"))
            .json(&json!({}))
            .send()
    };

    let (status, body) = read(post("/bot123456:WRONG-TOKEN-1/getMe".into()).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );

    let (status, body) = read(post(format!("/bot{TOKEN}/sendTelepathy")).await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 404, "description": "Not Found"})
    );

    // A token that is not of the <id>:<secret> form does not reach a bot at all.
    let (status, _) = read(post("/botnot-a-token/getMe".into()).await.unwrap()).await;
    assert_eq!(status, 404);

    let statuses: Vec<u16> = api.tg.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [401, 404, 404]);
}

#[tokio::test]
async fn json_form_multipart_and_query_are_recorded_alike() {
    let api = api();
    let markup = keyboard().to_string();
    let fields = [
        ("chat_id", "42"),
        ("text", "007"),
        ("parse_mode", "HTML"),
        ("reply_markup", markup.as_str()),
    ];
    let url = api.method_url("sendMessage");

    let json_body =
        json!({"chat_id": 42, "text": "007", "parse_mode": "HTML", "reply_markup": keyboard()});
    let json = api.http.post(&url).json(&json_body);
    let form = api.http.post(&url).form(&fields);
    let mut multipart = reqwest::multipart::Form::new();
    for (k, v) in fields {
        multipart = multipart.text(k, v.to_owned());
    }
    let multipart = api.http.post(&url).multipart(multipart);
    let query = api.http.get(&url).query(&fields);
    for request in [json, form, multipart, query] {
        let (status, body) = read(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
    }

    let calls = api.tg.calls_to("sendMessage");
    assert_eq!(calls.len(), 4);
    for call in &calls {
        // Numbers stay numbers, texts stay texts (even "007"), JSON parts become objects.
        assert_eq!(call.params, json_body, "recorded {:?}", call.params);
    }
    let sent = api.tg.sent_messages();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|m| m.chat_id == 42
        && m.text == "007"
        && m.parse_mode.as_deref() == Some("HTML")
        && m.reply_markup == Some(keyboard())));
}

#[tokio::test]
async fn uploaded_files_are_described_where_attach_points() {
    let api = api();
    let form = reqwest::multipart::Form::new()
        .text("chat_id", "42")
        .text("photo", "attach://file0")
        .text("caption", "Your <b>QR</b>")
        .text("parse_mode", "HTML")
        .part(
            "file0",
            reqwest::multipart::Part::bytes(vec![7u8; 1000]).file_name("qr.png"),
        );
    let resp = api
        .http
        .post(api.method_url("sendPhoto"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["caption"], "Your QR");
    assert_eq!(
        body["result"]["caption_entities"],
        json!([{"type": "bold", "offset": 5, "length": 2}])
    );
    assert!(
        body["result"]["photo"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    let params = &api.tg.calls()[0].params;
    assert_eq!(
        params["photo"],
        json!({"file_name": "qr.png", "size": 1000})
    );
    assert!(params.get("file0").is_none());
}

#[tokio::test]
async fn message_ids_increase_per_chat() {
    let api = api();
    let mut ids = Vec::new();
    for chat in [1, 1, 2, 1, 2] {
        let (_, body) = api.send(chat, "hi").await;
        ids.push((chat, body["result"]["message_id"].as_i64().unwrap()));
        assert_eq!(body["result"]["chat"]["id"], chat);
        assert_eq!(body["result"]["chat"]["type"], "private");
        assert_eq!(body["result"]["from"]["id"], BOT_ID);
    }
    assert_eq!(ids, [(1, 1), (1, 2), (2, 1), (1, 3), (2, 2)]);
    // The user's messages take ids in the same sequence, as in a real private chat.
    api.tg.push_message(1, "hello");
    let (_, body) = api.send(1, "hi").await;
    assert_eq!(body["result"]["message_id"], 5);
}

#[tokio::test]
async fn html_becomes_text_and_entities_and_bad_markup_is_400() {
    let api = api();
    let (status, body) = api
        .call(
            "sendMessage",
            json!({"chat_id": USER, "parse_mode": "HTML",
                   "text": "<b>Plan</b> &amp; <a href=\"https://t.me/x?a=1&amp;b=2\">ключ</a>"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["text"], "Plan & ключ");
    assert_eq!(
        body["result"]["entities"],
        json!([{"type": "bold", "offset": 0, "length": 4},
               {"type": "text_link", "offset": 7, "length": 4, "url": "https://t.me/x?a=1&b=2"}])
    );

    let bad = [
        (
            "HTML",
            "<b>unclosed",
            "Can't find end tag corresponding to start tag \"b\"",
        ),
        (
            "HTML",
            "1 <br> 2",
            "Unsupported start tag \"br\" at byte offset 2",
        ),
        ("MarkdownV2", "Price: 1.5", "Character '.' is reserved"),
        (
            "MarkdownV2",
            "*bold",
            "Can't find end of Bold entity at byte offset 0",
        ),
    ];
    for (mode, text, error) in bad {
        let (status, body) = api
            .call(
                "sendMessage",
                json!({"chat_id": USER, "text": text, "parse_mode": mode}),
            )
            .await;
        assert_eq!(status, 400, "{text}");
        let description = body["description"].as_str().unwrap();
        assert!(
            description.starts_with("Bad Request: can't parse entities: ")
                && description.contains(error),
            "{text}: {description}"
        );
    }
    let (status, _) = api
        .call(
            "sendMessage",
            json!({"chat_id": USER, "text": r"Price: 1\.5 *bold* [link](https://x.y/a.b)", "parse_mode": "MarkdownV2"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(api.tg.sent_count(), 2, "failed sends are not messages");
}

#[tokio::test]
async fn empty_long_and_badly_buttoned_messages_are_400() {
    let api = api();
    let cases = [
        (
            json!({"chat_id": USER, "text": ""}),
            "Bad Request: message text is empty",
        ),
        (
            json!({"chat_id": USER, "text": "x".repeat(4097)}),
            "Bad Request: message is too long",
        ),
        (json!({"text": "hi"}), "Bad Request: chat_id is empty"),
        (
            json!({"chat_id": USER, "text": "hi", "reply_markup": {"inline_keyboard": [[{"text": "b", "callback_data": "x".repeat(65)}]]}}),
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            json!({"chat_id": USER, "text": "hi", "reply_markup": {"inline_keyboard": [[{"text": "b"}]]}}),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            json!({"chat_id": USER, "text": "hi", "parse_mode": "BBCode"}),
            "Bad Request: unsupported parse_mode",
        ),
    ];
    for (body, description) in cases {
        let (status, reply) = api.call("sendMessage", body).await;
        assert_eq!(
            (status, reply["description"].as_str()),
            (400, Some(description))
        );
        assert_eq!(reply["error_code"], 400);
    }
    assert_eq!(api.tg.sent_count(), 0);
}

#[tokio::test]
async fn edits_follow_the_message_rules() {
    let api = api();
    let (_, sent) = api
        .call(
            "sendMessage",
            json!({"chat_id": USER, "text": "Choose", "reply_markup": keyboard()}),
        )
        .await;
    let id = sent["result"]["message_id"].as_i64().unwrap();
    assert_eq!(sent["result"]["reply_markup"], keyboard());

    let edit = |text: &str, markup: Option<Value>| {
        let mut body = json!({"chat_id": USER, "message_id": id, "text": text});
        if let Some(markup) = markup {
            body["reply_markup"] = markup;
        }
        api.call("editMessageText", body)
    };
    let (status, body) = edit("Choose", Some(keyboard())).await;
    assert_eq!(status, 400);
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .starts_with("Bad Request: message is not modified")
    );
    // Editing without a keyboard removes it.
    let (status, body) = edit("Paid", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["text"], "Paid");
    assert!(body["result"].get("reply_markup").is_none());
    assert!(body["result"]["edit_date"].is_i64());

    let user_message = api.tg.push_message(USER, "hello");
    assert_eq!(user_message, 1);
    let (status, body) = api
        .call(
            "editMessageText",
            json!({"chat_id": USER, "message_id": id + 1, "text": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: message can't be edited"))
    );
    let (status, body) = api
        .call(
            "editMessageText",
            json!({"chat_id": USER, "message_id": 99, "text": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: message to edit not found"))
    );
}

// ---------------------------------------------------------------------------------------------
// Updates

#[tokio::test]
async fn get_updates_confirms_older_updates_with_offset() {
    let api = api();
    let first = api.tg.push_message(USER, "/start ref_7");
    let second = api.tg.push_callback(USER, 1, "buy:30:xtr");
    assert_eq!(second, first + 1);

    let (_, body) = api.call("getUpdates", json!({})).await;
    let updates = body["result"].as_array().unwrap();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0]["message"]["text"], "/start ref_7");
    assert_eq!(
        updates[0]["message"]["entities"],
        json!([{"type": "bot_command", "offset": 0, "length": 6}])
    );
    assert_eq!(updates[1]["callback_query"]["data"], "buy:30:xtr");

    // Without a higher offset nothing is confirmed; `limit` caps the batch.
    let (_, body) = api.call("getUpdates", json!({"limit": 1})).await;
    assert_eq!(body["result"][0]["update_id"], first);
    assert_eq!(body["result"].as_array().unwrap().len(), 1);

    let (_, body) = api.call("getUpdates", json!({"offset": first + 1})).await;
    assert_eq!(body["result"][0]["update_id"], second);
    let (_, body) = api.call("getUpdates", json!({"offset": second + 1})).await;
    assert_eq!(body["result"], json!([]));
    assert!(api.tg.pending_updates().is_empty());

    // A pushed update keeps its own id; the next assigned one follows it.
    let id = api
        .tg
        .push_update(json!({"update_id": 500, "message": {"message_id": 9}}));
    assert_eq!(id, 500);
    assert_eq!(api.tg.push_message(USER, "x"), 501);
}

#[tokio::test]
async fn hand_made_updates_make_their_messages_known() {
    let api = api();
    let bot_message = json!({"message_id": 40, "from": {"id": BOT_ID, "is_bot": true, "first_name": "b"},
                             "chat": {"id": USER, "type": "private", "first_name": "u"},
                             "date": 1, "text": "Choose"});
    api.tg.push_update(json!({"callback_query": {
        "id": "q1", "from": api.tg.user_json(USER), "chat_instance": "1", "data": "x",
        "message": bot_message,
    }}));
    let (status, body) = api
        .call(
            "editMessageText",
            json!({"chat_id": USER, "message_id": 40, "text": "Chosen"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        api.call("answerCallbackQuery", json!({"callback_query_id": "q1"}))
            .await
            .0,
        200
    );
    // New messages in that chat continue after the known ids.
    let (_, body) = api.send(USER, "next").await;
    assert_eq!(body["result"]["message_id"], 41);
}

#[tokio::test]
async fn long_poll_wakes_as_soon_as_an_update_is_pushed() {
    let api = api();
    let started = Instant::now();
    // A poll that waits up to a minute must come back once the update is there, not at its end.
    let poll = tokio::time::timeout(
        Duration::from_secs(30),
        api.call("getUpdates", json!({"timeout": 60})),
    );
    let push = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        api.tg.push_message(USER, "hi")
    };
    let (polled, pushed) = tokio::join!(poll, push);
    let (status, body) = polled.expect("the long poll woke up before its timeout");
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["update_id"], pushed);
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    // Short polling answers, also with nothing to deliver.
    let (_, body) = api
        .call("getUpdates", json!({"offset": pushed + 1, "timeout": 0}))
        .await;
    assert_eq!(body["result"], json!([]));
}

#[tokio::test]
async fn a_newer_poll_ends_the_older_one_with_409() {
    let api = api();
    let older = api.call("getUpdates", json!({"timeout": 10}));
    let newer = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        api.call("getUpdates", json!({"timeout": 0})).await
    };
    let ((status, body), (newer_status, _)) = tokio::join!(older, newer);
    assert_eq!(newer_status, 200);
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
}

#[tokio::test]
async fn allowed_updates_filters_what_polling_delivers() {
    let api = api();
    api.tg.push_message(USER, "hi");
    api.tg.push_callback(USER, 1, "x");
    api.tg
        .push_update(json!({"chat_member": {"chat": {"id": -5, "type": "group", "title": "g"}}}));
    // By default chat_member is not delivered.
    let (_, body) = api.call("getUpdates", json!({})).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 2);
    let (_, body) = api
        .call("getUpdates", json!({"allowed_updates": ["callback_query"]}))
        .await;
    let updates = body["result"].as_array().unwrap();
    assert_eq!(updates.len(), 1);
    assert!(updates[0].get("callback_query").is_some());
}

#[tokio::test]
async fn get_updates_is_409_while_a_webhook_is_set() {
    let api = api();
    let (status, body) = api
        .call(
            "setWebhook",
            json!({"url": "https://shop.example.com/telegram/webhook", "secret_token": "s3cr3t_-X",
                   "allowed_updates": ["message", "callback_query", "pre_checkout_query"],
                   "max_connections": 10, "drop_pending_updates": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["description"], "Webhook was set");
    let webhook = api.tg.webhook().expect("webhook set");
    assert_eq!(webhook.url, "https://shop.example.com/telegram/webhook");
    assert_eq!(webhook.secret_token.as_deref(), Some("s3cr3t_-X"));
    assert_eq!(webhook.max_connections, 10);
    assert!(webhook.drop_pending_updates);
    assert_eq!(
        webhook.allowed_updates.as_deref(),
        Some(
            &[
                "message".to_owned(),
                "callback_query".into(),
                "pre_checkout_query".into()
            ][..]
        )
    );

    api.tg.push_message(USER, "hi");
    let (_, body) = api.call("getWebhookInfo", json!({})).await;
    assert_eq!(body["result"]["url"], webhook.url);
    assert_eq!(body["result"]["pending_update_count"], 1);

    let (status, body) = api.call("getUpdates", json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    );

    let (status, body) = api.call("deleteWebhook", json!({})).await;
    assert_eq!((status, body["result"].clone()), (200, json!(true)));
    assert!(api.tg.webhook().is_none());
    let (status, body) = api.call("getUpdates", json!({})).await;
    assert_eq!((status, body["result"].as_array().unwrap().len()), (200, 1));
}

#[tokio::test]
async fn webhooks_need_https_on_an_allowed_port() {
    let api = api();
    for (url, description) in [
        (
            "http://shop.example.com/hook",
            "Bad Request: bad webhook: HTTPS url must be provided for webhook",
        ),
        (
            "https://shop.example.com:8080/hook",
            "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
        ),
    ] {
        let (status, body) = api.call("setWebhook", json!({ "url": url })).await;
        assert_eq!(
            (status, body["description"].as_str()),
            (400, Some(description))
        );
    }
    let (status, _) = api
        .call(
            "setWebhook",
            json!({"url": "https://shop.example.com:8443/hook"}),
        )
        .await;
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------------------------
// Faults and limits

#[tokio::test]
async fn a_blocked_chat_answers_403() {
    let api = api();
    api.tg.block_chat(USER);
    let (status, body) = api.send(USER, "hi").await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    );
    let (status, _) = api.send(USER + 1, "hi").await;
    assert_eq!(status, 200);
    assert_eq!(api.tg.messages_to(USER).len(), 0);
    api.tg.unblock_chat(USER);
    assert_eq!(api.send(USER, "hi").await.0, 200);
}

/// Every accepted message has at most `limit - 1` others within the second after it.
fn assert_window(at: &[Instant], limit: usize) {
    for (i, start) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        assert!(
            within <= limit,
            "{within} sends within a second of send {i}"
        );
    }
}

#[tokio::test]
async fn global_limit_answers_429_with_retry_after_and_keeps_the_window() {
    let api = api();
    api.tg.set_global_limit(10);
    let mut retry_after = Vec::new();
    for i in 0..30 {
        let (status, body) = api.send(1000 + i, "news").await;
        if status == 429 {
            let seconds = body["parameters"]["retry_after"].as_u64().unwrap();
            assert!(seconds >= 1);
            assert_eq!(
                body["description"],
                format!("Too Many Requests: retry after {seconds}")
            );
            retry_after.push(seconds);
        } else {
            assert_eq!(status, 200);
        }
    }
    assert_eq!(api.tg.sent_count(), 10);
    assert_eq!(retry_after.len(), 20);
    assert_eq!(api.tg.count_429(), 20);

    // Waiting as told frees the window.
    tokio::time::sleep(Duration::from_secs(retry_after[0])).await;
    assert_eq!(api.send(2000, "news").await.0, 200);
    let at: Vec<Instant> = api.tg.sent_messages().iter().map(|m| m.at).collect();
    assert_eq!(at.len(), 11);
    assert_window(&at, 10);
}

#[tokio::test]
async fn concurrent_sends_never_exceed_the_global_limit() {
    let api = api();
    api.tg.set_global_limit(10);
    let sends = (0..30).map(|i| api.send(3000 + i, "news"));
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20);
    let at: Vec<Instant> = api.tg.sent_messages().iter().map(|m| m.at).collect();
    assert_window(&at, 10);
}

#[tokio::test]
async fn per_chat_limit_applies_to_each_chat_alone() {
    let api = api();
    api.tg.set_per_chat_limit(1);
    assert_eq!(api.send(1, "a").await.0, 200);
    let (status, body) = api.send(1, "b").await;
    assert_eq!(status, 429);
    assert_eq!(body["parameters"]["retry_after"], 1);
    assert_eq!(api.send(2, "a").await.0, 200);
    // Edits count as sends to their chat.
    let (status, _) = api
        .call(
            "editMessageText",
            json!({"chat_id": 2, "message_id": 1, "text": "edited"}),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(api.tg.count_429(), 2);
}

#[tokio::test]
async fn limits_are_telegrams_by_default() {
    let api = Api {
        tg: FakeTelegram::start(),
        http: reqwest::Client::new(),
    };
    // One message a second in a chat.
    assert_eq!(api.send(1, "a").await.0, 200);
    let (status, body) = api.send(1, "b").await;
    assert_eq!(status, 429);
    assert_eq!(body["parameters"]["retry_after"], 1);
    // 30 a second in all (the one above counts).
    let sends = (0..30).map(|i| api.send(100 + i, "news"));
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 29);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1);
    let at: Vec<Instant> = api.tg.sent_messages().iter().map(|m| m.at).collect();
    assert_window(&at, 30);
    assert_eq!(api.tg.count_429(), 2);
}

#[tokio::test]
async fn a_group_takes_twenty_messages_a_minute() {
    let api = api();
    api.tg.set_group_limit(20);
    const GROUP: i64 = -100_123;
    for i in 0..20 {
        let (status, _) = api.send(GROUP, &format!("n{i}")).await;
        assert_eq!(status, 200, "message {i}");
    }
    let (status, body) = api.send(GROUP, "one too many").await;
    assert_eq!(status, 429);
    let wait = body["parameters"]["retry_after"].as_u64().unwrap();
    assert!((55..=60).contains(&wait), "the minute frees up in {wait} s");
    // A private chat is not a group.
    for i in 0..21 {
        assert_eq!(api.send(7000 + i, "hi").await.0, 200);
    }
    assert_eq!(api.tg.count_429(), 1);
}

#[tokio::test]
async fn flood_next_answers_429_then_recovers() {
    let api = api();
    api.tg.flood_next(2, 7);
    for _ in 0..2 {
        let (status, body) = api.send(USER, "hi").await;
        assert_eq!(status, 429);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7",
                   "parameters": {"retry_after": 7}})
        );
    }
    // Only send* methods are flooded.
    assert_eq!(api.call("getMe", json!({})).await.0, 200);
    assert_eq!(api.send(USER, "hi").await.0, 200);
    assert_eq!(api.tg.count_429(), 2);
    assert_eq!(api.tg.sent_count(), 1);
}

#[tokio::test]
async fn fail_next_answers_the_status_and_applies_nothing() {
    let api = api();
    api.tg.push_message(USER, "hi");
    api.tg.fail_next(2, 502);
    // getUpdates is exempt.
    assert_eq!(api.call("getUpdates", json!({})).await.0, 200);
    let (status, body) = api.send(USER, "hi").await;
    assert_eq!(
        (status, body),
        (
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})
        )
    );
    assert_eq!(api.call("getMe", json!({})).await.0, 502);
    assert_eq!(api.send(USER, "hi").await.0, 200);
    assert_eq!(api.tg.sent_count(), 1);
}

#[tokio::test]
async fn latency_and_time_out_next_delay_answers() {
    let api = api();
    api.tg.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(api.call("getMe", json!({})).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    api.tg.set_latency(Duration::ZERO);

    // A timed-out send was still delivered: the client cannot tell.
    api.tg.time_out_next(1, Duration::from_millis(500));
    let result = api
        .http
        .post(api.method_url("sendMessage"))
        .json(&json!({"chat_id": USER, "text": "maybe"}))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    assert_eq!(api.tg.messages_to(USER).len(), 1);
    assert_eq!(api.send(USER, "fast").await.0, 200);
}

// ---------------------------------------------------------------------------------------------
// Payments and chat members over HTTP

#[tokio::test]
async fn stars_invoices_follow_the_rules() {
    let api = api();
    let invoice = json!({"chat_id": USER, "title": "VPN 30 days", "description": "Access for 30 days",
                         "payload": "order:42", "provider_token": "", "currency": "XTR",
                         "prices": [{"label": "VPN 30 days", "amount": 150}]});
    let (status, body) = api.call("sendInvoice", invoice.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["invoice"]["total_amount"], 150);
    assert_eq!(body["result"]["invoice"]["currency"], "XTR");
    assert_eq!(api.tg.messages_to(USER)[0].text, "VPN 30 days");

    let mut two_prices = invoice.clone();
    two_prices["prices"] = json!([{"label": "a", "amount": 100}, {"label": "b", "amount": 50}]);
    let mut with_provider = invoice.clone();
    with_provider["provider_token"] = "123:LIVE".into();
    let mut fiat_without_provider = invoice.clone();
    fiat_without_provider["currency"] = "RUB".into();
    for (body, description) in [
        (two_prices, "Bad Request: STARS_INVOICE_INVALID"),
        (with_provider, "Bad Request: STARS_INVOICE_INVALID"),
        (
            fiat_without_provider,
            "Bad Request: PAYMENT_PROVIDER_INVALID",
        ),
    ] {
        let (status, reply) = api.call("sendInvoice", body).await;
        assert_eq!(
            (status, reply["description"].as_str()),
            (400, Some(description))
        );
    }

    let mut link = invoice.clone();
    link.as_object_mut().unwrap().remove("chat_id");
    link["subscription_period"] = SUBSCRIPTION_PERIOD.into();
    let (status, body) = api.call("createInvoiceLink", link.clone()).await;
    assert_eq!(status, 200);
    let url = body["result"].as_str().unwrap();
    assert!(url.starts_with("https://t.me/$") && url.len() > 20, "{url}");
    assert_eq!(api.tg.invoice_links()[0].url, url);

    link["subscription_period"] = 86_400.into();
    let (status, body) = api.call("createInvoiceLink", link.clone()).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: SUBSCRIPTION_PERIOD_INVALID"))
    );
    link["subscription_period"] = SUBSCRIPTION_PERIOD.into();
    link["prices"] = json!([{"label": "too much", "amount": 10_001}]);
    assert_eq!(api.call("createInvoiceLink", link).await.0, 400);
}

#[tokio::test]
async fn pre_checkout_must_be_answered_in_time_and_once() {
    let api = api();
    api.tg.push_pre_checkout(USER, "XTR", 150, "order:1");
    api.tg.push_pre_checkout(USER, "XTR", 150, "order:2");
    let (_, body) = api.call("getUpdates", json!({})).await;
    let ids: Vec<String> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["pre_checkout_query"]["id"].as_str().unwrap().to_owned())
        .collect();

    let answer = |id: &str| {
        api.call(
            "answerPreCheckoutQuery",
            json!({"pre_checkout_query_id": id, "ok": true}),
        )
    };
    assert_eq!(answer(&ids[0]).await.0, 200);
    let (status, body) = answer(&ids[0]).await;
    assert_eq!(status, 400, "a second answer: {body}");
    // Past the deadline (Telegram's 10 s, here cut to 50 ms once the first answer is in: a 50 ms
    // deadline from the start was missed by that answer on a busy machine) the payment is lost.
    api.tg.set_pre_checkout_timeout(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(60)).await;
    let (status, body) = answer(&ids[1]).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (
            400,
            Some(
                "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        )
    );
    let answers = api.tg.pre_checkout_answers();
    assert_eq!(answers.len(), 2);
    assert!(answers[0].ok && answers[0].in_time);
    assert!(!answers[1].in_time);

    let (status, body) = api
        .call(
            "answerPreCheckoutQuery",
            json!({"pre_checkout_query_id": "unknown", "ok": false}),
        )
        .await;
    assert_eq!(status, 400, "ok=false needs an error_message: {body}");
}

#[tokio::test]
async fn refunds_push_refunded_payment_once() {
    let api = api();
    let payment = StarPayment::new(150, "order:9");
    let charge = payment.telegram_payment_charge_id.clone();
    api.tg.push_successful_payment(USER, &payment);
    let refund = json!({"user_id": USER, "telegram_payment_charge_id": charge});
    let (status, body) = api.call("refundStarPayment", refund.clone()).await;
    assert_eq!((status, body["result"].clone()), (200, json!(true)));
    let (status, body) = api.call("refundStarPayment", refund).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: CHARGE_ALREADY_REFUNDED"))
    );
    let (status, _) = api
        .call(
            "refundStarPayment",
            json!({"user_id": USER, "telegram_payment_charge_id": "nope"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(api.tg.charge(&charge).unwrap().refunded);

    let (_, body) = api.call("getUpdates", json!({})).await;
    let updates = body["result"].as_array().unwrap();
    assert_eq!(updates.len(), 2);
    assert_eq!(
        updates[0]["message"]["successful_payment"]["telegram_payment_charge_id"],
        charge
    );
    assert_eq!(
        updates[1]["message"]["refunded_payment"]["telegram_payment_charge_id"],
        charge
    );
    let (_, body) = api.call("getMyStarBalance", json!({})).await;
    assert_eq!(body["result"]["amount"], 0);
}

#[tokio::test]
async fn chat_member_status_is_configurable() {
    let api = api();
    api.tg.set_chat_member_status("@VPN_news", USER, "member");
    api.tg.set_chat_member_status("-1001234", USER, "kicked");
    let api = &api;
    let status_of = |chat: Value| async move {
        let (code, body) = api
            .call("getChatMember", json!({"chat_id": chat, "user_id": USER}))
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["result"]["user"]["id"], USER);
        body["result"]["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status_of(json!("@vpn_news")).await, "member");
    assert_eq!(status_of(json!(-1001234)).await, "kicked");
    assert_eq!(status_of(json!("@other")).await, "left");
}

// ---------------------------------------------------------------------------------------------
// teloxide 0.17 against the fake

#[tokio::test]
async fn teloxide_sends_html_with_a_keyboard_and_edits_it() {
    let api = api();
    let bot = api.bot();
    let markup = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback(
        "30 days — 150 ⭐",
        "buy:30:xtr",
    )]]);
    let message = bot
        .send_message(ChatId(USER), "<b>Choose</b> a plan")
        .parse_mode(ParseMode::Html)
        .reply_markup(markup.clone())
        .await
        .expect("sendMessage");
    assert_eq!(message.chat.id, ChatId(USER));
    assert_eq!(message.text(), Some("Choose a plan"));
    assert_eq!(message.entities().map(<[_]>::len), Some(1));
    assert_eq!(message.reply_markup(), Some(&markup));
    let sent = &api.tg.sent_messages()[0];
    assert_eq!(sent.text, "<b>Choose</b> a plan");
    assert_eq!(sent.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(sent.reply_markup.as_ref(), Some(&keyboard()));

    let edited = bot
        .edit_message_text(ChatId(USER), message.id, "Creating your order…")
        .await
        .expect("editMessageText");
    assert_eq!(edited.id, message.id);
    assert_eq!(edited.text(), Some("Creating your order…"));
    assert!(edited.edit_date().is_some());
    let error = bot
        .edit_message_text(ChatId(USER), message.id, "Creating your order…")
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        RequestError::Api(ApiError::MessageNotModified)
    ));
}

#[tokio::test]
async fn teloxide_polls_updates_and_answers_a_callback() {
    let api = api();
    let bot = api.bot();
    api.tg.push_message(USER, "/start");
    api.tg.push_callback(USER, 1, "buy:30:xtr");
    let updates = bot.get_updates().timeout(1).await.expect("getUpdates");
    assert_eq!(updates.len(), 2);
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("a message: {:?}", updates[0].kind);
    };
    assert_eq!(message.text(), Some("/start"));
    assert_eq!(
        message.from.as_ref().map(|u| u.id),
        Some(UserId(USER as u64))
    );
    let UpdateKind::CallbackQuery(query) = &updates[1].kind else {
        panic!("a callback query: {:?}", updates[1].kind);
    };
    assert_eq!(query.data.as_deref(), Some("buy:30:xtr"));
    bot.answer_callback_query(query.id.clone())
        .text("One moment…")
        .await
        .expect("answerCallbackQuery");
    let again = bot.answer_callback_query(query.id.clone()).await;
    assert!(matches!(again, Err(RequestError::Api(_))));
    let bogus = bot
        .answer_callback_query(CallbackQueryId("bogus".into()))
        .await;
    assert!(bogus.is_err());

    // The callback's message (unknown to the fake) became editable.
    let message_id = query.message.as_ref().map(|m| m.id()).expect("message");
    assert_eq!(message_id, MessageId(1));
    let offset = updates[1].id.as_offset();
    let next = bot.get_updates().offset(offset).timeout(0).await.unwrap();
    assert!(next.is_empty());
}

#[tokio::test]
async fn teloxide_sells_for_stars() {
    let api = api();
    let bot = api.bot();
    let message = bot
        .send_invoice(
            ChatId(USER),
            "VPN 30 days",
            "Access for 30 days, 1 device",
            "order:42",
            "XTR",
            [LabeledPrice::new("VPN 30 days", 150)],
        )
        .await
        .expect("sendInvoice");
    let invoice = message.invoice().expect("an invoice message");
    assert_eq!(
        (invoice.currency.as_str(), invoice.total_amount),
        ("XTR", 150)
    );
    let call = &api.tg.calls_to("sendInvoice")[0];
    assert!(call.params.get("provider_token").is_none());

    let link = bot
        .create_invoice_link(
            "VPN monthly",
            "Renews every 30 days",
            "sub:42",
            "XTR",
            [LabeledPrice::new("VPN monthly", 150)],
        )
        .subscription_period(Seconds::from_seconds(SUBSCRIPTION_PERIOD as u32))
        .await
        .expect("createInvoiceLink");
    assert!(link.starts_with("https://t.me/$"), "{link}");
    assert_eq!(
        api.tg.invoice_links()[0].params["subscription_period"],
        SUBSCRIPTION_PERIOD
    );

    api.tg.push_pre_checkout(USER, "XTR", 150, "sub:42");
    let updates = bot.get_updates().await.expect("getUpdates");
    let UpdateKind::PreCheckoutQuery(query) = &updates[0].kind else {
        panic!("a pre-checkout query: {:?}", updates[0].kind);
    };
    assert_eq!(query.invoice_payload, "sub:42");
    bot.answer_pre_checkout_query(query.id.clone(), true)
        .await
        .expect("answerPreCheckoutQuery");
    assert!(
        bot.answer_pre_checkout_query(PreCheckoutQueryId("nope".into()), true)
            .await
            .is_err()
    );

    let expires = chrono::Utc::now().timestamp() + SUBSCRIPTION_PERIOD;
    let payment = StarPayment::subscription(150, "sub:42", expires, true);
    api.tg.push_successful_payment(USER, &payment);
    let offset = updates[0].id.as_offset();
    let updates = bot.get_updates().offset(offset).await.expect("getUpdates");
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("a message: {:?}", updates[0].kind);
    };
    let paid = message.successful_payment().expect("successful_payment");
    assert!(paid.is_first_recurring && paid.is_recurring);
    assert_eq!(
        paid.subscription_expiration_date.map(|d| d.timestamp()),
        Some(expires)
    );
    let charge = paid.telegram_payment_charge_id.clone();
    assert_eq!(charge.0, payment.telegram_payment_charge_id);

    bot.edit_user_star_subscription(UserId(USER as u64), charge.clone(), true)
        .await
        .expect("editUserStarSubscription");
    assert!(api.tg.charge(&charge.0).unwrap().subscription_canceled);
    let transactions = bot
        .get_star_transactions()
        .await
        .expect("getStarTransactions");
    assert_eq!(transactions.transactions.len(), 1);
    assert_eq!(transactions.transactions[0].id, charge);

    bot.refund_star_payment(UserId(USER as u64), charge.clone())
        .await
        .expect("refundStarPayment");
    let offset = updates[0].id.as_offset();
    let updates = bot.get_updates().offset(offset).await.expect("getUpdates");
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("a message: {:?}", updates[0].kind);
    };
    let MessageKind::RefundedPayment(refunded) = &message.kind else {
        panic!("a refunded payment: {:?}", message.kind);
    };
    assert_eq!(refunded.refunded_payment.telegram_payment_charge_id, charge);
    let again = bot
        .refund_star_payment(UserId(USER as u64), TelegramTransactionId(charge.0.clone()))
        .await;
    assert!(again.is_err());
    let balance = bot.get_my_star_balance().await.expect("getMyStarBalance");
    assert_eq!(balance.amount, 0);
}

#[tokio::test]
async fn teloxide_reads_the_bot_commands_members_and_webhook() {
    let api = api();
    let bot = api.bot();
    let me = bot.get_me().await.expect("getMe");
    assert_eq!(me.username(), BOT_USERNAME);
    assert_eq!(me.id, UserId(BOT_ID as u64));

    bot.set_my_commands([
        BotCommand::new("start", "Start"),
        BotCommand::new("paysupport", "Payment support"),
    ])
    .await
    .expect("setMyCommands");
    assert_eq!(
        api.tg.commands(),
        [
            ("start".to_owned(), "Start".to_owned()),
            ("paysupport".to_owned(), "Payment support".to_owned())
        ]
    );
    let bad = bot.set_my_commands([BotCommand::new("Start", "x")]).await;
    assert!(bad.is_err());

    api.tg.set_chat_member_status("@vpn_news", USER, "member");
    api.tg
        .set_chat_member_status("@vpn_news", USER + 1, "kicked");
    api.tg
        .set_chat_member_status("@vpn_news", USER + 2, "administrator");
    api.tg
        .set_chat_member_status("@vpn_news", USER + 3, "restricted");
    let channel = || Recipient::ChannelUsername("@vpn_news".into());
    let member = |id: i64| bot.get_chat_member(channel(), UserId(id as u64));
    assert!(member(USER).await.expect("member").is_member());
    assert!(member(USER + 1).await.expect("kicked").is_banned());
    assert!(member(USER + 2).await.expect("admin").is_administrator());
    assert!(member(USER + 3).await.expect("restricted").is_restricted());
    assert!(member(USER + 4).await.expect("left").is_left());

    let url: reqwest::Url = "https://shop.example.com/telegram/webhook".parse().unwrap();
    bot.set_webhook(url.clone())
        .secret_token("s3cr3t")
        .allowed_updates([
            AllowedUpdate::Message,
            AllowedUpdate::CallbackQuery,
            AllowedUpdate::PreCheckoutQuery,
        ])
        .drop_pending_updates(true)
        .await
        .expect("setWebhook");
    let webhook = api.tg.webhook().unwrap();
    assert_eq!(webhook.secret_token.as_deref(), Some("s3cr3t"));
    assert_eq!(webhook.allowed_updates.map(|a| a.len()), Some(3));
    let info = bot.get_webhook_info().await.expect("getWebhookInfo");
    assert_eq!(info.url, Some(url));
    assert!(
        bot.get_updates().await.is_err(),
        "409 while a webhook is set"
    );
    bot.delete_webhook().await.expect("deleteWebhook");
    let info = bot.get_webhook_info().await.expect("getWebhookInfo");
    assert_eq!(info.url, None);
    bot.get_updates()
        .await
        .expect("getUpdates after deleteWebhook");
}

#[tokio::test]
async fn teloxide_uploads_a_photo_from_memory_as_multipart() {
    let api = api();
    let bot = api.bot();
    let png = vec![0x89u8; 2048];
    let message = bot
        .send_photo(ChatId(USER), InputFile::memory(png).file_name("qr.png"))
        .caption("Scan the <b>QR</b>")
        .parse_mode(ParseMode::Html)
        .await
        .expect("sendPhoto");
    assert!(message.photo().is_some_and(|p| !p.is_empty()));
    assert_eq!(message.caption(), Some("Scan the QR"));
    let call = &api.tg.calls_to("sendPhoto")[0];
    assert_eq!(call.params["photo"]["file_name"], "qr.png");
    assert_eq!(call.params["photo"]["size"], 2048);
    assert_eq!(call.params["chat_id"], USER);
    assert_eq!(api.tg.messages_to(USER)[0].text, "Scan the <b>QR</b>");
}

#[tokio::test]
async fn teloxide_maps_flood_and_blocked_errors() {
    let api = api();
    let bot = api.bot();
    api.tg.flood_next(1, 3);
    let error = bot.send_message(ChatId(USER), "hi").await.unwrap_err();
    assert!(
        matches!(error, RequestError::RetryAfter(s) if s == Seconds::from_seconds(3)),
        "{error:?}"
    );
    api.tg.block_chat(USER);
    let error = bot.send_message(ChatId(USER), "hi").await.unwrap_err();
    assert!(
        matches!(error, RequestError::Api(ApiError::BotBlocked)),
        "{error:?}"
    );
    let wrong = Bot::new("123456:SOMEONE-ELSES").set_api_url(api.tg.url().parse().unwrap());
    let error = wrong.get_me().await.unwrap_err();
    assert!(
        matches!(error, RequestError::Api(ApiError::InvalidToken)),
        "{error:?}"
    );
}

#[tokio::test]
async fn wait_for_messages_returns_once_they_arrive() {
    let api = api();
    let send_later = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        api.send(USER, "one").await;
        api.send(USER, "two").await;
    };
    let wait = api.tg.wait_for_messages(USER, 2, Duration::from_secs(5));
    let (messages, ()) = tokio::join!(wait, send_later);
    assert_eq!(messages.len(), 2);
    let none = api
        .tg
        .wait_for_calls("sendPhoto", 1, Duration::from_millis(20))
        .await;
    assert!(none.is_empty());
}

#[test]
fn records_every_one_of_two_thousand_concurrent_sends() {
    // How fast the fake is belongs to the benches (they broadcast 10,000); here: none is lost.
    const SENDS: i64 = 2_000;
    let tg = FakeTelegram::start();
    // This measures the fake itself, far beyond what Telegram's limits would let through.
    tg.without_limits();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("{}/bot{TOKEN}/sendMessage", tg.url());
    let statuses: Vec<u16> = runtime.block_on(async {
        let http = reqwest::Client::new();
        futures_util::stream::iter(0..SENDS)
            .map(|i| {
                let request = http
                    .post(&url)
                    .json(&json!({"chat_id": 1_000_000 + i, "text": "Maintenance tonight"}));
                async move { request.send().await.map_or(0, |r| r.status().as_u16()) }
            })
            .buffer_unordered(32)
            .collect()
            .await
    });
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(tg.call_count(), SENDS as usize);
    assert_eq!(tg.sent_count(), SENDS as usize);
}
