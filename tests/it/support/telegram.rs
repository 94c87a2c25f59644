//! A fake Telegram Bot API for tests and benches: what a shop bot uses (messages with inline
//! keyboards, callback queries, long polling and webhooks, Stars invoices, refunds and
//! subscriptions) as `shared/reference/telegram-payments.md` describes it, with flood limits, faults
//! on demand and a request recorder. It serves from its own thread and actix System, so any runtime
//! (or none) can drive it. Benches include this file by path, next to `server.rs`.

// Each includer (a test binary, a bench) uses a different subset of this API.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use super::server::{FakeServer, percent_decode};

pub const TOKEN: &str = "123456:TEST-TOKEN";
pub const BOT_ID: i64 = 123456;
pub const BOT_USERNAME: &str = "vpn_shop_test_bot";
pub const BOT_FIRST_NAME: &str = "VPN Shop Test";
/// The only `subscription_period` Telegram accepts (30 days).
pub const SUBSCRIPTION_PERIOD: i64 = 2_592_000;
/// Largest price of a Star subscription.
pub const MAX_SUBSCRIPTION_STARS: i64 = 10_000;

/// Telegram's published flood limits (Bot FAQ, `shared/reference/telegram-payments.md` §4), which
/// the fake enforces unless a test turns one off (and says why): messages per second overall,
/// per second in one chat, and per minute in one group (a negative chat id).
pub const GLOBAL_LIMIT: u32 = 30;
pub const PER_CHAT_LIMIT: u32 = 1;
pub const GROUP_LIMIT_PER_MINUTE: u32 = 20;

/// Methods that post or edit a message: `flood_next` and the rate limits apply to them.
pub const SEND_METHODS: [&str; 6] = [
    "sendMessage",
    "sendPhoto",
    "sendInvoice",
    "sendDocument",
    "copyMessage",
    "editMessageText",
];

const WEBHOOK_CONFLICT: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
const POLL_CONFLICT: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const BLOCKED: &str = "Forbidden: bot was blocked by the user";
const QUERY_INVALID: &str = "query is too old and response timeout expired or query ID is invalid";
const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
/// `getUpdates` without `allowed_updates` (or with `[]`) delivers every type but these.
const OPT_IN_UPDATES: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// The methods this fake implements; any other name answers 404 like an unknown method.
const METHODS: [&str; 34] = [
    "getMe",
    "logOut",
    "close",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "sendInvoice",
    "copyMessage",
    "createForumTopic",
    "editMessageText",
    "editMessageReplyMarkup",
    "deleteMessage",
    "sendChatAction",
    "answerCallbackQuery",
    "answerPreCheckoutQuery",
    "createInvoiceLink",
    "refundStarPayment",
    "editUserStarSubscription",
    "getStarTransactions",
    "getMyStarBalance",
    "getChatMember",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "setChatMenuButton",
    "setMyDescription",
    "setMyShortDescription",
    "setMyName",
    "getMyName",
    "getMyDescription",
];

/// Form and multipart values that stay strings; any other value that parses as JSON is stored
/// parsed (`"42"` → 42, a `reply_markup` JSON string → object), as the Bot API reads them by type.
const STRING_FIELDS: [&str; 33] = [
    "text",
    "caption",
    "parse_mode",
    "title",
    "description",
    "short_description",
    "name",
    "payload",
    "provider_token",
    "provider_data",
    "currency",
    "start_parameter",
    "callback_query_id",
    "pre_checkout_query_id",
    "shipping_query_id",
    "inline_query_id",
    "inline_message_id",
    "error_message",
    "url",
    "photo_url",
    "secret_token",
    "ip_address",
    "data",
    "telegram_payment_charge_id",
    "photo",
    "document",
    "action",
    "language_code",
    "message_effect_id",
    "business_connection_id",
    "emoji",
    "sticker",
    "video",
];

/// One request as it reached the fake.
#[derive(Clone, Debug)]
pub struct Call {
    /// Canonical name (`sendMessage` even if called as `sendmessage`); the raw path segment for
    /// unknown methods.
    pub method: String,
    /// Query and body merged into one object whatever the encoding: JSON as sent; form and
    /// multipart values typed (see `STRING_FIELDS`), JSON-in-a-part parsed, uploaded files as
    /// `{"file_name", "size", "content_type"}` (with `attach://` references resolved).
    pub params: Value,
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
    /// The envelope answered.
    pub response: Value,
}

/// A message the bot posted successfully (sendMessage, sendPhoto, sendDocument, sendInvoice,
/// copyMessage).
#[derive(Clone, Debug)]
pub struct SentMessage {
    pub method: String,
    pub chat_id: i64,
    pub message_id: i64,
    /// `text`, `caption`, or an invoice's `title`, as sent (tags and escapes included); "" if none.
    pub text: String,
    pub parse_mode: Option<String>,
    /// As sent (any keyboard type).
    pub reply_markup: Option<Value>,
    pub params: Value,
    /// When it was accepted (the instant the rate limits counted).
    pub at: Instant,
}

/// What `setWebhook` set.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    pub url: String,
    pub secret_token: Option<String>,
    pub allowed_updates: Option<Vec<String>>,
    pub max_connections: u32,
    pub drop_pending_updates: bool,
    pub ip_address: Option<String>,
}

/// A Stars payment as `push_successful_payment` delivers it.
#[derive(Clone, Debug, PartialEq)]
pub struct StarPayment {
    pub total_amount: u32,
    pub invoice_payload: String,
    pub telegram_payment_charge_id: String,
    /// Unix time; set for subscription payments.
    pub subscription_expiration_date: Option<i64>,
    pub is_recurring: bool,
    pub is_first_recurring: bool,
}

impl StarPayment {
    /// A one-off payment with a fresh charge id.
    pub fn new(total_amount: u32, invoice_payload: &str) -> StarPayment {
        StarPayment {
            total_amount,
            invoice_payload: invoice_payload.to_owned(),
            telegram_payment_charge_id: format!("stxCHARGE{}", random_token(24)),
            subscription_expiration_date: None,
            is_recurring: false,
            is_first_recurring: false,
        }
    }

    /// A subscription payment (the first one when `first`, a renewal otherwise) that runs until
    /// `expiration` (unix time).
    pub fn subscription(
        total_amount: u32,
        invoice_payload: &str,
        expiration: i64,
        first: bool,
    ) -> StarPayment {
        StarPayment {
            subscription_expiration_date: Some(expiration),
            is_recurring: true,
            is_first_recurring: first,
            ..StarPayment::new(total_amount, invoice_payload)
        }
    }
}

/// A charge the fake knows of (from `push_successful_payment`).
#[derive(Clone, Debug, PartialEq)]
pub struct StarCharge {
    pub user_id: i64,
    pub payment: StarPayment,
    pub refunded: bool,
    /// Set by `editUserStarSubscription`.
    pub subscription_canceled: bool,
}

/// An `answerPreCheckoutQuery` for a known query.
#[derive(Clone, Debug)]
pub struct PreCheckoutAnswer {
    pub query_id: String,
    pub ok: bool,
    pub error_message: Option<String>,
    /// Answered within the pre-checkout timeout (10 s unless `set_pre_checkout_timeout`); a late
    /// answer gets the "query is too old" error and the payment fails.
    pub in_time: bool,
    pub at: Instant,
}

/// A link `createInvoiceLink` returned.
#[derive(Clone, Debug)]
pub struct InvoiceLink {
    pub url: String,
    pub params: Value,
}

