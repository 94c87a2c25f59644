//! What an admin sends to create or change a promo code, and its checks: the code's spelling,
//! the value each kind allows, the use limit, the validity window, the minimum plan.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{nullable, parse_time, parse_variant, trimmed, yes};
use crate::db::models::PromoCode;
use crate::db::promo::{PromoValues, normalise};
use crate::db::{PgConn, plans};
use crate::domain::{PlanId, PromoKind};
use crate::error::{AppError, AppResult};

/// Most bonus days a code may give.
const MAX_BONUS_DAYS: i64 = 3650;
/// Longest note on a code.
const MAX_NOTE_CHARS: usize = 500;

/// A new promo code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPromo {
    /// 3 to 32 of `A`–`Z`, `0`–`9`, `-`, `_`; stored upper case (users may type any case).
    #[schema(example = "winter-25")]
    pub code: String,
    /// `percent`, `fixed` (an amount off, in kopecks) or `bonus_days`.
    #[schema(example = "percent")]
    pub kind: String,
    /// Percent 1–100; kopecks 1 or more; days 1–3650.
    #[schema(example = 25)]
    pub value: i64,
    /// Total uses allowed (1 or more); absent or `null`: unlimited.
    pub max_uses: Option<i64>,
    /// Each user may use it once (default true).
    #[serde(default = "yes")]
    pub once_per_user: bool,
    /// Only users who never paid may use it (default false).
    #[serde(default)]
    pub new_users_only: bool,
    /// RFC 3339; usable from then on.
    #[schema(example = "2026-12-01T00:00:00Z")]
    pub valid_from: Option<String>,
    /// RFC 3339, after `valid_from`; usable until then (exclusive).
    #[schema(example = "2027-01-01T00:00:00Z")]
    pub valid_until: Option<String>,
    /// Only with plans at least as long as this plan (stored as its number of days).
    pub min_plan_id: Option<i64>,
    /// Can be used (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// For admins, at most 500 characters.
    pub note: Option<String>,
}

/// Changes to a promo code: only the fields given change; `null` clears `max_uses`,
/// `valid_from`, `valid_until`, `min_plan_id` or `note`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoPatch {
    pub code: Option<String>,
    pub kind: Option<String>,
    pub value: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub max_uses: Option<Option<i64>>,
    pub once_per_user: Option<bool>,
    pub new_users_only: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub valid_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub valid_until: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub min_plan_id: Option<Option<i64>>,
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub note: Option<Option<String>>,
}

impl PromoPatch {
    pub(super) fn is_empty(&self) -> bool {
        self.code.is_none()
            && self.kind.is_none()
            && self.value.is_none()
            && self.max_uses.is_none()
            && self.once_per_user.is_none()
            && self.new_users_only.is_none()
            && self.valid_from.is_none()
            && self.valid_until.is_none()
            && self.min_plan_id.is_none()
            && self.active.is_none()
            && self.note.is_none()
    }
}

/// A normalised code, or 422 naming `code`.
fn check_code(code: &str) -> AppResult<String> {
    let code = normalise(code);
    let len = code.chars().count();
    if !(3..=32).contains(&len) {
        return Err(AppError::validation("code", "must be 3 to 32 characters"));
    }
    if !code
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(AppError::validation(
            "code",
            "may hold only the letters A-Z, digits, '-' and '_'",
        ));
    }
    Ok(code)
}

/// The value of a code of `kind`, or 422 naming `value`.
fn check_value(kind: PromoKind, value: i64) -> AppResult<i64> {
    let (valid, rule) = match kind {
        PromoKind::Percent => ((1..=100).contains(&value), "1 to 100 (percent off)"),
        PromoKind::Fixed => (value >= 1, "1 or more (kopecks off)"),
        PromoKind::BonusDays => ((1..=MAX_BONUS_DAYS).contains(&value), "1 to 3650 (days)"),
    };
    if valid {
        Ok(value)
    } else {
        Err(AppError::validation(
            "value",
            format!("a {kind} code's value must be {rule}"),
        ))
    }
}

/// A promo code's columns as the admin wants them, not checked yet.
pub(super) struct PromoDraft {
    code: String,
    kind: String,
    value: i64,
    max_uses: Option<i64>,
    once_per_user: bool,
    new_users_only: bool,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    min_plan: MinPlan,
    active: bool,
    note: Option<String>,
}

/// The minimum plan: the stored number of days (a PATCH that does not touch it), or a plan id
/// to look up (`None`: no minimum).
enum MinPlan {
    Keep(Option<i32>),
    Plan(Option<i64>),
}

