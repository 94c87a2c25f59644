//! Support conversations through the real app and the fake Bot API: a subscriber's question
//! reaches the team (each admin, or the support group with a topic per conversation) with the
//! subscriber's card, the team's answer reaches the subscriber, photos are copied, a flood is
//! batched, conversations close, and the admin API lists and acts on them.

use crate::support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;
use support::bot::{ADMIN_ID, BotShop, WAIT, bot_shop, buttons};
use support::telegram::SentMessage;
use support::wait_until_within;
use vpn_shop::db::schema::{support_conversations, users};
use vpn_shop::db::support::ConversationRow;
use vpn_shop::domain::AdminRole;
use vpn_shop::domain::support::ConversationState;

/// A supergroup with topics, as `SUPPORT_CHAT_ID`.
const GROUP: i64 = -1_001_234_567_890;
const ACK: &str = "passed on to the shop's team";

/// The shop with its bot; the team reads English and gets no daily digest.
async fn support_shop(extra: &[(&str, &str)]) -> BotShop {
    let mut settings = vec![("ADMIN_LANGUAGE", "en"), ("ADMIN_DIGEST_AT", "off")];
    settings.extend_from_slice(extra);
    bot_shop(&settings).await
}

async fn conversations(shop: &BotShop) -> Vec<ConversationRow> {
    support_conversations::table
        .select(ConversationRow::as_select())
        .order(support_conversations::id)
        .load(&mut shop.app.db.connect().await)
        .await
        .expect("conversations")
}

/// The messages in `chat` containing `needle`.
fn containing(shop: &BotShop, chat: i64, needle: &str) -> Vec<SentMessage> {
    shop.messages(chat)
        .into_iter()
        .filter(|m| m.text.contains(needle))
        .collect()
}

/// Waits until `chat` holds a message containing `needle`; all such messages.
async fn wait_for(shop: &BotShop, chat: i64, needle: &str) -> Vec<SentMessage> {
    let what = format!("a message with {needle:?} in chat {chat}");
    wait_until_within(&what, WAIT, || async {
        !containing(shop, chat, needle).is_empty()
    })
    .await;
    containing(shop, chat, needle)
}

#[actix_rt::test]
async fn a_question_reaches_the_admins_with_the_card_and_the_answer_comes_back() {
    let shop = support_shop(&[]).await;
    let user = 7101;
    shop.telegram.set_user(user, "Anna", Some("anna_v"));
    let ack = shop.say(user, "I paid and it does not connect").await;
    assert!(ack.text.contains(ACK), "{}", ack.text);
    shop.telegram.push_message(user, "Order 42, paid by card");

    let card = wait_for(&shop, ADMIN_ID, "Support #").await;
    assert_eq!(card.len(), 1, "one card per conversation");
    let card = &card[0].text;
    for needle in [
        "Anna @anna_v",
        "Telegram <code>7101</code>",
        "<b>Language:</b> en",
        "<b>Subscription:</b> none",
        "<b>Last payment:</b> none",
        "/api/v1/users/",
    ] {
        assert!(card.contains(needle), "{needle:?} not in the card: {card}");
    }
    let question = wait_for(&shop, ADMIN_ID, "Order 42").await;
    let question = question.last().expect("the question");
    assert!(
        shop.messages(ADMIN_ID)
            .iter()
            .any(|m| m.text.contains("I paid and it does not connect")),
        "{:#?}",
        shop.messages(ADMIN_ID)
    );
    // Acknowledged once per conversation, not per message.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(containing(&shop, user, ACK).len(), 1);

    // The admin answers by replying to the forwarded question.
    shop.telegram
        .push_reply(ADMIN_ID, "Reconnect once, it is fixed", question.message_id);
    let answer = wait_for(&shop, user, "Reconnect once, it is fixed").await;
    assert!(answer[0].text.contains("Support:"), "{}", answer[0].text);

    let rows = conversations(&shop).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.state, ConversationState::Answered);
    assert_eq!(row.answered_by.as_deref(), Some("telegram:9000001"));
    assert!(row.first_response_at.is_some());
    assert_eq!(row.waiting_since, None);
    let metrics = shop
        .app
        .get("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("vpn_shop_support_first_response_seconds_count 1"),
        "{metrics}"
    );

    // /tickets lists it; /close ends it and the subscriber is told.
    let tickets = shop.say(ADMIN_ID, "/tickets").await;
    assert!(
        tickets.text.contains(&format!("#{}", row.id)),
        "{}",
        tickets.text
    );
    let closed = shop.say(ADMIN_ID, &format!("/close {}", row.id)).await;
    assert!(closed.text.contains("closed"), "{}", closed.text);
    wait_for(&shop, user, "conversation with support is closed").await;
    assert_eq!(
        conversations(&shop).await[0].state,
        ConversationState::Closed
    );
    assert_eq!(shop.app.audit_rows("support.close").await.len(), 1);
    // The next message opens a new conversation, acknowledged again.
    let again = shop.say(user, "One more thing").await;
    assert!(again.text.contains(ACK), "{}", again.text);
    assert_eq!(conversations(&shop).await.len(), 2);
}

