# Notifications sent by the shop (Telegram and email), English.
# Each notification has a -subject (email subject) and a -body (Telegram HTML: <b>, <i>, <a href>,
# <code> only). Variables are filled in by the program; keep their names.
# Buttons under Telegram messages are the button-* messages at the end.

## Shared pieces

link-line = Your subscription link: <code>{ $link }</code>
link-pending = Your subscription link is being prepared: open /status in a minute.
days = { $days ->
    [one] { $days } day
   *[other] { $days } days
}
greeting = Hello, { $name }!

## Trials

trial_started-subject = Your free trial has started
trial_started-body = <b>Your free trial has started.</b>
    You have { $days_text } of VPN access, until { $date }.

trial_ending-subject = Your free trial ends tomorrow
trial_ending-body = <b>Your free trial ends on { $date }.</b>
    Choose a plan to stay connected: /buy

link_ready-subject = Your subscription link is ready
link_ready-body = <b>Your subscription is ready.</b>
    Add it to your VPN app by its link (or scan its QR code in /status).

## Subscription

subscription_expiring-subject = Your VPN subscription ends in { $days_text }
subscription_expiring-body = <b>Your subscription ends in { $days_text }</b>, on { $date }.
    Renew now so you are not left without VPN (and without Telegram where it is blocked): /buy

subscription_expired-subject = Your VPN subscription has ended
subscription_expired-body = <b>Your subscription ended on { $date }.</b>
    Renew to get your access back — your link stays the same: /buy

traffic_threshold-subject = You have used { $percent }% of your traffic
traffic_threshold-body = { $percent ->
    [100] <b>Your traffic is used up</b>: { $used } of { $limit }. The VPN is paused until your next period or a renewal: /buy
   *[other] <b>You have used { $percent }% of your traffic</b>: { $used } of { $limit }.
}

## Payments

payment_succeeded-subject = Payment received: { $plan }
payment_succeeded-body = <b>Thank you! Your payment of { $amount } is received.</b>
    Plan: { $plan } ({ $days_text }). Your subscription is active until { $date }.

payment_failed-subject = Your payment did not go through
payment_failed-body = <b>Your payment of { $amount } for { $plan } did not go through.</b>
    Reason: { $reason }
    You can try again: /buy

auto_renewal_succeeded-subject = Your subscription was renewed
auto_renewal_succeeded-body = <b>Your subscription was renewed automatically</b> for { $amount }.
    Plan: { $plan }. Active until { $date }.

auto_renewal_failed-subject = Automatic renewal failed
auto_renewal_failed-body = <b>We could not renew your subscription automatically</b> ({ $amount }).
    Reason: { $reason }
    Renew by hand before it ends: /buy

failure-insufficient_funds = not enough money on the card.
failure-card_expired = the card has expired.
failure-declined = the bank declined the payment.
failure-canceled = the payment was canceled or not completed in time.
failure-permission_revoked = automatic payments were turned off for this card.
failure-three_d_secure = the card's confirmation (3-D Secure) failed.
failure-fraud_suspected = the bank suspected fraud and blocked the payment.
failure-other = the payment provider declined it.

## Referrals and promo codes

referral_joined-subject = A friend joined through your link
referral_joined-body = <b>{ $friend } joined through your link.</b>
    When they pay for the first time, you get { $days_text } for free.

referral_welcome-subject = You got { $days_text } for joining
referral_welcome-body = <b>You joined through a friend's invitation and got { $days_text } for free.</b>
    Your subscription is active until { $date }.

referral_bonus-subject = You got { $days_text } for a friend
referral_bonus-body = <b>Your friend paid — you got { $days_text } for free.</b>
    Your subscription is active until { $date }.

promo_applied-subject = Promo code applied
promo_applied-body = { $effect ->
    [days] <b>Promo code { $code } applied:</b> { $days_text } added. Active until { $date }.
    [percent] <b>Promo code { $code } applied:</b> { $percent }% off your next payment.
   *[amount] <b>Promo code { $code } applied:</b> { $amount } off your next payment.
}

## Buttons

button-menu = Menu
button-renew = Renew
button-status = My subscription

# The subject of a broadcast mailed to a subscriber without Telegram.
broadcast-email-subject = News from your VPN shop
