//! Prices, promo codes and subscription periods: what a checkout costs, which promo codes a
//! user may apply, and how paid time adds up. Pure rules, property-tested.

use chrono::{DateTime, Duration, Utc};

use crate::domain::{Currency, Money, PaymentProvider, PromoKind};

/// The smallest amount a provider accepts (Wata: 10 RUB; YooKassa: 1 RUB; Stars: 1 Star).
pub const fn provider_minimum(provider: PaymentProvider) -> Money {
    match provider {
        PaymentProvider::Wata => Money::rub_kopecks(1_000),
        PaymentProvider::Yookassa => Money::rub_kopecks(100),
        PaymentProvider::Stars => Money::stars(1),
        PaymentProvider::Free => Money::rub_kopecks(0),
    }
}

/// The currency a provider is paid in.
pub const fn provider_currency(provider: PaymentProvider) -> Currency {
    match provider {
        PaymentProvider::Stars => Currency::Xtr,
        _ => Currency::Rub,
    }
}

/// What a plan costs before any promo code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanPrice {
    pub days: i32,
    pub rub: Money,
    /// `None`: not sold for Stars.
    pub stars: Option<Money>,
}

/// A promo code's rules, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoRules {
    pub code: String,
    pub kind: PromoKind,
    /// Percent 1..=100, kopecks off, or days added.
    pub value: i64,
    pub active: bool,
    pub max_uses: Option<i32>,
    pub uses_count: i32,
    pub once_per_user: bool,
    pub new_users_only: bool,
    pub min_plan_days: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// What is known about the user applying a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Customer {
    pub has_paid: bool,
    pub used_this_code: bool,
}

/// Why a promo code does not apply, in terms the bot and the API explain to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PromoRefusal {
    #[error("the code is not valid")]
    Unknown,
    #[error("the code is not valid yet")]
    NotYetValid,
    #[error("the code has expired")]
    Expired,
    #[error("the code has been used up")]
    UsedUp,
    #[error("you have already used this code")]
    AlreadyUsed,
    #[error("the code is only for new customers")]
    NotForYou,
    #[error("the code is valid for plans of {min_days} days or more")]
    PlanTooShort { min_days: i32 },
    #[error("the code gives a discount in roubles and cannot be used with Telegram Stars")]
    NotForStars,
}

impl PromoRefusal {
    /// Stable code for texts and API errors.
    pub const fn code(self) -> &'static str {
        match self {
            PromoRefusal::Unknown => "unknown",
            PromoRefusal::NotYetValid => "not_yet_valid",
            PromoRefusal::Expired => "expired",
            PromoRefusal::UsedUp => "used_up",
            PromoRefusal::AlreadyUsed => "already_used",
            PromoRefusal::NotForYou => "not_for_you",
            PromoRefusal::PlanTooShort { .. } => "plan_too_short",
            PromoRefusal::NotForStars => "not_for_stars",
        }
    }
}

/// Whether `user` may apply `promo` now; `plan_days` is the plan to buy (`None` when applying
/// a bonus-days code outside a checkout).
pub fn check_promo(
    promo: &PromoRules,
    user: Customer,
    plan_days: Option<i32>,
    now: DateTime<Utc>,
) -> Result<(), PromoRefusal> {
    if !promo.active {
        return Err(PromoRefusal::Unknown);
    }
    if promo.valid_from.is_some_and(|from| now < from) {
        return Err(PromoRefusal::NotYetValid);
    }
    if promo.valid_until.is_some_and(|until| now >= until) {
        return Err(PromoRefusal::Expired);
    }
    if promo.max_uses.is_some_and(|max| promo.uses_count >= max) {
        return Err(PromoRefusal::UsedUp);
    }
    if promo.once_per_user && user.used_this_code {
        return Err(PromoRefusal::AlreadyUsed);
    }
    if promo.new_users_only && user.has_paid {
        return Err(PromoRefusal::NotForYou);
    }
    if let (Some(min_days), Some(days)) = (promo.min_plan_days, plan_days)
        && days < min_days
    {
        return Err(PromoRefusal::PlanTooShort { min_days });
    }
    Ok(())
}

/// What a checkout costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// What the user pays (0 when `free`).
    pub amount: Money,
    /// The plan's price in the payment's currency.
    pub list_price: Money,
    /// Minor units taken off by the promo code (after the provider's minimum is applied).
    pub discount: i64,
    /// Days of the plan.
    pub days: i32,
    /// Extra days from a bonus-days code.
    pub bonus_days: i32,
    /// A 100 % discount: the period is given without a payment.
    pub free: bool,
}