#[actix_rt::test]
async fn a_photo_is_copied_to_the_admins() {
    let shop = support_shop(&[]).await;
    let user = 7102;
    shop.telegram.push_photo(user, Some("my receipt"));
    let copies = shop.telegram.wait_for_calls("copyMessage", 1, WAIT).await;
    let [copy, ..] = copies.as_slice() else {
        panic!("the photo is not copied");
    };
    assert_eq!(copy.params["chat_id"], ADMIN_ID);
    assert_eq!(copy.params["from_chat_id"], user);
    let copied = wait_for(&shop, ADMIN_ID, "my receipt").await;
    assert_eq!(copied[0].method, "copyMessage");
    // The subscriber was told it reached the team.
    wait_for(&shop, user, ACK).await;
}

#[actix_rt::test]
async fn a_flood_of_messages_reaches_the_team_in_a_few_posts() {
    let shop = support_shop(&[]).await;
    let user = 7103;
    for i in 1..=12 {
        shop.telegram
            .push_message(user, &format!("line number {i}"));
    }
    wait_for(&shop, ADMIN_ID, "line number 12").await;
    shop.app.wait_jobs_idle("support_deliver").await;
    let posts: Vec<SentMessage> = shop
        .messages(ADMIN_ID)
        .into_iter()
        .filter(|m| m.text.contains("line number"))
        .collect();
    assert!(posts.len() <= 3, "12 messages became {} posts", posts.len());
    let all: String = posts.iter().map(|m| format!("{}\n", m.text)).collect();
    for i in 1..=12 {
        assert!(
            all.contains(&format!("line number {i}\n")),
            "line {i} missing: {all}"
        );
    }
    assert_eq!(containing(&shop, user, ACK).len(), 1);
}

#[actix_rt::test]
async fn the_support_group_gets_a_topic_per_conversation_and_answers_from_it() {
    let group = GROUP.to_string();
    let shop = support_shop(&[("SUPPORT_CHAT_ID", group.as_str())]).await;
    shop.telegram.set_forum(GROUP);
    let user = 7104;
    shop.telegram.set_user(user, "Boris", None);
    shop.telegram
        .push_message(user, "No internet since the morning");
    let question = wait_for(&shop, GROUP, "No internet since the morning").await;
    let topics = shop.telegram.topics(GROUP);
    assert_eq!(topics.len(), 1, "{topics:?}");
    let (thread, name) = &topics[0];
    assert!(name.contains("Boris"), "{name}");
    assert_eq!(question[0].params["message_thread_id"], *thread);
    let card = wait_for(&shop, GROUP, "Support #").await;
    assert_eq!(card[0].params["message_thread_id"], *thread);
    // Nothing goes to the admins' own chats when there is a group.
    assert!(
        shop.messages(ADMIN_ID)
            .iter()
            .all(|m| !m.text.contains("No internet")),
    );

    // A team member (not in ADMIN_TELEGRAM_IDS) answers by writing in the topic.
    shop.telegram
        .push_group_message(GROUP, 555, "Restart the app, please", None, Some(*thread));
    let answer = wait_for(&shop, user, "Restart the app, please").await;
    assert!(answer[0].text.contains("Support:"));
    assert_eq!(
        conversations(&shop).await[0].answered_by.as_deref(),
        Some("telegram:555")
    );

    // /close in the topic.
    shop.telegram
        .push_group_message(GROUP, 555, "/close", None, Some(*thread));
    wait_for(&shop, GROUP, "closed; the subscriber was told").await;
    wait_for(&shop, user, "conversation with support is closed").await;
    // An answer to a closed conversation is refused in the group, not delivered.
    shop.telegram
        .push_group_message(GROUP, 555, "Late words", None, Some(*thread));
    wait_for(&shop, GROUP, "is closed: the answer was not sent").await;
    assert!(
        shop.messages(user)
            .iter()
            .all(|m| !m.text.contains("Late words"))
    );
}

