//! Support conversations: a subscriber writes to the bot, the team (the `SUPPORT_CHAT_ID` group
//! or each of `ADMIN_TELEGRAM_IDS`) reads it and answers, the bot delivers the answer. Here are
//! the states, the delivery jobs and how a run of messages is batched for the team; the rows are
//! `db::support`, the bot's side `actors::bot::support`, the deliveries the Notifier's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{ConversationId, SupportMessageId};

/// Job kind of every support delivery (to the team and to the subscriber).
pub const SUPPORT_JOB: &str = "support_deliver";

/// A subscriber's messages are passed on this long after the first of a run: messages typed in
/// a row go to the team together.
pub const BATCH_DELAY: chrono::Duration = chrono::Duration::seconds(2);

/// Photos and documents copied to the team per batch; the rest are counted, not copied.
pub const MAX_MEDIA_PER_BATCH: usize = 3;

/// Characters of text in one message to the team (Telegram takes 4096; the header needs some).
pub const MAX_BATCH_TEXT: usize = 3500;

text_enum!(
    /// Where a conversation stands (`support_conversations.state`).
    ConversationState {
        /// The subscriber waits for an answer.
        Open => "open",
        /// The team answered last.
        Answered => "answered",
        /// Done; the subscriber's next message opens a new conversation.
        Closed => "closed",
    }
);

text_enum!(
    /// Which way a message went.
    Direction {
        /// From the subscriber to the team.
        In => "in",
        /// From the team to the subscriber.
        Out => "out",
    }
);

text_enum!(
    /// What a message holds.
    SupportMessageKind {
        Text => "text",
        Photo => "photo",
        Document => "document",
        /// A sticker, voice message, …: passed on as it is.
        Other => "other",
    }
);

impl SupportMessageKind {
    /// Passed on by copying the Telegram message (the team sees the file).
    pub const fn is_media(self) -> bool {
        !matches!(self, SupportMessageKind::Text)
    }
}

/// One delivery job (`support_deliver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupportJob {
    /// Pass the subscriber's messages not passed on yet to the team.
    Forward { conversation_id: ConversationId },
    /// Deliver the team's answer to the subscriber.
    Reply { message_id: SupportMessageId },
    /// Tell the subscriber the conversation was closed.
    Closed { conversation_id: ConversationId },
}

impl SupportJob {
    /// At most one pending job per conversation forward: later messages join its batch.
    pub fn dedup_key(&self) -> String {
        match self {
            SupportJob::Forward { conversation_id } => format!("support:forward:{conversation_id}"),
            SupportJob::Reply { message_id } => format!("support:reply:{message_id}"),
            SupportJob::Closed { conversation_id } => format!("support:closed:{conversation_id}"),
        }
    }
}

/// A message of the subscriber waiting to be passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: SupportMessageId,
    pub kind: SupportMessageKind,
    pub body: Option<String>,
    pub at: DateTime<Utc>,
}

/// What one batch sends to each of the team's chats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// The texts, joined into messages of at most [`MAX_BATCH_TEXT`] characters, each with the
    /// first message it holds (its identity for delivery).
    pub texts: Vec<(SupportMessageId, String)>,
    /// Media to copy, in order.
    pub media: Vec<SupportMessageId>,
    /// Media not copied (more than [`MAX_MEDIA_PER_BATCH`]): counted in the last text.
    pub media_left_out: usize,
}

/// Groups a run of messages: the texts (captions of media left out included) joined into as few
/// messages as fit, at most [`MAX_MEDIA_PER_BATCH`] media copied. However many messages a
/// subscriber sends at once, the team gets a few.
pub fn batch(pending: &[Pending]) -> Batch {
    let mut out = Batch::default();
    let mut current: Option<(SupportMessageId, String)> = None;
    let mut push_text = |id: SupportMessageId, text: &str, out: &mut Batch| {
        let text: String = text.chars().take(MAX_BATCH_TEXT).collect();
        if let Some((_, joined)) = &current
            && joined.chars().count() + text.chars().count() + 2 > MAX_BATCH_TEXT
            && let Some(full) = current.take()
        {
            out.texts.push(full);
        }
        match &mut current {
            Some((_, joined)) => {
                joined.push_str("\n\n");
                joined.push_str(&text);
            }
            None => current = Some((id, text)),
        }
    };
    for message in pending {
        if message.kind.is_media() {
            if out.media.len() < MAX_MEDIA_PER_BATCH {
                out.media.push(message.id);
                continue;
            }
            out.media_left_out += 1;
            if let Some(caption) = message.body.as_deref().filter(|c| !c.trim().is_empty()) {
                push_text(message.id, caption, &mut out);
            }
            continue;
        }
        if let Some(text) = message.body.as_deref().filter(|t| !t.trim().is_empty()) {
            push_text(message.id, text, &mut out);
        }
    }
    if let Some(last) = current {
        out.texts.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: i64, kind: SupportMessageKind, body: &str) -> Pending {
        Pending {
            id: SupportMessageId(id),
            kind,
            body: Some(body.to_owned()),
            at: Utc::now(),
        }
    }

    #[test]
    fn a_run_of_texts_becomes_one_message() {
        let run: Vec<_> = (1..=20)
            .map(|i| msg(i, SupportMessageKind::Text, &format!("line {i}")))
            .collect();
        let b = batch(&run);
        assert_eq!(b.texts.len(), 1);
        assert_eq!(b.texts[0].0, SupportMessageId(1));
        assert!(b.texts[0].1.starts_with("line 1\n\nline 2"));
        assert!(b.texts[0].1.ends_with("line 20"));
        assert!(b.media.is_empty());
    }

    #[test]
    fn long_texts_are_split_under_the_limit() {
        let long = "x".repeat(2000);
        let run: Vec<_> = (1..=5)
            .map(|i| msg(i, SupportMessageKind::Text, &long))
            .collect();
        let b = batch(&run);
        assert!(b.texts.len() >= 3);
        assert!(
            b.texts
                .iter()
                .all(|t| t.1.chars().count() <= MAX_BATCH_TEXT)
        );
        let huge = batch(&[msg(1, SupportMessageKind::Text, &"y".repeat(10_000))]);
        assert_eq!(huge.texts[0].1.chars().count(), MAX_BATCH_TEXT);
    }

    #[test]
    fn media_beyond_the_cap_are_counted_and_their_captions_kept() {
        let run: Vec<_> = (1..=6)
            .map(|i| msg(i, SupportMessageKind::Photo, &format!("shot {i}")))
            .collect();
        let b = batch(&run);
        assert_eq!(b.media.len(), MAX_MEDIA_PER_BATCH);
        assert_eq!(b.media_left_out, 6 - MAX_MEDIA_PER_BATCH);
        assert_eq!(
            b.texts,
            vec![(SupportMessageId(4), "shot 4\n\nshot 5\n\nshot 6".to_owned())]
        );
    }

    #[test]
    fn job_keys_name_their_target() {
        let job = SupportJob::Forward {
            conversation_id: ConversationId(7),
        };
        assert_eq!(job.dedup_key(), "support:forward:7");
        let json = serde_json::to_value(job).unwrap();
        assert_eq!(json["type"], "forward");
        assert_eq!(serde_json::from_value::<SupportJob>(json).unwrap(), job);
    }
}