/// Why there is no quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("this plan is not sold for Telegram Stars")]
    NotForStars,
    #[error(transparent)]
    Promo(#[from] PromoRefusal),
}

/// The price of `plan` through `provider` with an optional promo code (already checked with
/// [`check_promo`] for the user). Never below zero; a non-zero price never below the provider's
/// minimum; a price that a discount brings to zero makes the checkout free.
pub fn quote(
    plan: &PlanPrice,
    provider: PaymentProvider,
    promo: Option<&PromoRules>,
) -> Result<Quote, QuoteError> {
    let list_price = match provider_currency(provider) {
        Currency::Xtr => plan.stars.ok_or(QuoteError::NotForStars)?,
        Currency::Rub => plan.rub,
    };
    let (discount, bonus_days) = match promo {
        None => (0, 0),
        Some(p) => match p.kind {
            PromoKind::Percent => {
                let pct = p.value.clamp(0, 100);
                // Rounded down: the shop never takes more off than the code says.
                (
                    (i128::from(list_price.minor) * i128::from(pct) / 100) as i64,
                    0,
                )
            }
            PromoKind::Fixed if list_price.currency == Currency::Xtr => {
                return Err(PromoRefusal::NotForStars.into());
            }
            PromoKind::Fixed => (p.value.max(0), 0),
            PromoKind::BonusDays => (0, i32::try_from(p.value.clamp(0, 3650)).unwrap_or(0)),
        },
    };
    let discounted = list_price.minor.saturating_sub(discount).max(0);
    let minimum = provider_minimum(provider).minor;
    let amount = if discounted == 0 {
        0
    } else {
        discounted.max(minimum)
    };
    Ok(Quote {
        amount: Money::new(amount, list_price.currency),
        list_price,
        discount: list_price.minor - amount.min(list_price.minor),
        days: plan.days,
        bonus_days,
        free: amount == 0,
    })
}

/// The new end of a subscription that gets `days` more: paid time is added to what remains; an
/// ended subscription starts again from now.
pub fn extend(current_end: Option<DateTime<Utc>>, now: DateTime<Utc>, days: i32) -> DateTime<Utc> {
    let start = current_end.filter(|end| *end > now).unwrap_or(now);
    start + Duration::days(i64::from(days))
}

/// The end after `days` are taken back (a refund). It may lie in the past: the access ends.
pub fn take_back(current_end: DateTime<Utc>, days: i32) -> DateTime<Utc> {
    current_end - Duration::days(i64::from(days))
}

/// The days a refund of `refund` minor units takes back from an order of `days` days that cost
/// `amount` minor units, of which `refunded_before` were refunded already. Days follow the
/// cumulative refunded share, rounded to the nearest day (halves up): the refunds of one order
/// together take back exactly its share, however the money was split (two halves of a 31-day
/// order take 16 + 15 days, thirty small refunds of a thirtieth take a day each). A free order
/// (`amount` 0) gives all its days back.
pub fn refund_days(days: i32, amount: i64, refunded_before: i64, refund: i64) -> i32 {
    let days = i64::from(days.max(0));
    if amount <= 0 {
        return days as i32;
    }
    let share = |refunded: i64| {
        let refunded = i128::from(refunded.clamp(0, amount));
        let (days, amount) = (i128::from(days), i128::from(amount));
        ((2 * days * refunded + amount) / (2 * amount)) as i64
    };
    let before = refunded_before.clamp(0, amount);
    let after = before.saturating_add(refund.max(0)).min(amount);
    (share(after) - share(before)) as i32
}

/// What a refund of an order that cost `paid` (of which `refunded_minor` went back already)
/// takes: `asked`, or all that remains when nothing is asked. `Err` says why not: another
/// currency, nothing or more than what remains. The PaymentProcessor's rule, and what the
/// console's confirmation shows before it is asked.
pub fn refund_amount(
    paid: Money,
    refunded_minor: i64,
    asked: Option<Money>,
) -> Result<Money, String> {
    let remaining = Money::new(paid.minor - refunded_minor, paid.currency);
    let amount = asked.unwrap_or(remaining);
    if amount.currency != paid.currency {
        return Err(format!("the payment is in {}", paid.currency));
    }
    if amount.minor <= 0 || amount.minor > remaining.minor {
        return Err(format!(
            "the amount must be more than 0 and at most {remaining}"
        ));
    }
    Ok(amount)
}