#[actix_rt::test]
async fn a_group_without_topics_gets_the_questions_in_the_group() {
    let group = GROUP.to_string();
    let shop = support_shop(&[("SUPPORT_CHAT_ID", group.as_str())]).await;
    let user = 7105;
    shop.telegram.push_message(user, "Where is my link?");
    let question = wait_for(&shop, GROUP, "Where is my link?").await;
    assert!(question[0].params.get("message_thread_id").is_none());
    assert!(shop.telegram.topics(GROUP).is_empty());
    // Answered by replying to the bot's post.
    shop.telegram.push_group_message(
        GROUP,
        556,
        "Press /status",
        Some(question[0].message_id),
        None,
    );
    wait_for(&shop, user, "Press /status").await;
}

#[actix_rt::test]
async fn the_api_lists_answers_and_closes_conversations() {
    let shop = support_shop(&[]).await;
    let user = 7106;
    shop.telegram.push_message(user, "Is there a yearly plan?");
    wait_for(&shop, ADMIN_ID, "Is there a yearly plan?").await;
    let app = &shop.app;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let operator = app.token_for(AdminRole::Operator).await;

    let (status, page) = app
        .call("GET", "/api/v1/support/conversations", Some(&viewer), None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 1);
    let item = &page["items"][0];
    assert_eq!(item["telegram_id"], user);
    assert_eq!(item["state"], "open");
    assert_eq!(item["messages"], 1);
    let id = item["id"].as_i64().expect("id");
    let (status, bad) = app
        .call(
            "GET",
            "/api/v1/support/conversations?state=lost",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 422, "{bad}");

    let (status, one) = app
        .call(
            "GET",
            &format!("/api/v1/support/conversations/{id}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["messages"][0]["body"], "Is there a yearly plan?");
    assert_eq!(one["messages"][0]["direction"], "in");
    let (status, _) = app
        .call(
            "GET",
            "/api/v1/support/conversations/999999",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let reply = format!("/api/v1/support/conversations/{id}/reply");
    let body = json!({"text": "Not yet — soon."});
    let (status, _) = app
        .call("POST", &reply, Some(&viewer), Some(body.clone()))
        .await;
    assert_eq!(status, 403);
    let (status, empty) = app
        .call("POST", &reply, Some(&operator), Some(json!({"text": "  "})))
        .await;
    assert_eq!(status, 422, "{empty}");
    let (status, answered) = app.call("POST", &reply, Some(&operator), Some(body)).await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["state"], "answered");
    assert_eq!(answered["answered_by"], "admin:operator-user");
    wait_for(&shop, user, "Not yet — soon.").await;
    assert_eq!(app.audit_rows("support.reply").await.len(), 1);

    let close = format!("/api/v1/support/conversations/{id}/close");
    let (status, closed) = app.call("POST", &close, Some(&operator), None).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["state"], "closed");
    wait_for(&shop, user, "conversation with support is closed").await;
    let (status, again) = app.call("POST", &close, Some(&operator), None).await;
    assert_eq!(status, 409, "{again}");
    let (status, late) = app
        .call(
            "POST",
            &reply,
            Some(&operator),
            Some(json!({"text": "late"})),
        )
        .await;
    assert_eq!(status, 409, "{late}");
    let (status, open) = app
        .call(
            "GET",
            "/api/v1/support/conversations?state=open",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!((status, open["total"].clone()), (200, json!(0)));
}

#[actix_rt::test]
async fn help_promises_a_reader_only_when_there_is_one() {
    // Admins read questions: /help says to write here and offers the button.
    let shop = support_shop(&[]).await;
    let help = shop.say(7107, "/help").await;
    assert!(
        help.text.contains("Write your question right here"),
        "{}",
        help.text
    );
    assert!(help.text.contains("@shop_support"), "{}", help.text);
    assert!(buttons(&help).iter().any(|(_, data)| data == "support"));
    let prompt = shop.say(7107, "/support").await;
    assert!(
        prompt.text.contains("Describe the problem"),
        "{}",
        prompt.text
    );
    drop(shop);

    // Nobody reads them: only the contact, and free text is not taken as a question.
    let shop = support_shop(&[("ADMIN_TELEGRAM_IDS", "")]).await;
    let help = shop.say(7108, "/help").await;
    assert!(!help.text.contains("Write your question"), "{}", help.text);
    assert!(
        help.text.contains("Support: @shop_support"),
        "{}",
        help.text
    );
    assert!(buttons(&help).iter().all(|(_, data)| data != "support"));
    let text = shop.say(7108, "hello?").await;
    assert!(text.text.contains("I did not understand"), "{}", text.text);
    assert!(conversations(&shop).await.is_empty());
    drop(shop);

    // Neither a reader nor a contact: /help promises nothing.
    let shop = support_shop(&[("ADMIN_TELEGRAM_IDS", ""), ("SUPPORT_CONTACT", "")]).await;
    let help = shop.say(7109, "/help").await;
    assert!(!help.text.contains("Write your question"), "{}", help.text);
    assert!(!help.text.contains("Support:"), "{}", help.text);
}

#[actix_rt::test]
async fn a_banned_user_gets_no_conversation() {
    let shop = support_shop(&[]).await;
    let user = 7110;
    shop.say(user, "/start").await;
    diesel::update(users::table.filter(users::telegram_id.eq(user)))
        .set(users::banned.eq(true))
        .execute(&mut shop.app.db.connect().await)
        .await
        .expect("ban");
    let told = shop.say(user, "let me in").await;
    assert!(told.text.contains("blocked"), "{}", told.text);
    assert!(conversations(&shop).await.is_empty());
    assert!(
        shop.messages(ADMIN_ID)
            .iter()
            .all(|m| !m.text.contains("let me in")),
        "{:#?}",
        shop.messages(ADMIN_ID)
    );
}

#[actix_rt::test]
async fn a_failed_payment_message_offers_support_and_the_button_opens_it() {
    use vpn_shop::db::notifications;
    use vpn_shop::domain::Money;
    use vpn_shop::domain::notifications::{FailureReason, Notification, NotifyJob};

    let shop = support_shop(&[]).await;
    let user = 7111;
    shop.say(user, "/start").await;
    let user_id: vpn_shop::domain::UserId = users::table
        .filter(users::telegram_id.eq(user))
        .select(users::id)
        .first(&mut shop.app.db.connect().await)
        .await
        .expect("registered");
    let job = NotifyJob {
        user_id,
        notification: Notification::PaymentFailed {
            plan: "1 month".into(),
            amount: Money::rub_kopecks(19900),
            reason: FailureReason::InsufficientFunds,
        },
        dedup_key: format!("payment_failed:{user_id}:1"),
    };
    notifications::enqueue_once(&mut shop.app.db.connect().await, &job, 20)
        .await
        .expect("enqueued");
    let failed = wait_for(&shop, user, "did not go through").await;
    let data = buttons(&failed[0])
        .into_iter()
        .find(|(text, _)| text == "✉️ Write to support")
        .map(|(_, data)| data)
        .expect("a support button under the failed payment");
    let prompt = shop.press(user, failed[0].message_id, &data).await;
    assert!(
        prompt.text.contains("Describe the problem"),
        "{}",
        prompt.text
    );
    let ack = shop.say(user, "My card was charged twice").await;
    assert!(ack.text.contains(ACK), "{}", ack.text);
    wait_for(&shop, ADMIN_ID, "My card was charged twice").await;
}
