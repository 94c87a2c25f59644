//! Telegram subscribers: lookups, the admin list (search, filters, sorts), profile changes, and
//! what the admin profile shows of a user's payments and referrals.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::User;
use crate::db::schema::{payments, referrals, row_counts, subscriptions, users};
use crate::domain::{
    Currency, Language, PaymentId, PaymentProvider, PaymentStatus, PlanId, SubscriptionStatus,
    UserId,
};

diesel::define_sql_function!(fn lower(x: Nullable<Text>) -> Nullable<Text>);

pub async fn find(conn: &mut PgConn, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user, locked for the caller's transaction against other changes of the row. `FOR NO KEY
/// UPDATE`, not `FOR UPDATE`: rows that name the user (a notification, a payment) may still be
/// written meanwhile. With `FOR UPDATE` a ban (user locked, then its subscription changed) and an
/// order being fulfilled (subscription changed, then its notification written) waited on each
/// other until PostgreSQL aborted one.
pub async fn lock(conn: &mut PgConn, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()
}

/// The user, locked to be removed: no row naming them can be written until the transaction
/// ends (a foreign key check waits on this lock).
pub async fn lock_to_remove(conn: &mut PgConn, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The user blocked the bot (or is gone): no more Telegram messages until they come back.
pub async fn mark_bot_blocked(conn: &mut PgConn, id: UserId) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::bot_blocked.eq(true))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The remembered promo code was used (or refused for good).
pub async fn clear_pending_promo(conn: &mut PgConn, id: UserId) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::pending_promo_id.eq(None::<crate::domain::PromoCodeId>))
        .execute(conn)
        .await
        .map(|_| ())
}

/// What an admin's search text means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// Digits: exactly this Telegram id.
    TelegramId(i64),
    /// A username prefix (without `@`, lower-case), and for text with `@` and a dot the whole
    /// text as an email address (lower-case) too.
    Text {
        username_prefix: String,
        email: Option<String>,
    },
}

impl Search {
    /// Reads `q`; `None` when there is nothing to search for.
    pub fn parse(q: &str) -> Option<Search> {
        let q = q.trim();
        if let Ok(id) = q.parse::<i64>() {
            return Some(Search::TelegramId(id));
        }
        let name = q.trim_start_matches('@');
        let email = (q.contains('@') && q.contains('.')).then(|| q.to_lowercase());
        if name.is_empty() && email.is_none() {
            return None;
        }
        Some(Search::Text {
            username_prefix: name.to_lowercase(),
            email,
        })
    }
}

/// `status` of the admin list: a subscription status, or no subscription at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Is(SubscriptionStatus),
    NoSubscription,
}

/// Order of the admin list; the user id breaks ties in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSort {
    CreatedAt,
    #[default]
    CreatedAtDesc,
    TelegramId,
    TelegramIdDesc,
    /// Users without a subscription come last in both directions.
    ExpiresAt,
    ExpiresAtDesc,
}

impl UserSort {
    pub const SPELLINGS: [&str; 6] = [
        "created_at",
        "-created_at",
        "telegram_id",
        "-telegram_id",
        "expires_at",
        "-expires_at",
    ];

    pub fn parse(s: &str) -> Option<UserSort> {
        Some(match s {
            "created_at" => UserSort::CreatedAt,
            "-created_at" => UserSort::CreatedAtDesc,
            "telegram_id" => UserSort::TelegramId,
            "-telegram_id" => UserSort::TelegramIdDesc,
            "expires_at" => UserSort::ExpiresAt,
            "-expires_at" => UserSort::ExpiresAtDesc,
            _ => return None,
        })
    }
}

/// Filters of the admin list; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub search: Option<Search>,
    pub status: Option<StatusFilter>,
    /// Has (or has not) a `succeeded` payment.
    pub has_paid: Option<bool>,
    /// The subscription is (or is not: also no subscription) a trial.
    pub trial: Option<bool>,
    pub banned: Option<bool>,
    pub language: Option<Language>,
    /// `created_at >= created_from`.
    pub created_from: Option<DateTime<Utc>>,
    /// `created_at < created_to`.
    pub created_to: Option<DateTime<Utc>>,
}

impl UserFilter {
    fn is_empty(&self) -> bool {
        self.search.is_none()
            && self.status.is_none()
            && self.has_paid.is_none()
            && self.trial.is_none()
            && self.banned.is_none()
            && self.language.is_none()
            && self.created_from.is_none()
            && self.created_to.is_none()
    }
}

