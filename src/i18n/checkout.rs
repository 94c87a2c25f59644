//! What a payer reads at the payment provider, in their language: the Stars invoice's title
//! and description, the YooKassa and WATA payment `description` and the receipt line. Plain
//! text (no HTML), cut to each provider's limit by the caller.

use super::{Args, html_to_text, message};
use crate::domain::Language;

/// A plan as the payer sees it: its name and description in their language, its days.
#[derive(Debug, Clone, Copy)]
pub struct PlanText<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub days: i32,
}

/// `VPN: 1 месяц (30 дней)` / `VPN: 1 month (30 days)`: the payment and receipt description.
pub fn payment_description(language: Language, plan: PlanText<'_>) -> String {
    let days = message(
        language,
        "days",
        &Args::new().number("days", f64::from(plan.days)),
    );
    plain(
        language,
        "checkout-description",
        &Args::new().text("plan", plan.name).text("days_text", &days),
    )
}

/// The payment description with the order number, for the provider's dashboard and the payer.
pub fn order_description(language: Language, plan: PlanText<'_>, order: &str) -> String {
    plain(
        language,
        "checkout-description-order",
        &Args::new()
            .text("description", &payment_description(language, plan))
            .text("order", order),
    )
}

/// The Stars invoice's title: `VPN 1 месяц`.
pub fn invoice_title(language: Language, plan: PlanText<'_>) -> String {
    plain(
        language,
        "checkout-invoice-title",
        &Args::new().text("plan", plan.name),
    )
}

/// The Stars invoice's description: the payment description, then the plan's own description
/// when it has one in this language.
pub fn invoice_description(language: Language, plan: PlanText<'_>) -> String {
    let base = payment_description(language, plan);
    match plan.description {
        Some(description) => format!("{base}. {description}"),
        None => base,
    }
}

/// A message as plain text: the values were HTML-escaped for Telegram, undone here.
fn plain(language: Language, id: &str, args: &Args) -> String {
    html_to_text(&message(language, id, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_texts_are_in_the_payers_language_and_plain() {
        let plan = PlanText {
            name: "1 месяц <VIP> & co",
            description: Some("Для одного устройства"),
            days: 30,
        };
        assert_eq!(
            payment_description(Language::Ru, plan),
            "VPN: 1 месяц <VIP> & co (30 дней)"
        );
        assert_eq!(
            order_description(Language::Ru, plan, "42"),
            "VPN: 1 месяц <VIP> & co (30 дней), заказ 42"
        );
        assert_eq!(invoice_title(Language::Ru, plan), "VPN 1 месяц <VIP> & co");
        assert_eq!(
            invoice_description(Language::Ru, plan),
            "VPN: 1 месяц <VIP> & co (30 дней). Для одного устройства"
        );
        let plan = PlanText {
            name: "1 month",
            description: None,
            days: 30,
        };
        assert_eq!(
            order_description(Language::En, plan, "42"),
            "VPN: 1 month (30 days), order 42"
        );
        assert_eq!(
            invoice_description(Language::En, plan),
            "VPN: 1 month (30 days)"
        );
    }
}