/// The running fake; stops (bounded) when dropped.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeTelegram {
    /// Binds 127.0.0.1 on a random port and returns once the server is listening.
    pub fn start() -> FakeTelegram {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            changed: Notify::new(),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = FakeServer::start("fake-telegram", move |app| {
            app.app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 << 20))
                .default_service(web::to(serve));
        });
        FakeTelegram { shared, server }
    }

    /// `http://127.0.0.1:PORT`: the Bot API base (methods live at `{url}/bot{TOKEN}/{method}`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Runs `f` on the state, then wakes long polls and waiters.
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.state());
        self.shared.changed.notify_waiters();
        out
    }

    // -----------------------------------------------------------------------------------------
    // Recorder

    /// Every request in the order it was answered (a long poll is recorded when it returns).
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Calls of one method (case-insensitive).
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method))
            .cloned()
            .collect()
    }

    pub fn call_count(&self) -> usize {
        self.state().calls.len()
    }

    /// Forgets the recorded calls, sent messages and the 429 count (not messages, updates, limits).
    pub fn clear_calls(&self) {
        let mut st = self.state();
        st.calls.clear();
        st.sent.clear();
        st.count_429 = 0;
    }

    /// Messages the bot posted or edited successfully, in order.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.state().sent.clone()
    }

    pub fn messages_to(&self, chat_id: i64) -> Vec<SentMessage> {
        self.state()
            .sent
            .iter()
            .filter(|m| m.chat_id == chat_id)
            .cloned()
            .collect()
    }

    pub fn sent_count(&self) -> usize {
        self.state().sent.len()
    }

    /// Answers with status 429, whatever their cause.
    pub fn count_429(&self) -> usize {
        self.state().count_429
    }

    /// Waits (async, on the caller's tokio/actix runtime) until `n` calls of `method` were
    /// answered or `timeout` passed; returns those calls either way.
    pub async fn wait_for_calls(&self, method: &str, n: usize, timeout: Duration) -> Vec<Call> {
        self.wait_for(timeout, || {
            let calls = self.calls_to(method);
            (calls.len() >= n, calls)
        })
        .await
    }

    /// Like `wait_for_calls`, for messages posted to `chat_id`.
    pub async fn wait_for_messages(
        &self,
        chat_id: i64,
        n: usize,
        timeout: Duration,
    ) -> Vec<SentMessage> {
        self.wait_for(timeout, || {
            let messages = self.messages_to(chat_id);
            (messages.len() >= n, messages)
        })
        .await
    }

    async fn wait_for<T>(&self, timeout: Duration, check: impl Fn() -> (bool, T)) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let (done, value) = check();
            if done || tokio::time::Instant::now() >= deadline {
                return value;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Users and updates

    /// Profile used for `id` in updates, chats and chat members (default: first name `User {id}`,
    /// username `user{id}`, language `en`).
    pub fn set_user(&self, id: i64, first_name: &str, username: Option<&str>) {
        let mut user =
            json!({"id": id, "is_bot": false, "first_name": first_name, "language_code": "en"});
        if let Some(username) = username {
            user["username"] = username.into();
        }
        self.state().users.insert(id, user);
    }

    /// The `language_code` of `id`'s Telegram client from now on (IETF tag, e.g. `ru`), as
    /// updates carry it in `from`.
    pub fn set_language(&self, id: i64, language_code: &str) {
        let mut st = self.state();
        let mut user = st.user(id);
        user["language_code"] = language_code.into();
        st.users.insert(id, user);
    }

    /// The `User` object of `id` as updates carry it.
    pub fn user_json(&self, id: i64) -> Value {
        self.state().user(id)
    }

    /// Queues an update for `getUpdates` (assigning the next `update_id` if it has none) and wakes
    /// a waiting long poll. Callback and pre-checkout query ids in it become answerable.
    pub fn push_update(&self, update: Value) -> i64 {
        self.update(|st| st.push(update))
    }

    /// A text message from `from_id` in its private chat with the bot; a leading `/command` gets
    /// its `bot_command` entity.
    pub fn push_message(&self, from_id: i64, text: &str) -> i64 {
        self.update(|st| {
            let content = text_content(text);
            let message = st.user_message(from_id, content);
            st.push(json!({ "message": message }))
        })
    }

    /// A photo (with `caption`) from `from_id` in its private chat with the bot.
    pub fn push_photo(&self, from_id: i64, caption: Option<&str>) -> i64 {
        self.update(|st| {
            let mut content = Map::new();
            content.insert(
                "photo".into(),
                media_json(
                    "photo",
                    &json!({"size": 48_213, "content_type": "image/jpeg"}),
                ),
            );
            if let Some(caption) = caption {
                content.insert("caption".into(), caption.into());
            }
            let message = st.user_message(from_id, content);
            st.push(json!({ "message": message }))
        })
    }

    /// A text message from `from_id` in group `chat_id`, replying to message `reply_to` of that
    /// chat or written in forum topic `thread`; a leading `/command` gets its entity.
    pub fn push_group_message(
        &self,
        chat_id: i64,
        from_id: i64,
        text: &str,
        reply_to: Option<i64>,
        thread: Option<i64>,
    ) -> i64 {
        self.update(|st| {
            let content = text_content(text);
            let message = st.group_message(chat_id, from_id, content, reply_to, thread);
            st.push(json!({ "message": message }))
        })
    }

    /// A text message from `from_id` in its private chat with the bot that replies to message
    /// `reply_to` of that chat (an admin answering a forwarded question).
    pub fn push_reply(&self, from_id: i64, text: &str, reply_to: i64) -> i64 {
        self.update(|st| {
            let mut content = Map::new();
            content.insert("text".into(), text.into());
            if let Some(replied) = st.messages.get(&(from_id, reply_to)) {
                content.insert("reply_to_message".into(), replied.json.clone());
            }
            let message = st.user_message(from_id, content);
            st.push(json!({ "message": message }))
        })
    }

    /// Turns topics on in supergroup `chat_id` (a forum): `createForumTopic` works there and
    /// messages may name a topic.
    pub fn set_forum(&self, chat_id: i64) {
        self.state().forums.entry(chat_id).or_default();
    }

    /// The topics created in forum `chat_id`: (thread id, name).
    pub fn topics(&self, chat_id: i64) -> Vec<(i64, String)> {
        let mut topics: Vec<(i64, String)> = self
            .state()
            .forums
            .get(&chat_id)
            .map(|t| t.iter().map(|(id, name)| (*id, name.clone())).collect())
            .unwrap_or_default();
        topics.sort();
        topics
    }

    /// A press of an inline button with `data` under message `message_id` of the private chat.
    /// A message the fake does not know becomes a known (empty) bot message, so it can be edited.
    pub fn push_callback(&self, from_id: i64, message_id: i64, data: &str) -> i64 {
        self.update(|st| {
            let message = match st.messages.get(&(from_id, message_id)) {
                Some(stored) => stored.json.clone(),
                None => json!({
                    "message_id": message_id, "from": bot_user(), "chat": st.chat(from_id),
                    "date": unix_now(), "text": "",
                }),
            };
            st.next_query += 1;
            let update = json!({"callback_query": {
                "id": format!("{}{:06}", from_id.unsigned_abs(), st.next_query),
                "from": st.user(from_id),
                "message": message,
                "chat_instance": format!("-{}", from_id.unsigned_abs() * 7 + 13),
                "data": data,
            }});
            st.push(update)
        })
    }

    /// A pre-checkout query for an invoice; query id `pcq{n}`. Answer it within the timeout.
    pub fn push_pre_checkout(
        &self,
        from_id: i64,
        currency: &str,
        total_amount: u32,
        invoice_payload: &str,
    ) -> i64 {
        self.update(|st| {
            st.next_query += 1;
            let update = json!({"pre_checkout_query": {
                "id": format!("pcq{}", st.next_query),
                "from": st.user(from_id),
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": invoice_payload,
            }});
            st.push(update)
        })
    }

    /// The `successful_payment` service message of a Stars payment; the charge becomes known for
    /// refunds, subscription edits, `getStarTransactions` and the balance.
    pub fn push_successful_payment(&self, from_id: i64, payment: &StarPayment) -> i64 {
        self.update(|st| {
            st.record_star_payment(from_id, payment);
            let mut paid = json!({
                "currency": "XTR",
                "total_amount": payment.total_amount,
                "invoice_payload": payment.invoice_payload,
                "telegram_payment_charge_id": payment.telegram_payment_charge_id,
                "provider_payment_charge_id": "",
            });
            if let Some(expiration) = payment.subscription_expiration_date {
                paid["subscription_expiration_date"] = expiration.into();
            }
            if payment.is_recurring {
                paid["is_recurring"] = true.into();
            }
            if payment.is_first_recurring {
                paid["is_first_recurring"] = true.into();
            }
            let mut content = Map::new();
            content.insert("successful_payment".into(), paid);
            let message = st.user_message(from_id, content);
            st.push(json!({ "message": message }))
        })
    }

    /// A Stars payment Telegram took (a Star transaction and a known charge) whose update never
    /// reached the bot (e.g. it was confirmed by a long poll just before the shop crashed).
    pub fn record_star_payment_without_update(&self, from_id: i64, payment: &StarPayment) {
        self.state().record_star_payment(from_id, payment);
    }

    /// The `refunded_payment` service message (refundStarPayment of a known charge pushes it
    /// itself); marks a known charge refunded.
    pub fn push_refunded_payment(&self, from_id: i64, payment: &StarPayment) -> i64 {
        self.update(|st| {
            if let Some(charge) = st.charges.get_mut(&payment.telegram_payment_charge_id) {
                charge.refunded = true;
            }
            st.push_refund(from_id, payment)
        })
    }

    /// A `my_chat_member` update for the private chat: `kicked` when the user blocked the bot,
    /// `member` when they unblocked it.
    pub fn push_my_chat_member(&self, user_id: i64, new_status: &str) -> i64 {
        self.update(|st| {
            let old_status = if new_status == "kicked" {
                "member"
            } else {
                "kicked"
            };
            let update = json!({"my_chat_member": {
                "chat": st.chat(user_id),
                "from": st.user(user_id),
                "date": unix_now(),
                "old_chat_member": member_json(bot_user(), old_status),
                "new_chat_member": member_json(bot_user(), new_status),
            }});
            st.push(update)
        })
    }

    /// Updates not yet confirmed by a `getUpdates` offset.
    pub fn pending_updates(&self) -> Vec<Value> {
        self.state().updates.iter().cloned().collect()
    }

    /// What `setWebhook` set; `None` without a webhook.
    pub fn webhook(&self) -> Option<WebhookSettings> {
        self.state().webhook.clone()
    }

    // -----------------------------------------------------------------------------------------
    // Payments and bot settings

    pub fn pre_checkout_answers(&self) -> Vec<PreCheckoutAnswer> {
        self.state().pre_checkout_answers.clone()
    }

    /// How long a pre-checkout query may wait for its answer (Telegram: 10 s).
    pub fn set_pre_checkout_timeout(&self, timeout: Duration) {
        self.state().pre_checkout_timeout = timeout;
    }

    pub fn invoice_links(&self) -> Vec<InvoiceLink> {
        self.state().invoice_links.clone()
    }

    pub fn charge(&self, telegram_payment_charge_id: &str) -> Option<StarCharge> {
        self.state()
            .charges
            .get(telegram_payment_charge_id)
            .cloned()
    }

    /// `(command, description)` of the default scope and language.
    pub fn commands(&self) -> Vec<(String, String)> {
        let st = self.state();
        let Some(Value::Array(commands)) = st.commands.get(&commands_key(None, None)) else {
            return Vec::new();
        };
        commands
            .iter()
            .map(|c| {
                let field = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                (field("command"), field("description"))
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Faults and limits

    /// Every call aimed at this chat answers 403 "Forbidden: bot was blocked by the user".
    pub fn block_chat(&self, chat_id: i64) {
        self.fail_chat(chat_id, 403, BLOCKED);
    }

    pub fn unblock_chat(&self, chat_id: i64) {
        self.state().chat_faults.remove(&chat_id);
    }

    /// Every call aimed at this chat answers `status` with `description`, e.g. 403 "Forbidden:
    /// user is deactivated" or 400 "Bad Request: chat not found".
    pub fn fail_chat(&self, chat_id: i64, status: u16, description: &str) {
        self.state()
            .chat_faults
            .insert(chat_id, (status, description.to_owned()));
    }

    /// `getChatMember(chat, user_id)` answers this status (`creator`, `administrator`, `member`,
    /// `restricted`, `left`, `kicked`). `chat` is `@channel` (any case) or a numeric id. Unset:
    /// `member` in the user's own private chat, `left` elsewhere.
    pub fn set_chat_member_status(&self, chat: &str, user_id: i64, status: &str) {
        let chat = chat_key(&Value::String(chat.to_owned()));
        self.state()
            .members
            .insert((chat, user_id), normalize_status(status).to_owned());
    }

    /// More than `per_second` accepted send* calls within any sliding second → 429 with the
    /// seconds (≥ 1, rounded up) until the window frees up. On by default at Telegram's
    /// [`GLOBAL_LIMIT`]; 0 turns the limit off (a test that does so says why).
    pub fn set_global_limit(&self, per_second: u32) {
        let mut st = self.state();
        st.global_limit = (per_second > 0).then_some(per_second);
        st.global_window.clear();
    }

    /// The same limit per chat (Telegram: about one message per second in a chat; on by default
    /// at [`PER_CHAT_LIMIT`]). 0 turns it off.
    pub fn set_per_chat_limit(&self, per_second: u32) {
        let mut st = self.state();
        st.per_chat_limit = (per_second > 0).then_some(per_second);
        st.chat_windows.clear();
    }

    /// More than `per_minute` accepted send* calls to one group (a negative chat id) within any
    /// sliding minute → 429 (Telegram: 20 a minute; on by default at
    /// [`GROUP_LIMIT_PER_MINUTE`]). 0 turns it off.
    pub fn set_group_limit(&self, per_minute: u32) {
        let mut st = self.state();
        st.group_limit = (per_minute > 0).then_some(per_minute);
        st.group_windows.clear();
    }

    /// Turns every flood limit off: only for a test of something else that must send faster
    /// than Telegram allows (the caller says why).
    pub fn without_limits(&self) {
        self.set_global_limit(0);
        self.set_per_chat_limit(0);
        self.set_group_limit(0);
    }

    /// The next `n` send* calls answer 429 with this `retry_after`, applying nothing.
    pub fn flood_next(&self, n: usize, retry_after: u64) {
        self.state().flood_next = (n, retry_after);
    }

    /// The next `n` calls (any method but getUpdates) answer `status` with an error envelope,
    /// applying nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state().fail_next = (n, status);
    }

    /// The next `n` calls (any method but getUpdates) are applied but answered after `delay`.
    pub fn time_out_next(&self, n: usize, delay: Duration) {
        self.state().time_out_next = (n, delay);
    }

    /// Added to every answer, after the request was applied.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

struct Shared {
    state: Mutex<State>,
    /// Signalled after every answered request and pushed update: wakes long polls and waiters.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test closure must not take every later request down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every method but getUpdates: answered at once, under one lock.
    fn process(&self, route: &Route, params: Params, received: Instant) -> (Reply, Duration) {
        let mut st = self.lock();
        let (name, reply, delay) = match route {
            Route::NotFound(name) => (name.clone(), Reply::error(404, "Not Found"), Duration::ZERO),
            Route::Unauthorized(name) => (
                name.clone(),
                Reply::error(401, "Unauthorized"),
                Duration::ZERO,
            ),
            Route::Method(method) => {
                let (reply, delay) = st.process(method, &params, Instant::now());
                ((*method).to_owned(), reply, delay)
            }
        };
        let delay = delay + st.latency;
        st.record(name, params, &reply, received);
        drop(st);
        self.changed.notify_waiters();
        (reply, delay)
    }

    /// `getUpdates`: a long poll that waits, without holding the lock, until an update is queued,
    /// the timeout passes, or a newer poll or a webhook ends it with 409.
    async fn get_updates(&self, params: Params, received: Instant) -> (Reply, Duration) {
        let poll = {
            let mut st = self.lock();
            st.poll_generation += 1;
            PollParams::parse(&params.values).map(|p| (p, st.poll_generation))
        };
        // Ends an older poll still waiting (Telegram answers it 409).
        self.changed.notify_waiters();
        let reply = match poll {
            Err(reply) => reply,
            Ok((poll, generation)) => {
                let deadline = received + poll.timeout;
                loop {
                    let notified = self.changed.notified();
                    let mut notified = std::pin::pin!(notified);
                    notified.as_mut().enable();
                    if let Some(reply) =
                        self.lock()
                            .poll(&poll, generation, Instant::now() >= deadline)
                    {
                        break reply;
                    }
                    let _ = tokio::time::timeout_at(deadline.into(), notified).await;
                }
            }
        };
        let mut st = self.lock();
        let delay = st.latency;
        st.record("getUpdates".to_owned(), params, &reply, received);
        drop(st);
        self.changed.notify_waiters();
        (reply, delay)
    }
}

enum Route {
    Method(&'static str),
    /// Well-formed but wrong token.
    Unauthorized(String),
    /// Unknown method, malformed token or a path that is no method URL.
    NotFound(String),
}

/// `/bot<token>/<method>` (after any base path). Method names are case-insensitive, as in the
/// Bot API.
fn route_of(path: &str) -> Route {
    let segments: Vec<String> = path.split('/').map(percent_decode).collect();
    let n = segments.len();
    if n < 2 {
        return Route::NotFound(path.to_owned());
    }
    let (bot, method) = (&segments[n - 2], &segments[n - 1]);
    let Some(token) = bot.strip_prefix("bot") else {
        return Route::NotFound(method.clone());
    };
    let known = METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .copied();
    if token != TOKEN {
        let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        let name = known.map_or_else(|| method.clone(), str::to_owned);
        return if well_formed {
            Route::Unauthorized(name)
        } else {
            Route::NotFound(name)
        };
    }
    match known {
        Some(method) => Route::Method(method),
        None => Route::NotFound(method.clone()),
    }
}

async fn serve(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let received = Instant::now();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let route = route_of(req.path());
    let params = parse_params(req.query_string(), &content_type, &body);
    // The state is locked only inside `process`/`get_updates`, never across an await.
    let (reply, delay) = match route {
        Route::Method("getUpdates") => shared.get_updates(params, received).await,
        route => shared.process(&route, params, received),
    };
    if !delay.is_zero() {
        actix_rt::time::sleep(delay).await;
    }
    reply.into_response()
}

struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn ok(result: Value) -> Reply {
        Reply {
            status: 200,
            body: json!({"ok": true, "result": result}),
        }
    }

    /// Success with a `description`, as setWebhook/deleteWebhook answer.
    fn ok_described(result: Value, description: &str) -> Reply {
        Reply {
            status: 200,
            body: json!({"ok": true, "result": result, "description": description}),
        }
    }

    fn error(status: u16, description: &str) -> Reply {
        Reply {
            status,
            body: json!({"ok": false, "error_code": status, "description": description}),
        }
    }

    fn bad_request(what: &str) -> Reply {
        Reply::error(400, &format!("Bad Request: {what}"))
    }

    fn flood(retry_after: u64) -> Reply {
        let mut reply = Reply::error(
            429,
            &format!("Too Many Requests: retry after {retry_after}"),
        );
        reply.body["parameters"] = json!({ "retry_after": retry_after });
        reply
    }

    /// The envelope `fail_next` answers for `status`.
    fn fault(status: u16) -> Reply {
        if status == 429 {
            return Reply::flood(1);
        }
        let description = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            409 => "Conflict",
            413 => "Request Entity Too Large",
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Error",
        };
        Reply::error(status, description)
    }

    fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .content_type("application/json")
            .body(serde_json::to_vec(&self.body).unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// Request parameters

/// The merged parameters of a request, or why the body could not be read.
struct Params {
    values: Map<String, Value>,
    error: Option<String>,
}

/// Query string, then the body by its content type (JSON, urlencoded form or multipart).
fn parse_params(query: &str, content_type: &str, body: &[u8]) -> Params {
    let mut values = Map::new();
    let mut error = None;
    for (k, v) in parse_pairs(query) {
        let v = typed(&k, v);
        values.insert(k, v);
    }
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if body.is_empty() {
        return Params { values, error };
    }
    match mime.as_str() {
        "application/json" => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => values.extend(fields),
            _ => error = Some("can't parse JSON object".to_owned()),
        },
        "application/x-www-form-urlencoded" => {
            for (k, v) in parse_pairs(&String::from_utf8_lossy(body)) {
                let v = typed(&k, v);
                values.insert(k, v);
            }
        }
        "multipart/form-data" => match parse_multipart(content_type, body) {
            Some(parts) => values.extend(multipart_values(parts)),
            None => error = Some("can't parse multipart/form-data body".to_owned()),
        },
        // Like the Bot API, other bodies are ignored.
        _ => {}
    }
    Params { values, error }
}

fn parse_pairs(text: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// A form value by the type the Bot API reads it as.
fn typed(key: &str, value: String) -> Value {
    if STRING_FIELDS.contains(&key) {
        return Value::String(value);
    }
    match serde_json::from_str::<Value>(&value) {
        Ok(parsed) if !parsed.is_string() => parsed,
        _ => Value::String(value),
    }
}

struct FormPart {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<FormPart>> {
    let boundary = content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim_matches('"').to_owned())
    })?;
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut pos = find(body, delimiter.as_bytes(), 0)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Some(parts);
        }
        pos += if body[pos..].starts_with(b"\r\n") {
            2
        } else {
            0
        };
        let headers_end = find(body, b"\r\n\r\n", pos)?;
        let headers = String::from_utf8_lossy(&body[pos..headers_end]);
        let data_start = headers_end + 4;
        let data_end = find(body, next_delimiter.as_bytes(), data_start)?;
        let mut part = FormPart {
            name: String::new(),
            file_name: None,
            content_type: None,
            data: body[data_start..data_end].to_vec(),
        };
        for line in headers.split("\r\n") {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            if header.trim().eq_ignore_ascii_case("content-disposition") {
                for (k, v) in header_params(value) {
                    match k.as_str() {
                        "name" => part.name = v,
                        "filename" => part.file_name = Some(v),
                        _ => {}
                    }
                }
            } else if header.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_owned());
            }
        }
        parts.push(part);
        pos = data_end + next_delimiter.len();
    }
}