/// A user as the admin list shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: UserId,
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub language: Language,
    pub email: Option<String>,
    pub banned: bool,
    pub bot_blocked: bool,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// The subscription as the admin list shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct SubscriptionBrief {
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    pub expires_at: DateTime<Utc>,
    pub plan_id: Option<PlanId>,
}

/// Escapes `%`, `_` and the escape character itself for a `LIKE` pattern.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

type UsersWithSubscription = diesel::dsl::LeftJoin<users::table, subscriptions::table>;

/// The filtered query; with no subscription filter PostgreSQL drops the join (unique user_id).
fn filtered(
    f: &UserFilter,
) -> diesel::dsl::IntoBoxed<'static, UsersWithSubscription, diesel::pg::Pg> {
    let mut q = users::table.left_join(subscriptions::table).into_boxed();
    match &f.search {
        None => {}
        Some(Search::TelegramId(id)) => q = q.filter(users::telegram_id.eq(*id)),
        Some(Search::Text {
            username_prefix,
            email,
        }) => {
            // The range in text_pattern_ops order lets the index serve prepared statements too:
            // a cached (generic) plan cannot use the index for `LIKE $1`, only for the range.
            let in_range = sql::<Bool>("lower(users.username) ~>=~ ")
                .bind::<Text, _>(username_prefix.clone())
                .sql(" AND lower(users.username) ~<~ ")
                .bind::<Text, _>(format!("{username_prefix}\u{10FFFF}"));
            let by_name = in_range.and(lower(users::username).like(like_prefix(username_prefix)));
            q = match email {
                Some(email) => q.filter(by_name.or(lower(users::email).eq(email.clone()))),
                None => q.filter(by_name),
            };
        }
    }
    match f.status {
        None => {}
        Some(StatusFilter::Is(status)) => {
            q = q.filter(subscriptions::status.nullable().eq(status));
        }
        Some(StatusFilter::NoSubscription) => q = q.filter(subscriptions::id.nullable().is_null()),
    }
    if let Some(paid) = f.has_paid {
        // Literal SQL without input: the DSL cannot express a correlated EXISTS.
        let exists = "EXISTS (SELECT 1 FROM payments p WHERE p.user_id = users.id AND p.status = 'succeeded')";
        q = if paid {
            q.filter(sql::<Bool>(exists))
        } else {
            q.filter(sql::<Bool>("NOT ").sql(exists))
        };
    }
    match f.trial {
        None => {}
        Some(true) => q = q.filter(subscriptions::is_trial.nullable().eq(true)),
        Some(false) => q = q.filter(subscriptions::is_trial.nullable().is_distinct_from(true)),
    }
    if let Some(banned) = f.banned {
        q = q.filter(users::banned.eq(banned));
    }
    if let Some(language) = f.language {
        q = q.filter(users::language.eq(language));
    }
    if let Some(from) = f.created_from {
        q = q.filter(users::created_at.ge(from));
    }
    if let Some(to) = f.created_to {
        q = q.filter(users::created_at.lt(to));
    }
    q
}

/// Up to this many matches, a page is made from the matching ids (see [`list`]).
const FEW_MATCHES: i64 = 2_000;

/// A page of users with their subscriptions, and how many match the filter in all.
///
/// The planner cannot tell how few users a search or a filter matches (a prefix, an exact email,
/// the banned ones) and may walk the whole index of the sort order, or scan the table, for a page
/// of them. So a filtered list first collects the matching ids, which the search indexes find at
/// once: when there are few, they are the total and the page is sorted from them; only a filter
/// that matches many is counted and paged as one query.
pub async fn list(
    conn: &mut PgConn,
    filter: &UserFilter,
    sort: UserSort,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<(UserRow, Option<SubscriptionBrief>)>, i64)> {
    let few: Option<Vec<UserId>> = if filter.is_empty() {
        None
    } else {
        let found: Vec<UserId> = filtered(filter)
            .select(users::id)
            .limit(FEW_MATCHES + 1)
            .load(conn)
            .await?;
        (found.len() as i64 <= FEW_MATCHES).then_some(found)
    };
    let total = match &few {
        Some(ids) => ids.len() as i64,
        None if filter.is_empty() => count_all(conn).await?,
        None => filtered(filter).count().get_result(conn).await?,
    };
    let q = match few {
        Some(ids) => users::table
            .left_join(subscriptions::table)
            .into_boxed()
            .filter(users::id.eq_any(ids)),
        None => filtered(filter),
    };
    let q = match sort {
        UserSort::CreatedAt => q.order((users::created_at.asc(), users::id.asc())),
        UserSort::CreatedAtDesc => q.order((users::created_at.desc(), users::id.desc())),
        UserSort::TelegramId => q.order(users::telegram_id.asc()),
        UserSort::TelegramIdDesc => q.order(users::telegram_id.desc()),
        UserSort::ExpiresAt => q.order((
            subscriptions::expires_at.nullable().asc().nulls_last(),
            users::id.asc(),
        )),
        UserSort::ExpiresAtDesc => q.order((
            subscriptions::expires_at.nullable().desc().nulls_last(),
            users::id.desc(),
        )),
    };
    let items = q
        .select((
            UserRow::as_select(),
            Option::<SubscriptionBrief>::as_select(),
        ))
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}