/// Days of access left, counting a started day as a whole one (0 once the subscription ended).
pub fn days_left(end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let left = (end - now).num_seconds();
    if left <= 0 {
        0
    } else {
        (left + 86_399) / 86_400
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn plan(rub: i64, stars: Option<i64>) -> PlanPrice {
        PlanPrice {
            days: 30,
            rub: Money::rub_kopecks(rub),
            stars: stars.map(Money::stars),
        }
    }

    fn promo(kind: PromoKind, value: i64) -> PromoRules {
        PromoRules {
            code: "CODE".into(),
            kind,
            value,
            active: true,
            max_uses: None,
            uses_count: 0,
            once_per_user: true,
            new_users_only: false,
            min_plan_days: None,
            valid_from: None,
            valid_until: None,
        }
    }

    #[test]
    fn prices_with_each_kind_of_code() {
        let p = plan(19_900, Some(150));
        let q = quote(&p, PaymentProvider::Yookassa, None).unwrap();
        assert_eq!(
            (q.amount, q.discount, q.free),
            (Money::rub_kopecks(19_900), 0, false)
        );
        let q = quote(
            &p,
            PaymentProvider::Yookassa,
            Some(&promo(PromoKind::Percent, 15)),
        )
        .unwrap();
        assert_eq!((q.amount.minor, q.discount), (16_915, 2_985));
        let q = quote(
            &p,
            PaymentProvider::Stars,
            Some(&promo(PromoKind::Percent, 15)),
        )
        .unwrap();
        assert_eq!(q.amount, Money::stars(128), "150 - 22 (rounded down)");
        let q = quote(
            &p,
            PaymentProvider::Wata,
            Some(&promo(PromoKind::Fixed, 5_000)),
        )
        .unwrap();
        assert_eq!(q.amount.minor, 14_900);
        let q = quote(
            &p,
            PaymentProvider::Yookassa,
            Some(&promo(PromoKind::BonusDays, 7)),
        )
        .unwrap();
        assert_eq!((q.amount.minor, q.days, q.bonus_days), (19_900, 30, 7));
        assert_eq!(
            quote(
                &p,
                PaymentProvider::Stars,
                Some(&promo(PromoKind::Fixed, 100))
            ),
            Err(QuoteError::Promo(PromoRefusal::NotForStars))
        );
        assert_eq!(
            quote(&plan(100, None), PaymentProvider::Stars, None),
            Err(QuoteError::NotForStars)
        );
    }

    #[test]
    fn minimums_and_free_periods() {
        let p = plan(19_900, Some(150));
        // 99 % off leaves 1.99 RUB: Wata takes no less than 10 RUB.
        let q = quote(
            &p,
            PaymentProvider::Wata,
            Some(&promo(PromoKind::Percent, 99)),
        )
        .unwrap();
        assert_eq!((q.amount.minor, q.discount), (1_000, 18_900));
        let q = quote(
            &p,
            PaymentProvider::Yookassa,
            Some(&promo(PromoKind::Percent, 99)),
        )
        .unwrap();
        assert_eq!(q.amount.minor, 199);
        // 100 % (or a fixed amount beyond the price) gives the period for free.
        for code in [
            promo(PromoKind::Percent, 100),
            promo(PromoKind::Fixed, 1_000_000),
        ] {
            let q = quote(&p, PaymentProvider::Wata, Some(&code)).unwrap();
            assert!(
                q.free && q.amount.minor == 0 && q.discount == 19_900,
                "{q:?}"
            );
        }
    }

    #[test]
    fn promo_limits_and_reasons() {
        let now = at("2026-11-27T12:00:00Z");
        let user = Customer::default();
        let ok = promo(PromoKind::Percent, 10);
        assert_eq!(check_promo(&ok, user, Some(30), now), Ok(()));
        let cases = [
            (
                PromoRules {
                    active: false,
                    ..ok.clone()
                },
                user,
                PromoRefusal::Unknown,
            ),
            (
                PromoRules {
                    valid_from: Some(at("2026-12-01T00:00:00Z")),
                    ..ok.clone()
                },
                user,
                PromoRefusal::NotYetValid,
            ),
            (
                PromoRules {
                    valid_until: Some(now),
                    ..ok.clone()
                },
                user,
                PromoRefusal::Expired,
            ),
            (
                PromoRules {
                    max_uses: Some(5),
                    uses_count: 5,
                    ..ok.clone()
                },
                user,
                PromoRefusal::UsedUp,
            ),
            (
                ok.clone(),
                Customer {
                    used_this_code: true,
                    ..user
                },
                PromoRefusal::AlreadyUsed,
            ),
            (
                PromoRules {
                    new_users_only: true,
                    ..ok.clone()
                },
                Customer {
                    has_paid: true,
                    ..user
                },
                PromoRefusal::NotForYou,
            ),
            (
                PromoRules {
                    min_plan_days: Some(90),
                    ..ok.clone()
                },
                user,
                PromoRefusal::PlanTooShort { min_days: 90 },
            ),
        ];
        for (rules, customer, refusal) in cases {
            assert_eq!(check_promo(&rules, customer, Some(30), now), Err(refusal));
        }
        let reusable = PromoRules {
            once_per_user: false,
            ..ok.clone()
        };
        assert_eq!(
            check_promo(
                &reusable,
                Customer {
                    used_this_code: true,
                    ..user
                },
                Some(30),
                now
            ),
            Ok(())
        );
        // Outside a checkout (bonus days applied at once) the plan length does not matter.
        let min_plan = PromoRules {
            min_plan_days: Some(90),
            ..ok
        };
        assert_eq!(check_promo(&min_plan, user, None, now), Ok(()));
    }

    #[test]
    fn paid_time_adds_up() {
        let now = at("2026-11-27T12:00:00Z");
        assert_eq!(extend(None, now, 30), at("2026-12-27T12:00:00Z"));
        // Time left is kept…
        assert_eq!(
            extend(Some(at("2026-12-01T12:00:00Z")), now, 30),
            at("2026-12-31T12:00:00Z")
        );
        // …an ended subscription restarts from now.
        assert_eq!(
            extend(Some(at("2026-11-01T00:00:00Z")), now, 30),
            at("2026-12-27T12:00:00Z")
        );
        assert_eq!(
            take_back(at("2026-12-31T12:00:00Z"), 30),
            at("2026-12-01T12:00:00Z")
        );
    }

    #[test]
    fn days_left_counts_a_started_day() {
        let now = at("2026-11-27T12:00:00Z");
        assert_eq!(days_left(at("2026-12-27T12:00:00Z"), now), 30);
        assert_eq!(days_left(at("2026-11-27T12:00:01Z"), now), 1);
        assert_eq!(days_left(at("2026-11-28T12:00:01Z"), now), 2);
        assert_eq!(days_left(now, now), 0);
        assert_eq!(days_left(at("2026-11-01T00:00:00Z"), now), 0);
        assert_eq!(days_left(extend(None, now, 30), now), 30);
    }

    #[test]
    fn refunds_take_back_days_by_the_cumulative_share() {
        assert_eq!(refund_days(30, 30_000, 0, 30_000), 30);
        assert_eq!(refund_days(30, 30_000, 0, 15_000), 15);
        assert_eq!(refund_days(30, 30_000, 0, 100), 0);
        assert_eq!(refund_days(37, 29_900, 0, 29_900), 37, "bonus days go too");
        assert_eq!(refund_days(30, 0, 0, 0), 30, "a free order");
        // Two halves of a 31-day order: 16 + 15, not 16 + 16.
        assert_eq!(refund_days(31, 31_000, 0, 15_500), 16);
        assert_eq!(refund_days(31, 31_000, 15_500, 15_500), 15);
        // Ten refunds of 1 % each: a day is taken when the share reaches it.
        let taken: i32 = (0..10).map(|i| refund_days(30, 10_000, i * 100, 100)).sum();
        assert_eq!(taken, 3);
        // More than remains counts only what remains.
        assert_eq!(refund_days(30, 30_000, 20_000, 20_000), 10);
    }

    proptest! {
        #[test]
        fn refunds_in_any_split_take_back_the_refunded_share(
            days in 1i32..3660, amount in 1i64..10_000_000,
            cuts in proptest::collection::vec(1i64..1_000_000, 1..20),
        ) {
            let mut refunded = 0i64;
            let mut taken = 0i32;
            for cut in cuts {
                let refund = cut.min(amount - refunded);
                if refund <= 0 { break; }
                let d = refund_days(days, amount, refunded, refund);
                prop_assert!(d >= 0);
                taken += d;
                refunded += refund;
                let share = (2 * i128::from(days) * i128::from(refunded) + i128::from(amount))
                    / (2 * i128::from(amount));
                prop_assert_eq!(i128::from(taken), share);
            }
            prop_assert!(taken <= days);
        }

        #[test]
        fn a_price_is_never_negative_nor_between_zero_and_the_minimum(
            // Half of the prices near the minimums, where a wrong minimum shows.
            rub in prop_oneof![0i64..2_000, 0i64..10_000_000],
            stars in proptest::option::of(prop_oneof![1i64..5, 1i64..100_000]),
            kind in 0usize..3, value in -100i64..20_000_000, provider in 0usize..3,
        ) {
            // The providers' documented minimums and currencies, written out here rather than
            // read from `provider_minimum` / `provider_currency`: a wrong table fails this.
            let (provider, minimum, currency) = [
                (PaymentProvider::Yookassa, 100, Currency::Rub),
                (PaymentProvider::Wata, 1_000, Currency::Rub),
                (PaymentProvider::Stars, 1, Currency::Xtr),
            ][provider];
            let kind = [PromoKind::Percent, PromoKind::Fixed, PromoKind::BonusDays][kind];
            let p = plan(rub, stars);
            let result = quote(&p, provider, Some(&promo(kind, value)));
            // Refused only for a plan without a Stars price, or a rouble discount in Stars.
            let q = match (provider, stars, kind) {
                (PaymentProvider::Stars, None, _) => {
                    prop_assert_eq!(result, Err(QuoteError::NotForStars));
                    return Ok(());
                }
                (PaymentProvider::Stars, Some(_), PromoKind::Fixed) => {
                    prop_assert_eq!(result, Err(QuoteError::Promo(PromoRefusal::NotForStars)));
                    return Ok(());
                }
                _ => result.expect("every other combination has a price"),
            };
            let list = if currency == Currency::Xtr { stars.unwrap_or_default() } else { rub };
            prop_assert_eq!(q.list_price, Money::new(list, currency));
            prop_assert!(q.amount.minor >= 0);
            prop_assert!(q.amount.minor == 0 || q.amount.minor >= minimum, "{:?} under {}", q, minimum);
            prop_assert!(q.discount >= 0 && q.discount <= q.list_price.minor);
            prop_assert_eq!(q.free, q.amount.minor == 0);
            prop_assert_eq!(q.amount.currency, currency);
            // A discount never raises the price, except up to the provider's minimum.
            prop_assert!(q.amount.minor <= list.max(minimum));
            // Without a discount that empties it, a price at or over the minimum is what is paid.
            if kind == PromoKind::BonusDays {
                let expected = if list == 0 { 0 } else { list.max(minimum) };
                prop_assert_eq!(q.amount.minor, expected);
            }
        }

        #[test]
        fn extending_never_loses_time(
            left in -100_000i64..100_000_000, days in 1i32..3660,
        ) {
            let now = at("2026-11-27T12:00:00Z");
            let end = now + Duration::seconds(left);
            let new_end = extend(Some(end), now, days);
            prop_assert!(new_end >= now + Duration::days(i64::from(days)));
            prop_assert!(new_end >= end + Duration::days(i64::from(days)) || end < now);
            prop_assert_eq!(take_back(new_end, days), end.max(now));
        }
    }

    #[test]
    fn a_refund_takes_what_is_asked_or_all_that_remains() {
        let paid = Money::rub_kopecks(29_900);
        assert_eq!(refund_amount(paid, 0, None), Ok(paid));
        assert_eq!(
            refund_amount(paid, 10_000, None),
            Ok(Money::rub_kopecks(19_900))
        );
        assert_eq!(
            refund_amount(paid, 10_000, Some(Money::rub_kopecks(19_900))),
            Ok(Money::rub_kopecks(19_900))
        );
        let over = refund_amount(paid, 10_000, Some(Money::rub_kopecks(19_901))).unwrap_err();
        assert!(over.contains("at most 199.00 RUB"), "{over}");
        assert!(refund_amount(paid, 0, Some(Money::rub_kopecks(0))).is_err());
        assert!(
            refund_amount(paid, 29_900, None).is_err(),
            "nothing remains"
        );
        assert_eq!(
            refund_amount(paid, 0, Some(Money::stars(5))),
            Err("the payment is in RUB".to_owned())
        );
    }
}
