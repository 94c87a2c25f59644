//! Orders (`payments`), every provider event about them (`payment_events`) and their refunds
//! (`payment_refunds`).
//!
//! An order is written before the provider is called, `pending`; only a pending order changes
//! state, under a row lock, so a duplicate or late event changes nothing.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::PgConn;
use crate::db::models::{Payment, PaymentEvent, PaymentRefund};
use crate::db::schema::{payment_events, payment_refunds, payments};
use crate::domain::{
    Money, PaymentEventVerdict, PaymentId, PaymentKind, PaymentProvider, PaymentStatus, PlanId,
    PromoCodeId, RefundState, UserId,
};

/// An order to write.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub user_id: UserId,
    pub plan_id: Option<PlanId>,
    pub provider: PaymentProvider,
    pub kind: PaymentKind,
    pub amount: Money,
    pub days: i32,
    pub promo_code_id: Option<PromoCodeId>,
    pub discount_minor: i64,
    pub bonus_days: i32,
    pub save_payment_method: bool,
    pub link_expires_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<&'a str>,
    /// For orders born paid (a Star subscription's renewal): the provider's id.
    pub external_id: Option<&'a str>,
    /// An automatic renewal: the saved method it charges.
    pub payment_method_id: Option<&'a str>,
}

pub async fn insert(conn: &mut PgConn, order: &NewOrder<'_>) -> QueryResult<Payment> {
    diesel::insert_into(payments::table)
        .values((
            payments::user_id.eq(order.user_id),
            payments::plan_id.eq(order.plan_id),
            payments::provider.eq(order.provider),
            payments::kind.eq(order.kind),
            payments::amount_minor.eq(order.amount.minor),
            payments::currency.eq(order.amount.currency),
            payments::days.eq(order.days),
            payments::promo_code_id.eq(order.promo_code_id),
            payments::discount_minor.eq(order.discount_minor),
            payments::bonus_days.eq(order.bonus_days),
            payments::save_payment_method.eq(order.save_payment_method),
            payments::link_expires_at.eq(order.link_expires_at),
            payments::idempotency_key.eq(order.idempotency_key),
            payments::external_id.eq(order.external_id),
            payments::payment_method_id.eq(order.payment_method_id),
        ))
        .returning(Payment::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut PgConn, id: PaymentId) -> QueryResult<Option<Payment>> {
    payments::table
        .find(id)
        .select(Payment::as_select())
        .first(conn)
        .await
        .optional()
}

/// The order, locked until the end of the caller's transaction.
pub async fn lock(conn: &mut PgConn, id: PaymentId) -> QueryResult<Option<Payment>> {
    payments::table
        .find(id)
        .select(Payment::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_external(
    conn: &mut PgConn,
    provider: PaymentProvider,
    external_id: &str,
) -> QueryResult<Option<Payment>> {
    payments::table
        .filter(payments::provider.eq(provider))
        .filter(payments::external_id.eq(external_id))
        .select(Payment::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_idempotency_key(conn: &mut PgConn, key: &str) -> QueryResult<Option<Payment>> {
    payments::table
        .filter(payments::idempotency_key.eq(key))
        .select(Payment::as_select())
        .first(conn)
        .await
        .optional()
}

/// The provider's side of a new order: its id and the page to pay on.
pub async fn set_checkout(
    conn: &mut PgConn,
    id: PaymentId,
    external_id: &str,
    confirmation_url: Option<&str>,
) -> QueryResult<()> {
    diesel::update(payments::table.find(id))
        .set((
            payments::external_id.eq(external_id),
            payments::confirmation_url.eq(confirmation_url),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The page (an invoice link) an order is paid on, when the provider's id comes only with the
/// payment (Stars).
pub async fn set_confirmation_url(conn: &mut PgConn, id: PaymentId, url: &str) -> QueryResult<()> {
    diesel::update(payments::table.find(id))
        .set(payments::confirmation_url.eq(url))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A pending (or expired: paid just as its link closed) order is paid: succeeded, with the
/// provider's id and answer. `false` when it was already decided otherwise.
pub async fn mark_succeeded(
    conn: &mut PgConn,
    id: PaymentId,
    external_id: &str,
    raw: &Value,
) -> QueryResult<bool> {
    let n = diesel::update(
        payments::table
            .find(id)
            .filter(payments::status.eq_any([PaymentStatus::Pending, PaymentStatus::Expired])),
    )
    .set((
        payments::status.eq(PaymentStatus::Succeeded),
        payments::paid_at.eq(diesel::dsl::now),
        payments::external_id.eq(external_id),
        payments::raw_payload.eq(raw),
        payments::failure_reason.eq(None::<String>),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// A pending order ends unpaid: `canceled` (declined, abandoned) or `expired` (its link closed).
/// The promo code use it held is given back, in the same transaction.
pub async fn mark_unpaid(
    conn: &mut PgConn,
    id: PaymentId,
    status: PaymentStatus,
    reason: &str,
    raw: Option<&Value>,
) -> QueryResult<bool> {
    use diesel_async::AsyncConnection;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let n = diesel::update(
            payments::table
                .find(id)
                .filter(payments::status.eq(PaymentStatus::Pending)),
        )
        .set((
            payments::status.eq(status),
            payments::failure_reason.eq(reason),
            payments::raw_payload.eq(raw),
        ))
        .execute(conn)
        .await?;
        if n == 1 {
            crate::db::promo::release(conn, id).await?;
        }
        Ok(n == 1)
    })
    .await
}

/// Flags an order for an admin (e.g. paid the wrong amount): the reason is added to those it
/// has, the status is not changed.
pub async fn flag(conn: &mut PgConn, id: PaymentId, reason: &str) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE payments SET failure_reason = CASE WHEN failure_reason IS NULL OR failure_reason = '' \
             THEN $2 ELSE failure_reason || '; ' || $2 END WHERE id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(id.0)
    .bind::<diesel::sql_types::Text, _>(reason)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records a refund of `amount` more; the order is `refunded` (fully or partly: see
/// `refunded_minor`).
pub async fn mark_refunded(
    conn: &mut PgConn,
    id: PaymentId,
    amount_minor: i64,
) -> QueryResult<bool> {
    let n = diesel::update(
        payments::table
            .find(id)
            .filter(payments::status.eq_any([PaymentStatus::Succeeded, PaymentStatus::Refunded]))
            .filter((payments::refunded_minor + amount_minor).le(payments::amount_minor)),
    )
    .set((
        payments::status.eq(PaymentStatus::Refunded),
        payments::refunded_minor.eq(payments::refunded_minor + amount_minor),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Whether the user has ever paid (a refunded payment counts: the user is not new).
pub async fn has_paid(conn: &mut PgConn, user: UserId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        payments::table
            .filter(payments::user_id.eq(user))
            .filter(payments::provider.ne(PaymentProvider::Free))
            .filter(payments::status.eq_any([PaymentStatus::Succeeded, PaymentStatus::Refunded])),
    ))
    .get_result(conn)
    .await
}

/// Whether `order` is the user's first successful payment.
pub async fn is_first_payment(
    conn: &mut PgConn,
    user: UserId,
    order: PaymentId,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::not(diesel::dsl::exists(
        payments::table
            .filter(payments::user_id.eq(user))
            .filter(payments::id.ne(order))
            .filter(payments::provider.ne(PaymentProvider::Free))
            .filter(payments::status.eq_any([PaymentStatus::Succeeded, PaymentStatus::Refunded])),
    )))
    .get_result(conn)
    .await
}

/// The user's automatic renewal charge still pending, if any.
pub async fn pending_auto_renewal(conn: &mut PgConn, user: UserId) -> QueryResult<Option<Payment>> {
    payments::table
        .filter(payments::user_id.eq(user))
        .filter(payments::kind.eq(PaymentKind::AutoRenewal))
        .filter(payments::status.eq(PaymentStatus::Pending))
        .select(Payment::as_select())
        .first(conn)
        .await
        .optional()
}

/// Orders of `provider` still pending after `older_than` (their webhook may be lost).
pub async fn pending_of(
    conn: &mut PgConn,
    provider: PaymentProvider,
    created_before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Payment>> {
    payments::table
        .filter(payments::provider.eq(provider))
        .filter(payments::status.eq(PaymentStatus::Pending))
        .filter(payments::created_at.lt(created_before))
        .select(Payment::as_select())
        .order(payments::id)
        .limit(limit)
        .load(conn)
        .await
}

/// An event about a payment, with what we made of it.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub provider: PaymentProvider,
    pub event_key: &'a str,
    pub event_type: &'a str,
    pub payment_id: Option<PaymentId>,
    pub verdict: PaymentEventVerdict,
    pub detail: Option<&'a str>,
    pub remote_addr: Option<&'a str>,
    pub payload: Option<&'a Value>,
    /// Of a request refused at the edge: its body's size and SHA-256, instead of the body.
    pub body: Option<BodyDigest>,
}

/// What is kept of a body that is not stored: enough to recognise the same body again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigest {
    pub bytes: i32,
    /// Lower-case hex.
    pub sha256: String,
}

impl BodyDigest {
    pub fn of(body: &[u8]) -> BodyDigest {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(body);
        BodyDigest {
            // Bodies are limited far below 2 GiB by the server; saturate rather than wrap.
            bytes: i32::try_from(body.len()).unwrap_or(i32::MAX),
            sha256: hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

pub async fn record_event(conn: &mut PgConn, event: &NewEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(payment_events::table)
        .values((
            payment_events::provider.eq(event.provider),
            payment_events::event_key.eq(event.event_key),
            payment_events::event_type.eq(event.event_type),
            payment_events::payment_id.eq(event.payment_id),
            payment_events::verdict.eq(event.verdict),
            payment_events::detail.eq(event.detail),
            payment_events::remote_addr.eq(event.remote_addr),
            payment_events::payload.eq(event.payload),
            payment_events::body_bytes.eq(event.body.as_ref().map(|b| b.bytes)),
            payment_events::body_sha256.eq(event.body.as_ref().map(|b| b.sha256.as_str())),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Deletes events received more than `retention` ago, except `accepted` and `mismatched` ones:
/// those are the shop's record of money (what confirmed or refunded an order, what did not add
/// up) and there is one per real change of an order, so nobody can flood them. Everything else
/// — refusals at the edge, duplicates, "still pending" — is only noise once old, and refusals
/// are what strangers can send in bulk.
pub async fn prune_events(conn: &mut PgConn, retention: std::time::Duration) -> QueryResult<usize> {
    let Some(cutoff) = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| Utc::now().checked_sub_signed(r))
    else {
        // A retention longer than the calendar: nothing is old enough.
        return Ok(0);
    };
    diesel::delete(
        payment_events::table
            .filter(payment_events::received_at.lt(cutoff))
            .filter(payment_events::verdict.ne_all([
                PaymentEventVerdict::Accepted,
                PaymentEventVerdict::Mismatched,
            ])),
    )
    .execute(conn)
    .await
}

pub async fn events_of(conn: &mut PgConn, id: PaymentId) -> QueryResult<Vec<PaymentEvent>> {
    payment_events::table
        .filter(payment_events::payment_id.eq(id))
        .select(PaymentEvent::as_select())
        .order(payment_events::id)
        .load(conn)
        .await
}

/// The refund the provider knows as `external_id`, in any state.
pub async fn find_refund(
    conn: &mut PgConn,
    provider: PaymentProvider,
    external_id: &str,
) -> QueryResult<Option<PaymentRefund>> {
    payment_refunds::table
        .filter(payment_refunds::provider.eq(provider))
        .filter(payment_refunds::external_id.eq(external_id))
        .select(PaymentRefund::as_select())
        .first(conn)
        .await
        .optional()
}

/// A refund request whose outcome is unknown stops blocking new requests after this long: the
/// providers settle (or re-send their notices of) a refund well within it (WATA: 32 h).
pub const REFUND_REQUEST_STALE_AFTER: chrono::Duration = chrono::Duration::hours(48);

/// A refund row to write.
#[derive(Debug, Clone, Copy)]
pub struct NewRefund<'a> {
    pub external_id: Option<&'a str>,
    pub amount_minor: i64,
    pub days_taken_back: i32,
    pub state: RefundState,
}

pub async fn insert_refund(
    conn: &mut PgConn,
    order: &Payment,
    refund: NewRefund<'_>,
) -> QueryResult<PaymentRefund> {
    diesel::insert_into(payment_refunds::table)
        .values((
            payment_refunds::payment_id.eq(order.id),
            payment_refunds::provider.eq(order.provider),
            payment_refunds::external_id.eq(refund.external_id),
            payment_refunds::amount_minor.eq(refund.amount_minor),
            payment_refunds::days_taken_back.eq(refund.days_taken_back),
            payment_refunds::state.eq(refund.state),
        ))
        .returning(PaymentRefund::as_returning())
        .get_result(conn)
        .await
}

/// Settles a refund row: its state, the provider's id (when learned) and the days it took back.
pub async fn settle_refund(
    conn: &mut PgConn,
    id: i64,
    state: RefundState,
    external_id: Option<&str>,
    days_taken_back: i32,
) -> QueryResult<()> {
    let target = payment_refunds::table.find(id);
    match external_id {
        Some(external) => {
            diesel::update(target)
                .set((
                    payment_refunds::state.eq(state),
                    payment_refunds::external_id.eq(external),
                    payment_refunds::days_taken_back.eq(days_taken_back),
                ))
                .execute(conn)
                .await
        }
        None => {
            diesel::update(target)
                .set((
                    payment_refunds::state.eq(state),
                    payment_refunds::days_taken_back.eq(days_taken_back),
                ))
                .execute(conn)
                .await
        }
    }
    .map(|_| ())
}

/// The order's refund rows in `state`, oldest first; `requested` ones only while not stale.
pub async fn refunds_in_state(
    conn: &mut PgConn,
    order: PaymentId,
    state: RefundState,
) -> QueryResult<Vec<PaymentRefund>> {
    let mut q = payment_refunds::table
        .filter(payment_refunds::payment_id.eq(order))
        .filter(payment_refunds::state.eq(state))
        .into_boxed();
    if state == RefundState::Requested {
        q = q.filter(payment_refunds::created_at.gt(Utc::now() - REFUND_REQUEST_STALE_AFTER));
    }
    q.select(PaymentRefund::as_select())
        .order(payment_refunds::id)
        .load(conn)
        .await
}

/// Orders with a refund request whose outcome is still unknown, requested before `before` (the
/// poll asks their providers).
pub async fn orders_with_open_refund_requests(
    conn: &mut PgConn,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Payment>> {
    payments::table
        .filter(
            payments::id.eq_any(
                payment_refunds::table
                    .filter(payment_refunds::state.eq(RefundState::Requested))
                    .filter(payment_refunds::created_at.lt(before))
                    .filter(payment_refunds::created_at.gt(Utc::now() - REFUND_REQUEST_STALE_AFTER))
                    .select(payment_refunds::payment_id),
            ),
        )
        .select(Payment::as_select())
        .order(payments::id)
        .limit(limit)
        .load(conn)
        .await
}

pub async fn refunds_of(conn: &mut PgConn, id: PaymentId) -> QueryResult<Vec<PaymentRefund>> {
    payment_refunds::table
        .filter(payment_refunds::payment_id.eq(id))
        .select(PaymentRefund::as_select())
        .order(payment_refunds::id)
        .load(conn)
        .await
}

/// Which orders an admin lists; `from` is inclusive and `to` exclusive, on `created_at`.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub provider: Option<PaymentProvider>,
    pub status: Option<PaymentStatus>,
    pub user_id: Option<UserId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Orders matching `filter`, newest first, with the total that match.
pub async fn list(
    conn: &mut PgConn,
    filter: &OrderFilter,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Payment>, i64)> {
    let filtered = || {
        let mut q = payments::table.into_boxed();
        if let Some(provider) = filter.provider {
            q = q.filter(payments::provider.eq(provider));
        }
        if let Some(status) = filter.status {
            q = q.filter(payments::status.eq(status));
        }
        if let Some(user) = filter.user_id {
            q = q.filter(payments::user_id.eq(user));
        }
        if let Some(from) = filter.from {
            q = q.filter(payments::created_at.ge(from));
        }
        if let Some(to) = filter.to {
            q = q.filter(payments::created_at.lt(to));
        }
        q
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(Payment::as_select())
        .order((payments::created_at.desc(), payments::id.desc()))
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}