/// Number of users, from the count the triggers keep (counting 100,000 rows on every page of the
/// admin list would take longer than the page itself).
pub async fn count_all(conn: &mut PgConn) -> QueryResult<i64> {
    let kept = row_counts::table
        .find("users")
        .select(row_counts::n)
        .first::<i64>(conn)
        .await
        .optional()?;
    match kept {
        Some(n) => Ok(n),
        None => users::table.count().get_result(conn).await,
    }
}

/// Profile fields an admin changes; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct ProfileChanges {
    pub banned: Option<bool>,
    pub language: Option<Language>,
    pub email: Option<Option<String>>,
    pub note: Option<Option<String>>,
}

/// Applies `changes` (at least one field) and returns the user as stored.
pub async fn update_profile(
    conn: &mut PgConn,
    id: UserId,
    changes: &ProfileChanges,
) -> QueryResult<User> {
    let user: User = diesel::update(users::table.find(id))
        .set(changes)
        .returning(User::as_returning())
        .get_result(conn)
        .await?;
    // An address an admin typed for a Telegram user is not verified (it opens no account by
    // email); a web-only account keeps its sign-in address verified, the admin vouching for it.
    if changes.email.is_some() && user.telegram_id.is_some() && user.email_verified_at.is_some() {
        return diesel::update(users::table.find(id))
            .set(users::email_verified_at.eq(None::<DateTime<Utc>>))
            .returning(User::as_returning())
            .get_result(conn)
            .await;
    }
    Ok(user)
}