/// `form-data; name="a"; filename="b.png"` → [(name, a), (filename, b.png)].
fn header_params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let after = &rest[eq + 1..];
        let (val, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (
                quoted[..end].to_owned(),
                quoted.get(end + 1..).unwrap_or(""),
            )
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key, val));
        rest = remaining;
    }
    out
}

/// Text parts typed like form values; files described and put where `attach://<name>` points.
fn multipart_values(parts: Vec<FormPart>) -> Map<String, Value> {
    let mut values = Map::new();
    let mut files = Map::new();
    for part in parts {
        if let Some(file_name) = part.file_name {
            let mut file = json!({"file_name": file_name, "size": part.data.len()});
            if let Some(content_type) = part.content_type {
                file["content_type"] = content_type.into();
            }
            files.insert(part.name, file);
        } else {
            let text = String::from_utf8_lossy(&part.data).into_owned();
            let value = typed(&part.name, text);
            values.insert(part.name, value);
        }
    }
    for value in values.values_mut() {
        if let Some(name) = value.as_str().and_then(|s| s.strip_prefix("attach://"))
            && let Some(file) = files.remove(name)
        {
            *value = file;
        }
    }
    values.extend(files);
    values
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn p_str<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str)
}

/// A string parameter; numbers are accepted as their text.
fn p_text(p: &Map<String, Value>, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn p_i64(p: &Map<String, Value>, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn p_bool(p: &Map<String, Value>, key: &str) -> Option<bool> {
    match p.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON-serialized parameter: the value, or the JSON inside a string.
fn p_json(p: &Map<String, Value>, key: &str) -> Option<Value> {
    match p.get(key)? {
        Value::Null => None,
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// State and the API

struct StoredMessage {
    from_bot: bool,
    json: Value,
}

struct PreCheckout {
    pushed_at: Instant,
    answered: bool,
}

/// `getUpdates` parameters.
struct PollParams {
    offset: i64,
    limit: usize,
    timeout: Duration,
    allowed_updates: Option<Vec<String>>,
}

impl PollParams {
    fn parse(p: &Map<String, Value>) -> Result<PollParams, Reply> {
        let limit = p_i64(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
        let timeout = p_i64(p, "timeout").unwrap_or(0).max(0) as u64;
        let allowed_updates = match p_json(p, "allowed_updates") {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            Some(_) => return Err(Reply::bad_request("can't parse allowed_updates")),
        };
        Ok(PollParams {
            offset: p_i64(p, "offset").unwrap_or(0),
            limit,
            timeout: Duration::from_secs(timeout),
            allowed_updates,
        })
    }
}

struct State {
    calls: Vec<Call>,
    sent: Vec<SentMessage>,
    count_429: usize,
    /// (chat, message id) → every message of the fake's chats, the bot's and the users'.
    messages: HashMap<(i64, i64), StoredMessage>,
    /// Per chat, shared by both sides as in a private chat.
    last_message_id: HashMap<i64, i64>,
    users: HashMap<i64, Value>,
    /// `@username` (lowercase) → the id given to that channel.
    channels: HashMap<String, i64>,
    /// Supergroups with topics turned on, each with its topics (thread id → name).
    forums: HashMap<i64, HashMap<i64, String>>,
    updates: VecDeque<Value>,
    next_update_id: i64,
    /// The allowed_updates setting (`None`: the default set).
    allowed_updates: Option<Vec<String>>,
    poll_generation: u64,
    webhook: Option<WebhookSettings>,
    next_query: u64,
    /// Callback query id → answered.
    callbacks: HashMap<String, bool>,
    pre_checkouts: HashMap<String, PreCheckout>,
    pre_checkout_timeout: Duration,
    pre_checkout_answers: Vec<PreCheckoutAnswer>,
    invoice_links: Vec<InvoiceLink>,
    charges: HashMap<String, StarCharge>,
    star_transactions: Vec<Value>,
    star_balance: i64,
    commands: HashMap<String, Value>,
    members: HashMap<(String, i64), String>,
    chat_faults: HashMap<i64, (u16, String)>,
    global_limit: Option<u32>,
    per_chat_limit: Option<u32>,
    /// Per minute, in a group chat.
    group_limit: Option<u32>,
    global_window: VecDeque<Instant>,
    chat_windows: HashMap<i64, VecDeque<Instant>>,
    group_windows: HashMap<i64, VecDeque<Instant>>,
    flood_next: (usize, u64),
    fail_next: (usize, u16),
    time_out_next: (usize, Duration),
    latency: Duration,
}

/// What a send method puts into its message.
struct Content {
    fields: Map<String, Value>,
    text: String,
}

impl State {
    /// What a Stars payment leaves at Telegram: a Star transaction, the balance, a known charge.
    fn record_star_payment(&mut self, from_id: i64, payment: &StarPayment) {
        let mut source = json!({
            "type": "user", "transaction_type": "invoice_payment", "user": self.user(from_id),
            "invoice_payload": payment.invoice_payload,
        });
        if payment.subscription_expiration_date.is_some() {
            source["subscription_period"] = SUBSCRIPTION_PERIOD.into();
        }
        self.star_transactions.push(json!({
            "id": payment.telegram_payment_charge_id, "amount": payment.total_amount,
            "date": unix_now(), "source": source,
        }));
        self.star_balance += i64::from(payment.total_amount);
        self.charges.insert(
            payment.telegram_payment_charge_id.clone(),
            StarCharge {
                user_id: from_id,
                payment: payment.clone(),
                refunded: false,
                subscription_canceled: false,
            },
        );
    }

    fn new() -> State {
        State {
            calls: Vec::with_capacity(1024),
            sent: Vec::new(),
            count_429: 0,
            messages: HashMap::new(),
            last_message_id: HashMap::new(),
            users: HashMap::new(),
            channels: HashMap::new(),
            forums: HashMap::new(),
            updates: VecDeque::new(),
            next_update_id: 1,
            allowed_updates: None,
            poll_generation: 0,
            webhook: None,
            next_query: 0,
            callbacks: HashMap::new(),
            pre_checkouts: HashMap::new(),
            pre_checkout_timeout: Duration::from_secs(10),
            pre_checkout_answers: Vec::new(),
            invoice_links: Vec::new(),
            charges: HashMap::new(),
            star_transactions: Vec::new(),
            star_balance: 0,
            commands: HashMap::new(),
            members: HashMap::new(),
            chat_faults: HashMap::new(),
            global_limit: Some(GLOBAL_LIMIT),
            per_chat_limit: Some(PER_CHAT_LIMIT),
            group_limit: Some(GROUP_LIMIT_PER_MINUTE),
            global_window: VecDeque::new(),
            chat_windows: HashMap::new(),
            group_windows: HashMap::new(),
            flood_next: (0, 1),
            fail_next: (0, 500),
            time_out_next: (0, Duration::ZERO),
            latency: Duration::ZERO,
        }
    }

    fn record(&mut self, method: String, params: Params, reply: &Reply, received: Instant) {
        if reply.status == 429 {
            self.count_429 += 1;
        }
        self.calls.push(Call {
            method,
            params: Value::Object(params.values),
            status: reply.status,
            at: received,
            response: reply.body.clone(),
        });
    }

    /// Faults first, then the method. Returns the reply and the extra delay before answering.
    fn process(
        &mut self,
        method: &'static str,
        params: &Params,
        now: Instant,
    ) -> (Reply, Duration) {
        let mut delay = Duration::ZERO;
        if self.time_out_next.0 > 0 {
            self.time_out_next.0 -= 1;
            delay = self.time_out_next.1;
        }
        if self.fail_next.0 > 0 {
            self.fail_next.0 -= 1;
            return (Reply::fault(self.fail_next.1), delay);
        }
        if let Some(error) = &params.error {
            return (Reply::bad_request(error), delay);
        }
        (self.handle(method, &params.values, now), delay)
    }

    fn handle(&mut self, method: &'static str, p: &Map<String, Value>, now: Instant) -> Reply {
        match method {
            "getMe" => Reply::ok(me_json()),
            "setChatMenuButton" => match p_json(p, "menu_button") {
                Some(button) if button["type"] == "web_app" => {
                    match web_app_url(&button["web_app"]) {
                        Ok(()) if button["text"].as_str().is_some_and(|t| !t.is_empty()) => {
                            Reply::ok(json!(true))
                        }
                        Ok(()) => Reply::bad_request("menu button text must be non-empty"),
                        Err(e) => Reply::bad_request(&e),
                    }
                }
                _ => Reply::ok(json!(true)),
            },
            "logOut" | "close" | "setMyDescription" | "setMyShortDescription" | "setMyName" => {
                Reply::ok(json!(true))
            }
            "getMyName" => Reply::ok(json!({ "name": BOT_FIRST_NAME })),
            "getMyDescription" => Reply::ok(json!({ "description": "" })),
            "setWebhook" => self.set_webhook(p),
            "deleteWebhook" => self.delete_webhook(p),
            "getWebhookInfo" => self.webhook_info(),
            "sendMessage" | "sendPhoto" | "sendDocument" | "sendInvoice" | "copyMessage" => {
                self.send(method, p, now)
            }
            "editMessageText" | "editMessageReplyMarkup" => self.edit(method, p, now),
            "createForumTopic" => self.create_forum_topic(p, now),
            "deleteMessage" => self.delete_message(p),
            "sendChatAction" => self.chat_action(p),
            "answerCallbackQuery" => self.answer_callback(p),
            "answerPreCheckoutQuery" => self.answer_pre_checkout(p, now),
            "createInvoiceLink" => self.create_invoice_link(p),
            "refundStarPayment" => self.refund(p),
            "editUserStarSubscription" => self.edit_subscription(p),
            "getStarTransactions" => self.star_transactions(p),
            "getMyStarBalance" => Reply::ok(json!({ "amount": self.star_balance })),
            "getChatMember" => self.chat_member(p),
            "setMyCommands" => self.set_commands(p),
            "getMyCommands" => {
                let key = commands_key(p_json(p, "scope").as_ref(), p_str(p, "language_code"));
                Reply::ok(
                    self.commands
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| json!([])),
                )
            }
            "deleteMyCommands" => {
                let key = commands_key(p_json(p, "scope").as_ref(), p_str(p, "language_code"));
                self.commands.remove(&key);
                Reply::ok(json!(true))
            }
            _ => Reply::error(404, "Not Found"),
        }
    }

    // --- updates ---------------------------------------------------------------------------

    fn push(&mut self, mut update: Value) -> i64 {
        assert!(update.is_object(), "an update is a JSON object: {update}");
        let id = match update.get("update_id").and_then(Value::as_i64) {
            Some(id) => id,
            None => {
                update["update_id"] = self.next_update_id.into();
                self.next_update_id
            }
        };
        self.next_update_id = self.next_update_id.max(id + 1);
        if let Some(query) = update["callback_query"]["id"].as_str() {
            self.callbacks.insert(query.to_owned(), false);
        }
        if let Some(query) = update["pre_checkout_query"]["id"].as_str() {
            self.pre_checkouts.insert(
                query.to_owned(),
                PreCheckout {
                    pushed_at: Instant::now(),
                    answered: false,
                },
            );
        }
        // Messages in hand-made updates become known, so the bot can edit its own and new ids
        // in that chat continue after them.
        for message in [&update["message"], &update["callback_query"]["message"]] {
            self.learn_message(message);
        }
        self.updates.push_back(update);
        id
    }

    fn learn_message(&mut self, message: &Value) {
        let (Some(chat_id), Some(message_id)) = (
            message["chat"]["id"].as_i64(),
            message["message_id"].as_i64(),
        ) else {
            return;
        };
        let last = self.last_message_id.entry(chat_id).or_default();
        *last = (*last).max(message_id);
        let from_bot = message["from"]["id"].as_i64().is_none_or(|id| id == BOT_ID);
        self.messages
            .entry((chat_id, message_id))
            .or_insert_with(|| StoredMessage {
                from_bot,
                json: message.clone(),
            });
    }

    fn push_refund(&mut self, from_id: i64, payment: &StarPayment) -> i64 {
        let mut content = Map::new();
        content.insert(
            "refunded_payment".into(),
            json!({
                "currency": "XTR",
                "total_amount": payment.total_amount,
                "invoice_payload": payment.invoice_payload,
                "telegram_payment_charge_id": payment.telegram_payment_charge_id,
            }),
        );
        let message = self.user_message(from_id, content);
        self.push(json!({ "message": message }))
    }

    /// One look at the queue for a poll: `Some` answers it, `None` keeps it waiting.
    fn poll(&mut self, poll: &PollParams, generation: u64, expired: bool) -> Option<Reply> {
        if self.webhook.is_some() {
            return Some(Reply::error(409, WEBHOOK_CONFLICT));
        }
        if self.poll_generation != generation {
            return Some(Reply::error(409, POLL_CONFLICT));
        }
        if poll.offset > 0 {
            self.updates
                .retain(|u| u["update_id"].as_i64().is_none_or(|id| id >= poll.offset));
        } else if poll.offset < 0 {
            let keep = poll.offset.unsigned_abs() as usize;
            while self.updates.len() > keep {
                self.updates.pop_front();
            }
        }
        if let Some(allowed) = &poll.allowed_updates {
            self.allowed_updates = Some(allowed.clone()).filter(|a| !a.is_empty());
        }
        // Updates of types the bot did not ask for are never delivered.
        let allowed = self.allowed_updates.clone();
        self.updates.retain(|u| {
            let kind = update_kind(u);
            match &allowed {
                Some(list) => list.iter().any(|a| a == kind),
                None => !OPT_IN_UPDATES.contains(&kind),
            }
        });
        let batch: Vec<Value> = self.updates.iter().take(poll.limit).cloned().collect();
        (!batch.is_empty() || expired).then(|| Reply::ok(Value::Array(batch)))
    }

    fn set_webhook(&mut self, p: &Map<String, Value>) -> Reply {
        let url = p_text(p, "url").unwrap_or_default();
        if url.is_empty() {
            return self.delete_webhook(p);
        }
        if let Err(reply) = check_webhook_url(&url) {
            return reply;
        }
        let secret_token = p_text(p, "secret_token").filter(|s| !s.is_empty());
        if let Some(secret) = &secret_token {
            let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
            if secret.len() > 256 || !secret.bytes().all(allowed) {
                return Reply::bad_request("secret token contains unallowed characters");
            }
        }
        let allowed_updates = match p_json(p, "allowed_updates") {
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        };
        if let Some(list) = &allowed_updates {
            self.allowed_updates = Some(list.clone()).filter(|a| !a.is_empty());
        }
        let drop_pending_updates = p_bool(p, "drop_pending_updates").unwrap_or(false);
        if drop_pending_updates {
            self.updates.clear();
        }
        let settings = WebhookSettings {
            url,
            secret_token,
            allowed_updates,
            max_connections: p_i64(p, "max_connections").unwrap_or(40).clamp(1, 100) as u32,
            drop_pending_updates,
            ip_address: p_text(p, "ip_address"),
        };
        let same_url = self.webhook.as_ref().is_some_and(|w| w.url == settings.url);
        self.webhook = Some(settings);
        let description = if same_url {
            "Webhook is already set"
        } else {
            "Webhook was set"
        };
        Reply::ok_described(json!(true), description)
    }

    fn delete_webhook(&mut self, p: &Map<String, Value>) -> Reply {
        if p_bool(p, "drop_pending_updates").unwrap_or(false) {
            self.updates.clear();
        }
        let description = if self.webhook.take().is_some() {
            "Webhook was deleted"
        } else {
            "Webhook is already deleted"
        };
        Reply::ok_described(json!(true), description)
    }

    fn webhook_info(&self) -> Reply {
        let mut info = json!({
            "url": "",
            "has_custom_certificate": false,
            "pending_update_count": self.updates.len(),
        });
        if let Some(webhook) = &self.webhook {
            info["url"] = webhook.url.clone().into();
            info["max_connections"] = webhook.max_connections.into();
            if let Some(ip) = &webhook.ip_address {
                info["ip_address"] = ip.clone().into();
            }
        }
        if let Some(allowed) = &self.allowed_updates {
            info["allowed_updates"] = json!(allowed);
        }
        Reply::ok(info)
    }

    // --- users and chats -------------------------------------------------------------------

    fn user(&self, id: i64) -> Value {
        if id == BOT_ID {
            return bot_user();
        }
        self.users.get(&id).cloned().unwrap_or_else(|| {
            json!({
                "id": id, "is_bot": false, "first_name": format!("User {id}"),
                "username": format!("user{id}"), "language_code": "en",
            })
        })
    }

    fn chat(&self, chat_id: i64) -> Value {
        if chat_id > 0 {
            let user = self.user(chat_id);
            let mut chat =
                json!({"id": chat_id, "type": "private", "first_name": user["first_name"]});
            if let Some(username) = user.get("username") {
                chat["username"] = username.clone();
            }
            return chat;
        }
        if let Some((name, _)) = self.channels.iter().find(|(_, id)| **id == chat_id) {
            let name = name.trim_start_matches('@');
            return json!({"id": chat_id, "type": "channel", "title": name, "username": name});
        }
        let kind = if chat_id < -1_000_000_000_000 {
            "supergroup"
        } else {
            "group"
        };
        let mut chat = json!({"id": chat_id, "type": kind, "title": format!("Chat {chat_id}")});
        if self.forums.contains_key(&chat_id) {
            chat["is_forum"] = true.into();
        }
        chat
    }

    /// The chat a `chat_id`-like parameter names: an id, or `@channel` (given a stable id).
    fn resolve_chat(&mut self, p: &Map<String, Value>, key: &str) -> Result<i64, Reply> {
        if let Some(id) = p_i64(p, key) {
            return Ok(id);
        }
        match p_str(p, key) {
            Some(name) if name.starts_with('@') && name.len() > 1 => {
                let next = -1_000_000_000_001 - self.channels.len() as i64;
                Ok(*self
                    .channels
                    .entry(name.to_ascii_lowercase())
                    .or_insert(next))
            }
            Some(_) => Err(Reply::bad_request("chat not found")),
            None => Err(Reply::bad_request("chat_id is empty")),
        }
    }

    fn next_message_id(&mut self, chat_id: i64) -> i64 {
        let last = self.last_message_id.entry(chat_id).or_default();
        *last += 1;
        *last
    }

    /// A message from the user in its private chat, stored.
    fn user_message(&mut self, from_id: i64, content: Map<String, Value>) -> Value {
        let message_id = self.next_message_id(from_id);
        let mut message = json!({
            "message_id": message_id, "from": self.user(from_id), "chat": self.chat(from_id),
            "date": unix_now(),
        });
        extend(&mut message, content);
        self.messages.insert(
            (from_id, message_id),
            StoredMessage {
                from_bot: false,
                json: message.clone(),
            },
        );
        message
    }

    // --- sending and editing ---------------------------------------------------------------

    /// 429 of `flood_next` (send* only), then the chat's fault (blocked, …).
    fn gate(&mut self, method: &str, chat_id: i64) -> Result<(), Reply> {
        if SEND_METHODS.contains(&method) && self.flood_next.0 > 0 {
            self.flood_next.0 -= 1;
            return Err(Reply::flood(self.flood_next.1));
        }
        match self.chat_faults.get(&chat_id) {
            Some((status, description)) => Err(Reply::error(*status, description)),
            None => Ok(()),
        }
    }

    /// The rate limits for an accepted send*: 429 with the wait, or counted in the windows.
    fn admit(&mut self, method: &str, chat_id: i64, now: Instant) -> Result<(), Reply> {
        if !SEND_METHODS.contains(&method) {
            return Ok(());
        }
        let second = Duration::from_secs(1);
        let global = self
            .global_limit
            .and_then(|limit| window_wait(&mut self.global_window, limit, second, now));
        let per_chat = self.per_chat_limit.and_then(|limit| {
            window_wait(
                self.chat_windows.entry(chat_id).or_default(),
                limit,
                second,
                now,
            )
        });
        let group = self.group_limit.filter(|_| chat_id < 0).and_then(|limit| {
            window_wait(
                self.group_windows.entry(chat_id).or_default(),
                limit,
                Duration::from_secs(60),
                now,
            )
        });
        if let Some(wait) = global.max(per_chat).max(group) {
            return Err(Reply::flood(wait));
        }
        if self.global_limit.is_some() {
            self.global_window.push_back(now);
        }
        if self.per_chat_limit.is_some() {
            self.chat_windows.entry(chat_id).or_default().push_back(now);
        }
        if self.group_limit.is_some() && chat_id < 0 {
            self.group_windows
                .entry(chat_id)
                .or_default()
                .push_back(now);
        }
        Ok(())
    }

    fn send(&mut self, method: &'static str, p: &Map<String, Value>, now: Instant) -> Reply {
        let chat_id = match self.resolve_chat(p, "chat_id") {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.gate(method, chat_id) {
            return reply;
        }
        let content = match self.content(method, p) {
            Ok(content) => content,
            Err(reply) => return reply,
        };
        // In a forum, `message_thread_id` must name one of its topics; elsewhere it is ignored.
        let thread = match (self.forums.get(&chat_id), p_i64(p, "message_thread_id")) {
            (Some(topics), Some(thread)) if !topics.contains_key(&thread) => {
                return Reply::bad_request("message thread not found");
            }
            (Some(_), thread) => thread,
            (None, _) => None,
        };
        if let Err(reply) = self.admit(method, chat_id, now) {
            return reply;
        }
        let message_id = self.next_message_id(chat_id);
        let mut message = json!({
            "message_id": message_id, "from": bot_user(), "chat": self.chat(chat_id),
            "date": unix_now(),
        });
        if let Some(thread) = thread {
            message["message_thread_id"] = thread.into();
            message["is_topic_message"] = true.into();
        }
        extend(&mut message, content.fields);
        self.messages.insert(
            (chat_id, message_id),
            StoredMessage {
                from_bot: true,
                json: message.clone(),
            },
        );
        self.sent.push(SentMessage {
            method: method.to_owned(),
            chat_id,
            message_id,
            text: content.text,
            parse_mode: p_text(p, "parse_mode"),
            reply_markup: p_json(p, "reply_markup"),
            params: Value::Object(p.clone()),
            at: now,
        });
        if method == "copyMessage" {
            Reply::ok(json!({ "message_id": message_id }))
        } else {
            Reply::ok(message)
        }
    }

    /// Validates a send and builds its message fields.
    fn content(&mut self, method: &str, p: &Map<String, Value>) -> Result<Content, Reply> {
        let mut fields = Map::new();
        let parse_mode = p_str(p, "parse_mode");
        let markup = p_json(p, "reply_markup");
        if let Some(markup) = &markup {
            check_markup(markup).map_err(|e| Reply::bad_request(&e))?;
        }
        let text = match method {
            "sendMessage" => {
                let raw = p_text(p, "text").unwrap_or_default();
                let (text, entities) = format_text(&raw, parse_mode, p)?;
                if text.trim().is_empty() {
                    return Err(Reply::bad_request("message text is empty"));
                }
                if text.chars().count() > 4096 {
                    return Err(Reply::bad_request("message is too long"));
                }
                fields.insert("text".into(), text.into());
                if !entities.is_empty() {
                    fields.insert("entities".into(), entities.into());
                }
                if let Some(options) = p_json(p, "link_preview_options") {
                    fields.insert("link_preview_options".into(), options);
                }
                raw
            }
            "sendPhoto" | "sendDocument" => {
                let key = if method == "sendPhoto" {
                    "photo"
                } else {
                    "document"
                };
                let Some(file) = p.get(key).filter(|f| !f.is_null()) else {
                    return Err(Reply::bad_request(&format!(
                        "there is no {key} in the request"
                    )));
                };
                fields.insert(key.into(), media_json(key, file));
                let raw = p_text(p, "caption").unwrap_or_default();
                caption_fields(&mut fields, &raw, parse_mode, p)?;
                raw
            }
            "sendInvoice" => {
                let invoice = check_invoice(p, false)?;
                fields.insert("invoice".into(), invoice);
                p_text(p, "title").unwrap_or_default()
            }
            "copyMessage" => {
                let from_chat = self.resolve_chat(p, "from_chat_id")?;
                let source = p_i64(p, "message_id")
                    .and_then(|id| self.messages.get(&(from_chat, id)))
                    .ok_or_else(|| Reply::bad_request("message to copy not found"))?;
                let keep = [
                    "text",
                    "entities",
                    "photo",
                    "document",
                    "caption",
                    "caption_entities",
                ];
                for key in keep {
                    if let Some(value) = source.json.get(key) {
                        fields.insert(key.into(), value.clone());
                    }
                }
                if let Some(raw) = p_text(p, "caption") {
                    fields.remove("caption_entities");
                    caption_fields(&mut fields, &raw, parse_mode, p)?;
                }
                fields
                    .get("text")
                    .or_else(|| fields.get("caption"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            }
            _ => String::new(),
        };
        if let Some(markup) = markup.filter(|m| m.get("inline_keyboard").is_some()) {
            fields.insert("reply_markup".into(), markup);
        }
        Ok(Content { fields, text })
    }

    fn edit(&mut self, method: &'static str, p: &Map<String, Value>, now: Instant) -> Reply {
        let markup = p_json(p, "reply_markup");
        if let Some(markup) = &markup
            && let Err(e) = check_markup(markup)
        {
            return Reply::bad_request(&e);
        }
        let new_text = if method == "editMessageText" {
            let raw = p_text(p, "text").unwrap_or_default();
            match format_text(&raw, p_str(p, "parse_mode"), p) {
                Ok((text, _)) if text.trim().is_empty() => {
                    return Reply::bad_request("message text is empty");
                }
                Ok(parsed) => Some(parsed),
                Err(reply) => return reply,
            }
        } else {
            None
        };
        if p_str(p, "inline_message_id").is_some() {
            // Inline messages live outside the fake's chats: accepted, `true` as the API answers.
            return Reply::ok(json!(true));
        }
        let chat_id = match self.resolve_chat(p, "chat_id") {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.gate(method, chat_id) {
            return reply;
        }
        let Some(message_id) = p_i64(p, "message_id") else {
            return Reply::bad_request("message identifier is not specified");
        };
        let Some(stored) = self.messages.get(&(chat_id, message_id)) else {
            return Reply::bad_request("message to edit not found");
        };
        if !stored.from_bot {
            return Reply::bad_request("message can't be edited");
        }
        let mut message = stored.json.clone();
        let new_markup = markup.filter(|m| m.get("inline_keyboard").is_some());
        let mut modified = message.get("reply_markup") != new_markup.as_ref();
        if let Some((text, entities)) = new_text {
            if message.get("text").is_none() {
                return Reply::bad_request("there is no text in the message to edit");
            }
            let entities = (!entities.is_empty()).then_some(Value::Array(entities));
            modified |= message["text"] != text || message.get("entities") != entities.as_ref();
            set_or_remove(&mut message, "text", Some(text.into()));
            set_or_remove(&mut message, "entities", entities);
        }
        if !modified {
            return Reply::bad_request(NOT_MODIFIED);
        }
        if let Err(reply) = self.admit(method, chat_id, now) {
            return reply;
        }
        set_or_remove(&mut message, "reply_markup", new_markup);
        message["edit_date"] = unix_now().into();
        self.messages.insert(
            (chat_id, message_id),
            StoredMessage {
                from_bot: true,
                json: message.clone(),
            },
        );
        // Recorded like a send, so a test sees what the chat shows after the edit.
        self.sent.push(SentMessage {
            method: method.to_owned(),
            chat_id,
            message_id,
            text: message["text"].as_str().unwrap_or_default().to_owned(),
            parse_mode: p_text(p, "parse_mode"),
            reply_markup: message.get("reply_markup").cloned(),
            params: Value::Object(p.clone()),
            at: now,
        });
        Reply::ok(message)
    }

    /// `createForumTopic`: only in a supergroup with topics turned on; the topic's id is the id
    /// of its service message (`forum_topic_created`), as in Telegram.
    fn create_forum_topic(&mut self, p: &Map<String, Value>, now: Instant) -> Reply {
        let chat_id = match self.resolve_chat(p, "chat_id") {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.gate("createForumTopic", chat_id) {
            return reply;
        }
        if !self.forums.contains_key(&chat_id) {
            return Reply::bad_request("the chat is not a forum");
        }
        let name = p_text(p, "name").unwrap_or_default();
        if name.is_empty() {
            return Reply::bad_request("TOPIC_NAME_EMPTY");
        }
        if name.chars().count() > 128 {
            return Reply::bad_request("TOPIC_NAME_INVALID");
        }
        if let Err(reply) = self.admit("createForumTopic", chat_id, now) {
            return reply;
        }
        let thread = self.next_message_id(chat_id);
        let icon_color = 7_322_096;
        let message = json!({
            "message_id": thread, "from": bot_user(), "chat": self.chat(chat_id),
            "date": unix_now(), "message_thread_id": thread, "is_topic_message": true,
            "forum_topic_created": {"name": name, "icon_color": icon_color},
        });
        self.messages.insert(
            (chat_id, thread),
            StoredMessage {
                from_bot: true,
                json: message,
            },
        );
        if let Some(topics) = self.forums.get_mut(&chat_id) {
            topics.insert(thread, name.clone());
        }
        Reply::ok(json!({"message_thread_id": thread, "name": name, "icon_color": icon_color}))
    }

    /// A message from `from_id` in group `chat_id` (stored): a reply to message `reply_to` of
    /// that chat, or in forum topic `thread` — where a message that replies to nothing else
    /// replies to the topic's creation, as Telegram delivers it.
    fn group_message(
        &mut self,
        chat_id: i64,
        from_id: i64,
        content: Map<String, Value>,
        reply_to: Option<i64>,
        thread: Option<i64>,
    ) -> Value {
        let message_id = self.next_message_id(chat_id);
        let mut message = json!({
            "message_id": message_id, "from": self.user(from_id), "chat": self.chat(chat_id),
            "date": unix_now(),
        });
        if let Some(thread) = thread {
            message["message_thread_id"] = thread.into();
            message["is_topic_message"] = true.into();
        }
        let replied = reply_to
            .or(thread)
            .and_then(|id| self.messages.get(&(chat_id, id)))
            .map(|m| m.json.clone());
        if let Some(mut replied) = replied {
            // Telegram does not nest replies.
            if let Some(object) = replied.as_object_mut() {
                object.remove("reply_to_message");
            }
            message["reply_to_message"] = replied;
        }
        extend(&mut message, content);
        self.messages.insert(
            (chat_id, message_id),
            StoredMessage {
                from_bot: false,
                json: message.clone(),
            },
        );
        message
    }

    fn delete_message(&mut self, p: &Map<String, Value>) -> Reply {
        let chat_id = match self.resolve_chat(p, "chat_id") {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.gate("deleteMessage", chat_id) {
            return reply;
        }
        let removed = p_i64(p, "message_id").and_then(|id| self.messages.remove(&(chat_id, id)));
        match removed {
            Some(_) => Reply::ok(json!(true)),
            None => Reply::bad_request("message to delete not found"),
        }
    }

    fn chat_action(&mut self, p: &Map<String, Value>) -> Reply {
        let chat_id = match self.resolve_chat(p, "chat_id") {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.gate("sendChatAction", chat_id) {
            return reply;
        }
        match p_str(p, "action") {
            Some(action) if !action.is_empty() => Reply::ok(json!(true)),
            _ => Reply::bad_request("wrong parameter action in request"),
        }
    }

    // --- queries and payments --------------------------------------------------------------

    fn answer_callback(&mut self, p: &Map<String, Value>) -> Reply {
        if p_text(p, "text").is_some_and(|t| t.chars().count() > 200) {
            return Reply::bad_request("MESSAGE_TOO_LONG");
        }
        let id = p_text(p, "callback_query_id").unwrap_or_default();
        match self.callbacks.get_mut(&id) {
            Some(answered) if !*answered => {
                *answered = true;
                Reply::ok(json!(true))
            }
            _ => Reply::bad_request(QUERY_INVALID),
        }
    }

    fn answer_pre_checkout(&mut self, p: &Map<String, Value>, now: Instant) -> Reply {
        let id = p_text(p, "pre_checkout_query_id").unwrap_or_default();
        let Some(ok) = p_bool(p, "ok") else {
            return Reply::bad_request("parameter \"ok\" is required");
        };
        let error_message = p_text(p, "error_message").filter(|m| !m.is_empty());
        if !ok && error_message.is_none() {
            return Reply::bad_request("ERROR_MESSAGE_EMPTY");
        }
        let timeout = self.pre_checkout_timeout;
        let Some(query) = self.pre_checkouts.get_mut(&id).filter(|q| !q.answered) else {
            return Reply::bad_request(QUERY_INVALID);
        };
        query.answered = true;
        let in_time = now.duration_since(query.pushed_at) <= timeout;
        self.pre_checkout_answers.push(PreCheckoutAnswer {
            query_id: id,
            ok,
            error_message,
            in_time,
            at: now,
        });
        if in_time {
            Reply::ok(json!(true))
        } else {
            Reply::bad_request(QUERY_INVALID)
        }
    }

    fn create_invoice_link(&mut self, p: &Map<String, Value>) -> Reply {
        if let Err(reply) = check_invoice(p, true) {
            return reply;
        }
        let url = format!("https://t.me/${}", random_token(22));
        self.invoice_links.push(InvoiceLink {
            url: url.clone(),
            params: Value::Object(p.clone()),
        });
        Reply::ok(url.into())
    }

    fn refund(&mut self, p: &Map<String, Value>) -> Reply {
        let user_id = p_i64(p, "user_id").unwrap_or_default();
        let charge_id = p_text(p, "telegram_payment_charge_id").unwrap_or_default();
        let Some(charge) = self.charges.get_mut(&charge_id) else {
            return Reply::bad_request("CHARGE_NOT_FOUND");
        };
        if charge.user_id != user_id {
            return Reply::bad_request("USER_ID_INVALID");
        }
        if charge.refunded {
            return Reply::bad_request("CHARGE_ALREADY_REFUNDED");
        }
        charge.refunded = true;
        let payment = charge.payment.clone();
        self.star_balance -= i64::from(payment.total_amount);
        let receiver = json!({
            "type": "user", "transaction_type": "invoice_payment", "user": self.user(user_id),
            "invoice_payload": payment.invoice_payload,
        });
        self.star_transactions.push(json!({
            "id": charge_id, "amount": payment.total_amount, "date": unix_now(),
            "receiver": receiver,
        }));
        self.push_refund(user_id, &payment);
        Reply::ok(json!(true))
    }

    fn edit_subscription(&mut self, p: &Map<String, Value>) -> Reply {
        let user_id = p_i64(p, "user_id").unwrap_or_default();
        let charge_id = p_text(p, "telegram_payment_charge_id").unwrap_or_default();
        let Some(is_canceled) = p_bool(p, "is_canceled") else {
            return Reply::bad_request("parameter \"is_canceled\" is required");
        };
        match self.charges.get_mut(&charge_id) {
            Some(charge)
                if charge.user_id == user_id
                    && charge.payment.subscription_expiration_date.is_some() =>
            {
                charge.subscription_canceled = is_canceled;
                Reply::ok(json!(true))
            }
            Some(_) => Reply::bad_request("SUBSCRIPTION_NOT_FOUND"),
            None => Reply::bad_request("CHARGE_NOT_FOUND"),
        }
    }

    fn star_transactions(&self, p: &Map<String, Value>) -> Reply {
        let offset = p_i64(p, "offset").unwrap_or(0).max(0) as usize;
        let limit = p_i64(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
        let page: Vec<Value> = self
            .star_transactions
            .iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        Reply::ok(json!({ "transactions": page }))
    }

    // --- chat members and commands ---------------------------------------------------------

    fn chat_member(&self, p: &Map<String, Value>) -> Reply {
        let Some(chat) = p.get("chat_id").map(chat_key).filter(|c| !c.is_empty()) else {
            return Reply::bad_request("chat_id is empty");
        };
        let Some(user_id) = p_i64(p, "user_id") else {
            return Reply::bad_request("user not found");
        };
        let status = match self.members.get(&(chat.clone(), user_id)) {
            Some(status) => status.as_str(),
            None if chat == user_id.to_string() => "member",
            None => "left",
        };
        Reply::ok(member_json(self.user(user_id), status))
    }

    fn set_commands(&mut self, p: &Map<String, Value>) -> Reply {
        let Some(Value::Array(commands)) = p_json(p, "commands") else {
            return Reply::bad_request("can't parse commands JSON object");
        };
        if commands.len() > 100 {
            return Reply::bad_request("too many commands");
        }
        for command in &commands {
            let name = command["command"].as_str().unwrap_or_default();
            let valid_name = (1..=32).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            let description = command["description"].as_str().unwrap_or_default();
            if !valid_name || !(1..=256).contains(&description.chars().count()) {
                return Reply::bad_request("BOT_COMMAND_INVALID");
            }
        }
        let key = commands_key(p_json(p, "scope").as_ref(), p_str(p, "language_code"));
        self.commands.insert(key, Value::Array(commands));
        Reply::ok(json!(true))
    }
}

// ---------------------------------------------------------------------------------------------
// Validation and rendering

/// Seconds (≥ 1, rounded up) until `window` holds fewer than `limit` sends in the last `period`;
/// `None` when it already does. Drops sends older than `period`.
fn window_wait(
    window: &mut VecDeque<Instant>,
    limit: u32,
    period: Duration,
    now: Instant,
) -> Option<u64> {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= period)
    {
        window.pop_front();
    }
    let limit = limit as usize;
    if window.len() < limit {
        return None;
    }
    let frees_at = window[window.len() - limit] + period;
    let wait = frees_at.saturating_duration_since(now);
    Some((wait.as_secs_f64().ceil() as u64).max(1))
}

/// The text as Telegram stores it (tags parsed away for HTML) and its entities, or 400.
fn format_text(
    raw: &str,
    parse_mode: Option<&str>,
    p: &Map<String, Value>,
) -> Result<(String, Vec<Value>), Reply> {
    let entities_error = |e: String| Reply::bad_request(&format!("can't parse entities: {e}"));
    match parse_mode.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => {
            let entities = match p_json(p, "entities").or_else(|| p_json(p, "caption_entities")) {
                Some(Value::Array(entities)) => entities,
                _ => Vec::new(),
            };
            Ok((raw.to_owned(), entities))
        }
        Some("html") => parse_html(raw).map_err(entities_error),
        Some("markdownv2") => check_markdown_v2(raw)
            .map(|()| (raw.to_owned(), Vec::new()))
            .map_err(entities_error),
        Some("markdown") => Ok((raw.to_owned(), Vec::new())),
        Some(_) => Err(Reply::bad_request("unsupported parse_mode")),
    }
}

fn caption_fields(
    fields: &mut Map<String, Value>,
    raw: &str,
    parse_mode: Option<&str>,
    p: &Map<String, Value>,
) -> Result<(), Reply> {
    if raw.is_empty() {
        return Ok(());
    }
    let (caption, entities) = format_text(raw, parse_mode, p)?;
    if caption.chars().count() > 1024 {
        return Err(Reply::bad_request("message caption is too long"));
    }
    fields.insert("caption".into(), caption.into());
    if !entities.is_empty() {
        fields.insert("caption_entities".into(), entities.into());
    }
    Ok(())
}

/// A Mini App's `WebAppInfo`: Telegram opens HTTPS addresses only.
fn web_app_url(app: &Value) -> Result<(), String> {
    let url = app["url"].as_str().unwrap_or_default();
    if url.len() > 8 && url[..8].eq_ignore_ascii_case("https://") {
        Ok(())
    } else {
        Err(format!(
            "inline keyboard button Web App URL '{url}' is invalid: Only HTTPS links are allowed"
        ))
    }
}

/// Inline keyboards: every button has a text and exactly one action; callback data 1–64 bytes;
/// a Mini App's address is https.
fn check_markup(markup: &Value) -> Result<(), String> {
    const ACTIONS: [&str; 10] = [
        "url",
        "callback_data",
        "pay",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
    ];
    let Some(keyboard) = markup.get("inline_keyboard") else {
        return Ok(());
    };
    let Some(rows) = keyboard.as_array() else {
        return Err("can't parse inline keyboard markup JSON object".into());
    };
    for row in rows {
        let Some(buttons) = row.as_array() else {
            return Err("can't parse inline keyboard markup JSON object".into());
        };
        for button in buttons {
            if button["text"].as_str().is_none_or(str::is_empty) {
                return Err("can't parse inline keyboard button: Text must be non-empty".into());
            }
            let actions: Vec<&str> = ACTIONS
                .iter()
                .copied()
                .filter(|a| button.get(*a).is_some_and(|v| !v.is_null()))
                .collect();
            if actions.is_empty() {
                return Err("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard".into());
            }
            if let Some(data) = button.get("callback_data") {
                let len = data.as_str().map_or(0, str::len);
                if !(1..=64).contains(&len) {
                    return Err("BUTTON_DATA_INVALID".into());
                }
            }
            if let Some(app) = button.get("web_app") {
                web_app_url(app)?;
            }
            if let Some(url) = button.get("url") {
                let url = url.as_str().unwrap_or_default();
                let valid = ["http://", "https://", "tg://"]
                    .iter()
                    .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
                if !valid {
                    return Err("BUTTON_URL_INVALID".into());
                }
            }
        }
    }
    Ok(())
}

/// sendInvoice/createInvoiceLink rules for Stars (and the provider rule for fiat): the message's
/// `invoice` object on success.
fn check_invoice(p: &Map<String, Value>, link: bool) -> Result<Value, Reply> {
    let title = p_text(p, "title").unwrap_or_default();
    let description = p_text(p, "description").unwrap_or_default();
    let payload = p_text(p, "payload").unwrap_or_default();
    let currency = p_text(p, "currency").unwrap_or_default();
    let provider_token = p_text(p, "provider_token").unwrap_or_default();
    if !(1..=32).contains(&title.chars().count()) {
        return Err(Reply::bad_request(
            "invoice title must be 1-32 characters long",
        ));
    }
    if !(1..=255).contains(&description.chars().count()) {
        return Err(Reply::bad_request(
            "invoice description must be 1-255 characters long",
        ));
    }
    if !(1..=128).contains(&payload.len()) {
        return Err(Reply::bad_request(
            "invoice payload must be 1-128 bytes long",
        ));
    }
    if currency.len() != 3 {
        return Err(Reply::bad_request("CURRENCY_INVALID"));
    }
    let prices = match p_json(p, "prices") {
        Some(Value::Array(prices)) if !prices.is_empty() => prices,
        _ => return Err(Reply::bad_request("prices must be non-empty")),
    };
    let mut total = 0i64;
    for price in &prices {
        let amount = price["amount"].as_i64();
        if price["label"].as_str().is_none() || amount.is_none() {
            return Err(Reply::bad_request("can't parse prices JSON object"));
        }
        total += amount.unwrap_or_default();
    }
    let stars = currency == "XTR";
    if stars && (prices.len() != 1 || !provider_token.is_empty()) {
        return Err(Reply::bad_request("STARS_INVOICE_INVALID"));
    }
    if !stars && provider_token.is_empty() {
        return Err(Reply::bad_request("PAYMENT_PROVIDER_INVALID"));
    }
    if total <= 0 {
        return Err(Reply::bad_request("CURRENCY_TOTAL_AMOUNT_INVALID"));
    }
    if link && let Some(period) = p_i64(p, "subscription_period") {
        if period != SUBSCRIPTION_PERIOD || !stars {
            return Err(Reply::bad_request("SUBSCRIPTION_PERIOD_INVALID"));
        }
        if total > MAX_SUBSCRIPTION_STARS {
            return Err(Reply::bad_request("CURRENCY_TOTAL_AMOUNT_INVALID"));
        }
    }
    Ok(json!({
        "title": title, "description": description,
        "start_parameter": p_text(p, "start_parameter").unwrap_or_default(),
        "currency": currency, "total_amount": total,
    }))
}

/// HTTPS on port 443, 80, 88 or 8443.
fn check_webhook_url(url: &str) -> Result<(), Reply> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Reply::bad_request("can't parse URL"));
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(Reply::bad_request(
            "bad webhook: HTTPS url must be provided for webhook",
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.strip_prefix('[') {
        Some(ipv6) => {
            let (host, after) = ipv6.split_once(']').unwrap_or((ipv6, ""));
            (host, after.strip_prefix(':'))
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err(Reply::bad_request("can't parse URL"));
    }
    let port = port.map_or(Some(443), |p| p.parse::<u16>().ok());
    if !matches!(port, Some(80 | 88 | 443 | 8443)) {
        return Err(Reply::bad_request(
            "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
        ));
    }
    Ok(())
}

/// Telegram's HTML parse mode: the text without tags and its entities (UTF-16 offsets), or the
/// parser's complaint.
fn parse_html(text: &str) -> Result<(String, Vec<Value>), String> {
    const TAGS: [&str; 16] = [
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "tg-spoiler",
        "span",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    ];
    struct Open {
        tag: String,
        start: usize,
        attrs: Vec<(String, String)>,
        language: Option<String>,
    }
    let mut out = String::with_capacity(text.len());
    let mut out16 = 0usize;
    let mut stack: Vec<Open> = Vec::new();
    let mut entities: Vec<Value> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with('<') {
            let Some(close) = rest.find('>') else {
                return Err(format!("Unclosed start tag at byte offset {i}"));
            };
            let inner = &rest[1..close];
            if let Some(name) = inner.strip_prefix('/') {
                let name = name.trim().to_ascii_lowercase();
                let Some(open) = stack.pop() else {
                    return Err(format!("Unexpected end tag at byte offset {i}"));
                };
                if open.tag != name {
                    return Err(format!(
                        "Unmatched end tag at byte offset {i}, expected \"</{}>\", found \"</{name}>\"",
                        open.tag
                    ));
                }
                let attr = |k: &str| {
                    open.attrs
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.clone())
                };
                let inside_pre = stack.iter().any(|o| o.tag == "pre");
                if open.tag == "code"
                    && inside_pre
                    && let Some(language) =
                        attr("class").and_then(|c| c.strip_prefix("language-").map(str::to_owned))
                    && let Some(pre) = stack.iter_mut().rev().find(|o| o.tag == "pre")
                {
                    pre.language = Some(language);
                }
                let kind = match open.tag.as_str() {
                    "b" | "strong" => Some(json!({"type": "bold"})),
                    "i" | "em" => Some(json!({"type": "italic"})),
                    "u" | "ins" => Some(json!({"type": "underline"})),
                    "s" | "strike" | "del" => Some(json!({"type": "strikethrough"})),
                    "tg-spoiler" | "span" => Some(json!({"type": "spoiler"})),
                    "code" if inside_pre => None,
                    "code" => Some(json!({"type": "code"})),
                    "pre" => Some(match &open.language {
                        Some(language) => json!({"type": "pre", "language": language}),
                        None => json!({"type": "pre"}),
                    }),
                    "a" => attr("href")
                        .filter(|h| !h.is_empty())
                        .map(|url| json!({"type": "text_link", "url": url})),
                    "blockquote" if attr("expandable").is_some() => {
                        Some(json!({"type": "expandable_blockquote"}))
                    }
                    "blockquote" => Some(json!({"type": "blockquote"})),
                    "tg-emoji" => attr("emoji-id")
                        .map(|id| json!({"type": "custom_emoji", "custom_emoji_id": id})),
                    _ => None,
                };
                if let Some(mut entity) = kind
                    && out16 > open.start
                {
                    entity["offset"] = open.start.into();
                    entity["length"] = (out16 - open.start).into();
                    entities.push(entity);
                }
            } else {
                let name_end = inner
                    .find(|c: char| c.is_ascii_whitespace() || c == '/')
                    .unwrap_or(inner.len());
                let tag = inner[..name_end].to_ascii_lowercase();
                if !TAGS.contains(&tag.as_str()) {
                    return Err(format!(
                        "Unsupported start tag \"{tag}\" at byte offset {i}"
                    ));
                }
                let attrs = html_attributes(&inner[name_end..]);
                if tag == "span" && !attrs.iter().any(|(k, v)| k == "class" && v == "tg-spoiler") {
                    return Err(format!(
                        "Tag \"span\" must have class \"tg-spoiler\" at byte offset {i}"
                    ));
                }
                stack.push(Open {
                    tag,
                    start: out16,
                    attrs,
                    language: None,
                });
            }
            i += close + 1;
        } else if rest.starts_with('&') {
            match html_entity(rest) {
                Some((c, len)) => {
                    out.push(c);
                    out16 += c.len_utf16();
                    i += len;
                }
                None => {
                    out.push('&');
                    out16 += 1;
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            out16 += c.len_utf16();
            i += c.len_utf8();
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            open.tag
        ));
    }
    entities.sort_by_key(|e| {
        (
            e["offset"].as_u64().unwrap_or_default(),
            std::cmp::Reverse(e["length"].as_u64().unwrap_or_default()),
        )
    });
    Ok((out, entities))
}

/// `href="…" class='x' expandable` → [(href, …), (class, x), (expandable, "")], values decoded.
fn html_attributes(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c == '=' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (raw, remaining) = match after.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    let end = inner.find(quote).unwrap_or(inner.len());
                    (&inner[..end], inner.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            value = decode_html_entities(raw);
            rest = remaining.trim_start();
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// `&lt;`, `&gt;`, `&amp;`, `&quot;` and numeric entities (the ones the Bot API supports):
/// the character and the entity's length in bytes.
fn html_entity(text: &str) -> Option<(char, usize)> {
    let end = text.get(..12).unwrap_or(text).find(';')?;
    let name = &text[1..end];
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((c, end + 1))
}

fn decode_html_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if let Some((c, len)) = rest.starts_with('&').then(|| html_entity(rest)).flatten() {
            out.push(c);
            i += len;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The errors of Telegram's MarkdownV2 parser that bots actually hit: an unescaped reserved
/// character, an entity or code block left open.
fn check_markdown_v2(text: &str) -> Result<(), String> {
    const RESERVED: &str = "_*[]()~`>#+-=|{}.!";
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    let mut open: Vec<(&'static str, usize)> = Vec::new();
    let mut link: Option<usize> = None;
    let mut toggle =
        |name: &'static str, offset: usize| match open.iter().rposition(|(n, _)| *n == name) {
            Some(pos) => {
                open.remove(pos);
            }
            None => open.push((name, offset)),
        };
    let mut i = 0;
    while i < chars.len() {
        let (offset, c) = chars[i];
        match c {
            '\\' => i += 1,
            '`' => {
                let fence = text[offset..].starts_with("```");
                let (name, width) = if fence { ("Pre", 3) } else { ("Code", 1) };
                let mut j = i + width;
                loop {
                    match at(j) {
                        None => {
                            return Err(format!(
                                "Can't find end of {name} entity at byte offset {offset}"
                            ));
                        }
                        Some('\\') => j += 2,
                        Some('`') if !fence || text[chars[j].0..].starts_with("```") => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + width - 1;
            }
            '*' => toggle("Bold", offset),
            '~' => toggle("Strikethrough", offset),
            '_' if at(i + 1) == Some('_') => {
                toggle("Underline", offset);
                i += 1;
            }
            '_' => toggle("Italic", offset),
            '|' if at(i + 1) == Some('|') => {
                toggle("Spoiler", offset);
                i += 1;
            }
            '[' if link.is_none() => link = Some(offset),
            ']' if link.is_some() => {
                link = None;
                if at(i + 1) == Some('(') {
                    let mut j = i + 2;
                    loop {
                        match at(j) {
                            None => {
                                return Err(format!(
                                    "Can't find end of a URL at byte offset {}",
                                    chars[i + 1].0
                                ));
                            }
                            Some('\\') => j += 2,
                            Some(')') => break,
                            Some(_) => j += 1,
                        }
                    }
                    i = j;
                }
            }
            '>' if i == 0 || at(i - 1) == Some('\n') => {}
            c if RESERVED.contains(c) => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\'"
                ));
            }
            _ => {}
        }
        i += 1;
    }
    if let Some((name, offset)) = open.last() {
        return Err(format!(
            "Can't find end of {name} entity at byte offset {offset}"
        ));
    }
    if let Some(offset) = link {
        return Err(format!(
            "Can't find end of TextUrl entity at byte offset {offset}"
        ));
    }
    Ok(())
}

/// A `photo` array or a `document` object for an uploaded file (described by the parser) or a
/// file id / URL.
fn media_json(key: &str, file: &Value) -> Value {
    let size = file["size"].as_u64().unwrap_or(0);
    let id = format!("AgAC{}", random_token(40));
    let unique = format!("AQAD{}", random_token(12));
    if key == "photo" {
        json!([
            {"file_id": format!("{id}-s"), "file_unique_id": format!("{unique}s"),
             "file_size": size / 8, "width": 90, "height": 90},
            {"file_id": id, "file_unique_id": unique, "file_size": size,
             "width": 800, "height": 800},
        ])
    } else {
        let mut document = json!({"file_id": id, "file_unique_id": unique, "file_size": size});
        if let Some(name) = file["file_name"].as_str().filter(|n| !n.is_empty()) {
            document["file_name"] = name.into();
        }
        if let Some(mime) = file["content_type"].as_str() {
            document["mime_type"] = mime.into();
        }
        document
    }
}

fn me_json() -> Value {
    let mut me = bot_user();
    extend(
        &mut me,
        json!({
            "can_join_groups": true, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "can_connect_to_business": false,
            "has_main_web_app": false,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    me
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME})
}

fn normalize_status(status: &str) -> &str {
    match status {
        "owner" => "creator",
        "admin" => "administrator",
        "banned" => "kicked",
        other => other,
    }
}

/// A `ChatMember` with every field its status requires.
fn member_json(user: Value, status: &str) -> Value {
    let status = normalize_status(status);
    let mut member = json!({"user": user, "status": status});
    let extra = match status {
        "creator" => json!({"is_anonymous": false}),
        "administrator" => json!({
            "can_be_edited": false, "is_anonymous": false, "can_manage_chat": true,
            "can_delete_messages": true, "can_manage_video_chats": true,
            "can_restrict_members": true, "can_promote_members": false, "can_change_info": true,
            "can_invite_users": true, "can_post_stories": false, "can_edit_stories": false,
            "can_delete_stories": false, "can_post_messages": true, "can_edit_messages": true,
            "can_pin_messages": true, "can_manage_topics": false,
        }),
        "restricted" => json!({
            "until_date": 0, "is_member": true, "can_send_messages": false,
            "can_send_audios": false, "can_send_documents": false, "can_send_photos": false,
            "can_send_videos": false, "can_send_video_notes": false,
            "can_send_voice_notes": false, "can_send_polls": false,
            "can_send_other_messages": false, "can_add_web_page_previews": false,
            "can_change_info": false, "can_invite_users": false, "can_pin_messages": false,
            "can_manage_topics": false,
        }),
        "kicked" => json!({"until_date": 0}),
        _ => json!({}),
    };
    extend(&mut member, extra.as_object().cloned().unwrap_or_default());
    member
}

/// `"@Channel"` → `"@channel"`, `-100123` / `"-100123"` → `"-100123"`.
fn chat_key(chat: &Value) -> String {
    match chat {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.starts_with('@') => s.to_ascii_lowercase(),
        Value::String(s) => s.trim().to_owned(),
        _ => String::new(),
    }
}

fn commands_key(scope: Option<&Value>, language_code: Option<&str>) -> String {
    let scope = scope
        .filter(|s| s["type"] != "default")
        .map_or_else(|| "default".to_owned(), Value::to_string);
    format!("{scope}|{}", language_code.unwrap_or_default())
}

/// The update's type: its one key besides `update_id`.
fn update_kind(update: &Value) -> &str {
    update
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "update_id"))
        .map_or("", String::as_str)
}

fn extend(target: &mut Value, fields: Map<String, Value>) {
    if let Some(object) = target.as_object_mut() {
        object.extend(fields);
    }
}

fn set_or_remove(target: &mut Value, key: &str, value: Option<Value>) {
    if let Some(object) = target.as_object_mut() {
        match value {
            Some(value) => object.insert(key.to_owned(), value),
            None => object.remove(key),
        };
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The content of a text message: `text`, and the `bot_command` entity of a leading `/command`.
fn text_content(text: &str) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("text".into(), text.into());
    if text.starts_with('/') {
        let command = text.split_whitespace().next().unwrap_or(text);
        content.insert(
            "entities".into(),
            json!([{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]),
        );
    }
    content
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Random letters, digits, `_` and `-`.
fn random_token(len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| char::from(ALPHABET[usize::from(rand::random::<u8>() & 63)]))
        .collect()
}
