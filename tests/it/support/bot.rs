//! The shop with its Telegram bot running against the fake Bot API and a fake panel (Marzban
//! unless told another kind): send a message or press a button as a user, wait for the bot's
//! answer.

use std::time::Duration;

use serde_json::Value;

use super::app::{TestApp, spawn_app};
use super::panels::{AnyPanel, Kind, PanelFake};
use super::telegram::{self as tg, FakeTelegram, SentMessage};

/// The Telegram id of the shop's admin in these tests (ADMIN_TELEGRAM_IDS).
pub const ADMIN_ID: i64 = 9_000_001;
/// How long a test waits for the bot.
pub const WAIT: Duration = Duration::from_secs(15);

pub struct BotShop {
    pub app: TestApp,
    pub telegram: FakeTelegram,
    pub panel: AnyPanel,
}

/// Settings the bot tests share; `extra` overrides them.
pub fn bot_env(telegram: &FakeTelegram, panel: &AnyPanel) -> Vec<(String, String)> {
    let mut env = panel.env(false);
    env.extend(
        [
            ("TELEGRAM_BOT_TOKEN", tg::TOKEN.to_owned()),
            ("TELEGRAM_API_URL", telegram.url()),
            ("JOB_POLL_INTERVAL", "200ms".to_owned()),
            ("JOB_BACKOFF_BASE", "100ms".to_owned()),
            ("JOB_BACKOFF_MAX", "500ms".to_owned()),
            ("ADMIN_TELEGRAM_IDS", ADMIN_ID.to_string()),
            ("SUPPORT_CONTACT", "@shop_support".to_owned()),
            // Tests send faster than people; the limit has a test of its own.
            ("BOT_RATE_LIMIT", "1000/1s".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// The bot shop on a Marzban panel.
pub async fn bot_shop(extra: &[(&str, &str)]) -> BotShop {
    bot_shop_on(Kind::Marzban, extra).await
}

/// The bot shop on a panel of `kind`; `extra` overrides the settings.
pub async fn bot_shop_on(kind: Kind, extra: &[(&str, &str)]) -> BotShop {
    let telegram = FakeTelegram::start();
    let panel = AnyPanel::start(kind);
    let mut env = bot_env(&telegram, &panel);
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app(&pairs).await;
    let shop = BotShop {
        app,
        telegram,
        panel,
    };
    // Connected: the command menus (and, in webhook mode, the webhook) are set once getMe
    // answered.
    shop.telegram.wait_for_calls("setMyCommands", 2, WAIT).await;
    if env
        .iter()
        .any(|(k, v)| k == "TELEGRAM_MODE" && v == "webhook")
    {
        shop.telegram.wait_for_calls("setWebhook", 1, WAIT).await;
    }
    shop
}

impl BotShop {
    /// Everything the bot posted or edited in `chat` so far.
    pub fn messages(&self, chat: i64) -> Vec<SentMessage> {
        self.telegram.messages_to(chat)
    }

    /// Waits until the bot posted (or edited) a message in `chat` beyond the first `seen`.
    pub async fn next_after(&self, chat: i64, seen: usize) -> SentMessage {
        let messages = self.telegram.wait_for_messages(chat, seen + 1, WAIT).await;
        messages.get(seen).cloned().unwrap_or_else(|| {
            panic!("the bot did not answer in chat {chat}; it sent {messages:#?}")
        })
    }

    /// Sends `text` as user `from` and returns the bot's first answer.
    pub async fn say(&self, from: i64, text: &str) -> SentMessage {
        let seen = self.messages(from).len();
        self.telegram.push_message(from, text);
        self.next_after(from, seen).await
    }

    /// Presses the button with callback `data` under message `message_id` and returns the bot's
    /// first answer (an edit of that message, or a new one).
    pub async fn press(&self, from: i64, message_id: i64, data: &str) -> SentMessage {
        let seen = self.messages(from).len();
        self.telegram.push_callback(from, message_id, data);
        self.next_after(from, seen).await
    }

    /// Waits for a message to `chat` whose text contains `needle`.
    pub async fn wait_text(&self, chat: i64, needle: &str) -> SentMessage {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(m) = self
                .messages(chat)
                .into_iter()
                .find(|m| m.text.contains(needle))
            {
                return m;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "no message containing {needle:?} in chat {chat}: {:#?}",
                    self.messages(chat)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The callback data (or the address) of a message's inline buttons, row by row flattened.
pub fn buttons(message: &SentMessage) -> Vec<(String, String)> {
    let Some(markup) = &message.reply_markup else {
        return Vec::new();
    };
    markup["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b: Value| {
            let text = b["text"].as_str().unwrap_or_default().to_owned();
            let target = b["callback_data"]
                .as_str()
                .or_else(|| b["url"].as_str())
                .or_else(|| b["web_app"]["url"].as_str())
                .unwrap_or_default()
                .to_owned();
            (text, target)
        })
        .collect()
}

/// The callback data of the button labelled `label`.
pub fn button(message: &SentMessage, label: &str) -> String {
    buttons(message)
        .into_iter()
        .find(|(text, _)| text == label)
        .map(|(_, data)| data)
        .unwrap_or_else(|| panic!("no button {label:?} in {:#?}", buttons(message)))
}