/// A payment as the admin profile lists it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::pg::Pg))]
pub struct PaymentBrief {
    pub id: PaymentId,
    pub provider: PaymentProvider,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: Currency,
    pub days: i32,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

/// A user's latest payments (orders of any status), newest first.
pub async fn recent_payments(
    conn: &mut PgConn,
    id: UserId,
    limit: i64,
) -> QueryResult<Vec<PaymentBrief>> {
    payments::table
        .filter(payments::user_id.eq(id))
        .select(PaymentBrief::as_select())
        .order((payments::created_at.desc(), payments::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// Another user, as a profile names them.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRef {
    pub id: UserId,
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
}

/// A user's side of the referral programme.
#[derive(Debug, Clone)]
pub struct ReferralSummary {
    /// Who invited this user.
    pub invited_by: Option<UserRef>,
    /// Days this user got for joining through the invitation.
    pub bonus_days_received: i32,
    /// Users this user invited.
    pub invited: i64,
    /// Of them, those whose first payment earned this user a bonus.
    pub invited_paid: i64,
    /// Bonus days this user earned for them.
    pub bonus_days_earned: i64,
}

pub async fn referral_summary(conn: &mut PgConn, id: UserId) -> QueryResult<ReferralSummary> {
    let own: Option<(UserId, i32)> = referrals::table
        .filter(referrals::invitee_id.eq(id))
        .select((referrals::inviter_id, referrals::invitee_bonus_days))
        .first(conn)
        .await
        .optional()?;
    let invited_by = match own {
        Some((inviter, _)) => users::table
            .find(inviter)
            .select(UserRef::as_select())
            .first(conn)
            .await
            .optional()?,
        None => None,
    };
    let (invited, invited_paid, bonus_days_earned): (i64, i64, Option<i64>) = referrals::table
        .filter(referrals::inviter_id.eq(id))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::count(referrals::inviter_rewarded_at),
            diesel::dsl::sum(referrals::inviter_bonus_days),
        ))
        .first(conn)
        .await?;
    Ok(ReferralSummary {
        invited_by,
        bonus_days_received: own.map_or(0, |(_, days)| days),
        invited,
        invited_paid,
        bonus_days_earned: bonus_days_earned.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_read_as_an_id_a_username_or_an_email() {
        assert_eq!(Search::parse(" 123456 "), Some(Search::TelegramId(123_456)));
        assert_eq!(
            Search::parse("@Ivan_P"),
            Some(Search::Text {
                username_prefix: "ivan_p".into(),
                email: None
            })
        );
        assert_eq!(
            Search::parse("Ivan.Petrov@Mail.ru"),
            Some(Search::Text {
                username_prefix: "ivan.petrov@mail.ru".into(),
                email: Some("ivan.petrov@mail.ru".into())
            })
        );
        assert_eq!(Search::parse("  "), None);
        assert_eq!(Search::parse("@"), None);
    }

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_prefix("ab"), "ab%");
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }

    #[test]
    fn every_sort_spelling_parses() {
        for s in UserSort::SPELLINGS {
            assert!(UserSort::parse(s).is_some(), "{s}");
        }
        assert_eq!(UserSort::parse("-created_at"), Some(UserSort::default()));
        assert_eq!(UserSort::parse("name"), None);
    }
}

/// Who wrote to the bot, as Telegram tells it.
#[derive(Debug, Clone)]
pub struct TelegramProfile {
    pub telegram_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// For a new user only: their language stays theirs to change afterwards.
    pub language: Language,
}

/// A fresh referral code: 8 letters and digits (62^8 codes; a collision is retried).
fn new_referral_code() -> String {
    crate::domain::random_code::<8>(b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
}

/// The user behind a Telegram update: created on first contact (with a referral code), names
/// and last-seen refreshed afterwards. `true` when the user is new.
pub async fn register(conn: &mut PgConn, who: &TelegramProfile) -> QueryResult<(User, bool)> {
    use diesel::upsert::excluded;
    for _ in 0..4 {
        let inserted: Option<User> = diesel::insert_into(users::table)
            .values((
                users::telegram_id.eq(who.telegram_id),
                users::username.eq(&who.username),
                users::first_name.eq(&who.first_name),
                users::last_name.eq(&who.last_name),
                users::language.eq(who.language),
                users::referral_code.eq(new_referral_code()),
                users::last_seen_at.eq(diesel::dsl::now),
            ))
            .on_conflict(users::telegram_id)
            .do_update()
            .set((
                users::username.eq(excluded(users::username)),
                users::first_name.eq(excluded(users::first_name)),
                users::last_name.eq(excluded(users::last_name)),
                users::last_seen_at.eq(diesel::dsl::now),
                // Writing to the bot means it is not blocked (any more).
                users::bot_blocked.eq(false),
            ))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .map(Some)
            .or_else(|e| match e {
                // Another user has this referral code: draw again.
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    ref info,
                ) if info.constraint_name() == Some("users_referral_code_key") => Ok(None),
                e => Err(e),
            })?;
        if let Some(user) = inserted {
            // A row inserted now was created at this statement's time; an old one earlier.
            let new = user.last_seen_at == Some(user.created_at);
            return Ok((user, new));
        }
    }
    Err(diesel::result::Error::RollbackTransaction)
}

/// The account a used sign-in link of `email` opens, an address already normalised
/// (`domain::email::normalize_email`): the one whose address is verified, or a web-only account
/// (no Telegram) created now, in `language`. `true` when the user is new. One account per
/// verified address however many sign-ins race (`users_verified_email_key`).
pub async fn register_web(
    conn: &mut PgConn,
    email: &str,
    language: Language,
) -> QueryResult<(User, bool)> {
    for _ in 0..4 {
        if let Some(user) = find_by_verified_email(conn, email).await? {
            return Ok((user, false));
        }
        let inserted = diesel::insert_into(users::table)
            .values((
                users::email.eq(email),
                users::email_verified_at.eq(diesel::dsl::now),
                users::language.eq(language),
                users::referral_code.eq(new_referral_code()),
                users::last_seen_at.eq(diesel::dsl::now),
            ))
            .returning(User::as_returning())
            .get_result(conn)
            .await;
        match inserted {
            Ok(user) => return Ok((user, true)),
            // A referral code taken, or the same address signed up a moment ago: look again.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(diesel::result::Error::RollbackTransaction)
}

/// The account whose verified address is `email` (case-insensitive): a web-only account, or
/// one that linked Telegram afterwards.
pub async fn find_by_verified_email(conn: &mut PgConn, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email_verified_at.is_not_null())
        .filter(lower(users::email).eq(email.to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_telegram_id(conn: &mut PgConn, telegram_id: i64) -> QueryResult<Option<User>> {
    users::table
        .filter(users::telegram_id.eq(telegram_id))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// By @username (case-insensitive, with or without the @).
pub async fn find_by_username(conn: &mut PgConn, username: &str) -> QueryResult<Option<User>> {
    let name = username.trim_start_matches('@').to_lowercase();
    users::table
        .filter(lower(users::username).eq(name))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_referral_code(conn: &mut PgConn, code: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::referral_code.eq(code))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user left (`true`) or came back to (`false`) the bot's chat.
pub async fn set_bot_blocked(
    conn: &mut PgConn,
    telegram_id: i64,
    blocked: bool,
) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::telegram_id.eq(telegram_id)))
        .set(users::bot_blocked.eq(blocked))
        .execute(conn)
        .await
}

/// What a subscriber changes in the bot's settings.
pub async fn set_language(conn: &mut PgConn, id: UserId, language: Language) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::language.eq(language))
        .execute(conn)
        .await
        .map(|_| ())
}

/// `None` removes the address. The caller validated it (`domain::email::normalize_email`). A
/// typed address is not verified: the verification stays only when the address is the same.
pub async fn set_email(conn: &mut PgConn, id: UserId, email: Option<&str>) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE users SET email_verified_at = CASE WHEN lower(email) = lower($2) \
           THEN email_verified_at END, email = $2 WHERE id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(id.0)
    .bind::<Nullable<Text>, _>(email)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Makes `email` (normalised) the verified address of `id`: a link mailed to it was used.
/// `None` when another account signs in with that address.
pub async fn set_verified_email(
    conn: &mut PgConn,
    id: UserId,
    email: &str,
) -> QueryResult<Option<User>> {
    let updated = diesel::update(users::table.find(id))
        .set((
            users::email.eq(email),
            users::email_verified_at.eq(diesel::dsl::now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await;
    match updated {
        Ok(user) => Ok(Some(user)),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            ref info,
        )) if info.constraint_name() == Some("users_verified_email_key") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the account holds anything of value: a subscription, a payment, the trial taken,
/// a referral either way, a promo code redeemed. An account without any is only a name, and
/// linking Telegram to a web-only account may replace it.
pub async fn has_history(conn: &mut PgConn, id: UserId) -> QueryResult<bool> {
    diesel::sql_query(
        "SELECT (EXISTS (SELECT 1 FROM subscriptions WHERE user_id = $1) \
              OR EXISTS (SELECT 1 FROM payments WHERE user_id = $1) \
              OR EXISTS (SELECT 1 FROM users WHERE id = $1 AND trial_used_at IS NOT NULL) \
              OR EXISTS (SELECT 1 FROM referrals WHERE inviter_id = $1 OR invitee_id = $1) \
              OR EXISTS (SELECT 1 FROM promo_redemptions WHERE user_id = $1)) AS found",
    )
    .bind::<diesel::sql_types::BigInt, _>(id.0)
    .get_result::<Found>(conn)
    .await
    .map(|f| f.found)
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Bool)]
    found: bool,
}

/// Removes an account that holds nothing ([`has_history`]): its sessions, dialogue and
/// notifications go with it.
pub async fn delete_empty(conn: &mut PgConn, id: UserId) -> QueryResult<()> {
    diesel::delete(users::table.find(id))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Gives the web-only account `id` the Telegram account of `who` (names refreshed, the chat
/// open). The caller removed any other account of that Telegram id first.
pub async fn attach_telegram(
    conn: &mut PgConn,
    id: UserId,
    who: &TelegramProfile,
) -> QueryResult<User> {
    diesel::update(users::table.find(id).filter(users::telegram_id.is_null()))
        .set((
            users::telegram_id.eq(who.telegram_id),
            users::username.eq(&who.username),
            users::first_name.eq(&who.first_name),
            users::last_name.eq(&who.last_name),
            users::bot_blocked.eq(false),
            users::last_seen_at.eq(diesel::dsl::now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

/// A discount code remembered for the next checkout.
pub async fn set_pending_promo(
    conn: &mut PgConn,
    id: UserId,
    promo: crate::domain::PromoCodeId,
) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::pending_promo_id.eq(promo))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Marks the trial as taken, unless it was: `false` then (checked under the row lock, so two
/// quick /trial presses give one trial).
pub async fn take_trial(conn: &mut PgConn, id: UserId) -> QueryResult<bool> {
    diesel::update(users::table.find(id).filter(users::trial_used_at.is_null()))
        .set(users::trial_used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Bans or unbans; the subscription is disabled (enabled) in the same transaction and the
/// caller enqueues the provisioning. `true` when the subscription's status changed.
pub async fn set_banned(conn: &mut PgConn, id: UserId, banned: bool) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set(users::banned.eq(banned))
        .execute(conn)
        .await?;
    crate::db::subscriptions::set_enabled(conn, id, !banned).await
}