impl PromoDraft {
    /// The checked columns; `uses_count` is how often the code was used already, `reserved_count`
    /// how many unpaid orders hold a use of it.
    pub(super) async fn check(
        self,
        conn: &mut PgConn,
        uses_count: i32,
        reserved_count: i32,
    ) -> AppResult<PromoValues> {
        let code = check_code(&self.code)?;
        let kind: PromoKind = parse_variant("kind", &self.kind)?;
        let value = check_value(kind, self.value)?;
        let max_uses = match self.max_uses {
            None => None,
            Some(max) => {
                let max = i32::try_from(max).ok().filter(|m| *m >= 1).ok_or_else(|| {
                    AppError::validation("max_uses", "must be 1 or more, or null for no limit")
                })?;
                if max < uses_count + reserved_count {
                    return Err(AppError::validation(
                        "max_uses",
                        if reserved_count == 0 {
                            format!("the code was used {uses_count} times already")
                        } else {
                            format!(
                                "the code was used {uses_count} times already and \
                                 {reserved_count} unpaid orders hold a use of it"
                            )
                        },
                    ));
                }
                Some(max)
            }
        };
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until)
            && until <= from
        {
            return Err(AppError::validation(
                "valid_until",
                "must be after valid_from",
            ));
        }
        let min_plan_days = match self.min_plan {
            MinPlan::Keep(days) => days,
            MinPlan::Plan(None) => None,
            MinPlan::Plan(Some(id)) => {
                let plan = plans::find(conn, PlanId(id)).await?.ok_or_else(|| {
                    AppError::validation("min_plan_id", format!("plan {id} not found"))
                })?;
                Some(plan.days)
            }
        };
        let note = self
            .note
            .map(|n| trimmed("note", &n, 0, MAX_NOTE_CHARS))
            .transpose()?
            .filter(|n| !n.is_empty());
        Ok(PromoValues {
            code,
            kind,
            value,
            max_uses,
            once_per_user: self.once_per_user,
            new_users_only: self.new_users_only,
            min_plan_days,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            active: self.active,
            note,
        })
    }
}

fn optional_time(field: &str, text: Option<&str>) -> AppResult<Option<DateTime<Utc>>> {
    text.map(|t| parse_time(field, t)).transpose()
}

impl NewPromo {
    pub(super) fn draft(self) -> AppResult<PromoDraft> {
        Ok(PromoDraft {
            valid_from: optional_time("valid_from", self.valid_from.as_deref())?,
            valid_until: optional_time("valid_until", self.valid_until.as_deref())?,
            code: self.code,
            kind: self.kind,
            value: self.value,
            max_uses: self.max_uses,
            once_per_user: self.once_per_user,
            new_users_only: self.new_users_only,
            min_plan: MinPlan::Plan(self.min_plan_id),
            active: self.active,
            note: self.note,
        })
    }
}

impl PromoPatch {
    /// The whole code as it would be after this change.
    pub(super) fn draft(self, before: &PromoCode) -> AppResult<PromoDraft> {
        let time = |field: &str, change: Option<Option<String>>, current| match change {
            None => Ok(current),
            Some(text) => optional_time(field, text.as_deref()),
        };
        Ok(PromoDraft {
            valid_from: time("valid_from", self.valid_from, before.valid_from)?,
            valid_until: time("valid_until", self.valid_until, before.valid_until)?,
            code: self.code.unwrap_or_else(|| before.code.clone()),
            kind: self.kind.unwrap_or_else(|| before.kind.to_string()),
            value: self.value.unwrap_or(before.value),
            max_uses: self.max_uses.unwrap_or(before.max_uses.map(i64::from)),
            once_per_user: self.once_per_user.unwrap_or(before.once_per_user),
            new_users_only: self.new_users_only.unwrap_or(before.new_users_only),
            min_plan: match self.min_plan_id {
                None => MinPlan::Keep(before.min_plan_days),
                Some(plan) => MinPlan::Plan(plan),
            },
            active: self.active.unwrap_or(before.active),
            note: self.note.unwrap_or_else(|| before.note.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<T: std::fmt::Debug>(r: AppResult<T>) -> String {
        match r {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn codes_are_normalised_and_checked() {
        assert_eq!(check_code(" winter-25 ").unwrap(), "WINTER-25");
        assert_eq!(check_code("a_b").unwrap(), "A_B");
        assert_eq!(field(check_code("ab")), "code");
        assert_eq!(field(check_code(&"A".repeat(33))), "code");
        assert!(check_code(&"A".repeat(32)).is_ok());
        for bad in ["WIN TER", "ЗИМА25", "50%OFF", "a.b"] {
            assert_eq!(field(check_code(bad)), "code", "{bad}");
        }
    }

    #[test]
    fn values_are_checked_by_kind() {
        assert!(check_value(PromoKind::Percent, 100).is_ok());
        assert_eq!(field(check_value(PromoKind::Percent, 101)), "value");
        assert_eq!(field(check_value(PromoKind::Percent, 0)), "value");
        assert!(check_value(PromoKind::Fixed, 1).is_ok());
        assert!(check_value(PromoKind::Fixed, 10_000_000).is_ok());
        assert_eq!(field(check_value(PromoKind::Fixed, 0)), "value");
        assert!(check_value(PromoKind::BonusDays, 3650).is_ok());
        assert_eq!(field(check_value(PromoKind::BonusDays, 3651)), "value");
        assert_eq!(field(check_value(PromoKind::BonusDays, -1)), "value");
    }
}
