//! Dialogue state in the `bot_dialogues` table, through teloxide's `Storage` trait: a restart
//! or another replica continues the conversation where it was.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use teloxide::dispatching::dialogue::Storage;
use teloxide::types::ChatId;

use crate::db::{PgPool, telegram};
use crate::domain::UserId;

/// What the bot waits for in a chat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DialogueState {
    /// Nothing: text is not expected.
    #[default]
    Idle,
    /// The next text is a promo code.
    PromoCode,
    /// The next text is an email address.
    Email,
    /// Admin: the next message is a broadcast's text.
    BroadcastText,
    /// Admin: a broadcast's text, waiting for its audience and confirmation.
    BroadcastReady {
        text: String,
        audience: Option<crate::domain::broadcast::Segment>,
    },
    /// Admin: the next text is the number of days to give this user.
    GrantDays { user_id: UserId },
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Database(String),
    #[error("stored dialogue state is not readable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl From<diesel::result::Error> for StorageError {
    fn from(e: diesel::result::Error) -> Self {
        StorageError::Database(e.to_string())
    }
}

impl From<crate::db::PoolError> for StorageError {
    fn from(e: crate::db::PoolError) -> Self {
        StorageError::Database(e.to_string())
    }
}

/// teloxide dialogue storage on PostgreSQL (JSON state per chat).
pub struct PgStorage {
    pool: PgPool,
}

impl PgStorage {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(PgStorage { pool })
    }
}

impl<D> Storage<D> for PgStorage
where
    D: Serialize + DeserializeOwned + Send + 'static,
{
    type Error = StorageError;

    fn remove_dialogue(
        self: Arc<Self>,
        chat_id: ChatId,
    ) -> BoxFuture<'static, Result<(), Self::Error>>
    where
        D: Send + 'static,
    {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            telegram::remove_dialogue(&mut conn, chat_id.0).await?;
            Ok(())
        })
    }

    fn update_dialogue(
        self: Arc<Self>,
        chat_id: ChatId,
        dialogue: D,
    ) -> BoxFuture<'static, Result<(), Self::Error>>
    where
        D: Send + 'static,
    {
        Box::pin(async move {
            let state = serde_json::to_value(&dialogue)?;
            let mut conn = self.pool.get().await?;
            telegram::put_dialogue(&mut conn, chat_id.0, &state).await?;
            Ok(())
        })
    }

    fn get_dialogue(
        self: Arc<Self>,
        chat_id: ChatId,
    ) -> BoxFuture<'static, Result<Option<D>, Self::Error>> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            match telegram::dialogue(&mut conn, chat_id.0).await? {
                Some(state) => Ok(Some(serde_json::from_value(state)?)),
                None => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_tagged_json() {
        let s = DialogueState::GrantDays { user_id: UserId(7) };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"state": "grant_days", "user_id": 7})
        );
        assert_eq!(serde_json::from_value::<DialogueState>(json).unwrap(), s);
        assert_eq!(
            serde_json::to_value(DialogueState::PromoCode).unwrap(),
            serde_json::json!({"state": "promo_code"})
        );
    }
}
