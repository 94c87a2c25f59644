-- Support conversations (src/domain/support.rs): what subscribers wrote to the shop and what the
-- team answered. Deliveries both ways are rows of `notifications`.

-- One row per conversation; a subscriber has at most one that is not closed.
CREATE TABLE support_conversations (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- open: waits for an answer; answered: the team answered last; closed: done.
    state              text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'answered', 'closed')),
    -- The forum topic of the conversation in SUPPORT_CHAT_ID, when the group has topics.
    topic_id           integer,
    opened_at          timestamptz NOT NULL DEFAULT now(),
    -- The subscriber's oldest message not answered yet (NULL while nothing waits).
    waiting_since      timestamptz,
    last_message_at    timestamptz NOT NULL DEFAULT now(),
    first_response_at  timestamptz,
    answered_at        timestamptz,
    -- Who answered last: `telegram:<id>` or `admin:<username>`.
    answered_by        text,
    closed_at          timestamptz,
    closed_by          text,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'closed') = (closed_at IS NOT NULL))
);
CREATE UNIQUE INDEX support_conversations_one_open ON support_conversations (user_id) WHERE state <> 'closed';
CREATE INDEX support_conversations_state_idx ON support_conversations (state, id DESC);
CREATE TRIGGER support_conversations_touch BEFORE UPDATE ON support_conversations FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();

-- Every message of a conversation, both ways.
CREATE TABLE support_messages (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id    bigint      NOT NULL REFERENCES support_conversations (id) ON DELETE CASCADE,
    -- in: from the subscriber; out: from the team to the subscriber.
    direction          text        NOT NULL CHECK (direction IN ('in', 'out')),
    -- For `out`: `telegram:<id>` or `admin:<username>`.
    author             text,
    kind               text        NOT NULL CHECK (kind IN ('text', 'photo', 'document', 'other')),
    -- The text or the caption.
    body               text,
    -- The Telegram message it was written as (to copy a photo or document on).
    chat_id            bigint,
    message_id         integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- `in`: passed on to the team; `out`: delivered to the subscriber.
    delivered_at       timestamptz,
    CHECK ((direction = 'out') = (author IS NOT NULL))
);
CREATE INDEX support_messages_conversation_idx ON support_messages (conversation_id, id);
CREATE INDEX support_messages_undelivered_idx ON support_messages (conversation_id) WHERE direction = 'in' AND delivered_at IS NULL;

-- The messages the bot posted for a conversation in the team's chats: a reply to any of them
-- answers that conversation.
CREATE TABLE support_forwards (
    chat_id            bigint      NOT NULL,
    message_id         integer     NOT NULL,
    conversation_id    bigint      NOT NULL REFERENCES support_conversations (id) ON DELETE CASCADE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX support_forwards_conversation_idx ON support_forwards (conversation_id);
