# The Telegram bot's texts, English. Telegram HTML: <b>, <i>, <a href>, <code> only.
# Variables ({ $name }) are filled in by the program; keep their names.

## Main menu

menu-button-buy = 🛒 Buy or renew
menu-button-status = 📊 My subscription
menu-button-trial = 🎁 Free trial
menu-button-referral = 👥 Invite friends
menu-button-promo = 🏷 Promo code
menu-button-settings = ⚙️ Settings
menu-button-help = ❓ Help
menu-button-cabinet = 📱 Cabinet
button-back = « Back
button-to-menu = « Menu
button-cancel = Cancel

welcome = <b>Hello, { $name }!</b>
    This bot sells fast VPN access: pick a plan, pay, and get a subscription link for any device.
welcome-back = <b>Welcome back, { $name }!</b>
menu-text = What would you like to do?
unknown-input = I did not understand that. Choose an action below or send /help.
unknown-command = There is no command { $command }. Send /help for the list.

## Commands (the menu next to the message field)

command-start = Main menu
command-buy = Buy or renew VPN
command-status = My subscription and link
command-trial = Free trial
command-referral = Invite friends
command-promo = Apply a promo code
command-settings = Language, email, auto-renewal
command-help = Help and support
command-support = Write to the shop's team

## Trial

trial-off = There is no free trial in this shop. Choose a plan: /buy
trial-used = You have already used your free trial (on { $date }). Choose a plan to continue: /buy
trial-starting = <b>Your free trial of { $days_text } has started.</b>
    Your subscription link is being prepared and will be sent here in a moment.

## Buying

buy-choose-plan = <b>Choose a plan</b>
buy-plan-line = • <b>{ $name }</b>: { $days_text }, { $price }{ $traffic }
buy-plan-stars = { " " }or { $stars } ⭐
buy-plan-traffic = , { $limit } of traffic
buy-plan-description = { "  " }<i>{ $description }</i>
buy-plan-button = { $name } — { $price }
buy-no-plans = No plans are on sale right now. Please try again later.
buy-no-providers = Payments are not available right now. Please write to support: /help
buy-promo-pending = Your promo code <b>{ $code }</b> will be applied at checkout.
buy-renewal-note = Your current subscription is active until { $date }; the new period is added to it.
buy-choose-method = <b>{ $plan }</b>: { $days_text } for { $price }.{ $description }
    Choose how to pay:
pay-yookassa = 💳 Card, SBP (YooKassa)
pay-yookassa-auto = 💳 Card with auto-renewal
pay-wata = 💳 Card (WATA)
pay-stars = ⭐ Telegram Stars ({ $stars })
pay-free = 🎁 Get it free (promo code)
checkout-redirect = <b>Order #{ $order }: { $amount }</b>
    Press the button to pay. The link is valid for { $minutes } minutes. Your access is extended as soon as the payment is confirmed, and the link comes here.
checkout-pay-button = Pay { $amount }
checkout-stars = The invoice for { $amount } is below. Your access is extended as soon as it is paid.
checkout-free = <b>Your promo code covered this period.</b> Your subscription is active until { $date }; the link comes here in a moment.
checkout-error-provider-off = This payment method is not available right now. Please choose another one.
checkout-error-unknown-plan = This plan is no longer on sale. Choose another one: /buy
checkout-error-not-for-stars = This plan cannot be bought with Telegram Stars. Please choose another method.
checkout-error-banned = Your account is blocked. Please contact support: /help
checkout-error-provider = The payment service is not answering. Please try again in a minute or choose another method.
checkout-error-promo = Your promo code cannot be used for this order: { $reason }
# What the payer reads at the payment provider (plain text, no HTML).
checkout-description = VPN: { $plan } ({ $days_text })
checkout-description-order = { $description }, order { $order }
checkout-invoice-title = VPN { $plan }

## Subscription status

status-none = You have no subscription yet.
    Take the free trial or choose a plan.
status-title = <b>Your subscription</b>
status-plan = Plan: { $plan }
status-plan-trial = Plan: free trial
status-state = Status: { $state }
state-active = ✅ active
state-expired = ⛔ expired
state-disabled = ⛔ disabled
state-limited = ⚠️ traffic limit reached
status-expires = Active until: { $date } ({ $days_text } left)
status-expired-at = Ended: { $date }
status-traffic = Traffic: { $used } of { $limit }
status-traffic-unlimited = Traffic: { $used } (unlimited)
status-link = Link: <code>{ $link }</code>
status-link-pending = Your link is being prepared: try again in a minute.
status-auto-renew-on = Auto-renewal: on
status-connect = <b>How to connect:</b> install an app, then add the subscription by its link (copy it above) or scan the QR code.
status-app = { $platform }: <a href="{ $url }">{ $app }</a>
button-renew-plan = 🔄 Renew
button-connect = 📲 How to connect

## Referrals

referral-text = <b>Invite friends and get free days</b>
    Your link: <code>{ $link }</code>
    A friend who joins through it gets { $invitee_days_text }; you get { $inviter_days_text } when they pay for the first time.

    Invited: { $invited }, of them paid: { $paid }
    Days earned: { $earned }
referral-share = 📤 Share the link
referral-welcome = You joined through an invitation: { $days_text } are added for free.
referral-not-new = Referral links only work for new users.

## Promo codes

promo-ask = Send the promo code (or /cancel).
promo-applied-days = <b>Promo code { $code } applied:</b> { $days_text } added, active until { $date }.
promo-applied-discount = <b>Promo code { $code } accepted:</b> { $discount } off your next payment. Choose a plan: /buy
promo-refused = Promo code { $code } cannot be applied: { $reason }
promo-reason-unknown = there is no such code.
promo-reason-not_yet_valid = it is not valid yet.
promo-reason-expired = it has expired.
promo-reason-used_up = it has been used up.
promo-reason-already_used = you have already used it.
promo-reason-not_for_you = it is only for new customers.
promo-reason-plan_too_short = it is only for plans of { $days_text } or longer.
promo-reason-not_for_stars = it gives a discount in roubles and cannot be used with Telegram Stars.

## Settings

settings-text = <b>Settings</b>
    Language: { $language }
    Email: { $email }
    Auto-renewal: { $auto_renew }
settings-email-none = not set
settings-auto-on = on
settings-auto-off = off (choose "Card with auto-renewal" when you pay to turn it on)
settings-language-button = 🌐 Русский
settings-email-button = ✉️ Set email
settings-email-remove = Remove email
settings-auto-off-button = Turn auto-renewal off
email-ask = Send your email address: receipts and reminders will go there (or /cancel).
email-saved = Email saved: { $email }
email-removed = Email removed.
email-invalid = This does not look like an email address ({ $problem }). Send it again or /cancel.
auto-renew-turned-off = Auto-renewal is off. Your subscription stays active until { $date }.
language-changed = Language: English.
cancelled = Cancelled.

## Linking a web account (the cabinet shows the code)

link-usage = Send the code shown in your web cabinet, like this: /link ABCD2345
link-done = Done: this Telegram account is now linked to your shop account <b>{ $email }</b>. The bot and the cabinet show the same subscription, and reminders come here too.
link-unknown = This code does not work: it is mistyped, used already, or older than 15 minutes. Open the cabinet and get a new one.
link-has-history = This Telegram account already has its own subscription, payments or trial in the shop, so it cannot be joined to another account here. Write to support: they can move it.
link-already = That cabinet account is already linked to a Telegram account.

## Help

help-text = <b>Help</b>
    /buy: buy or renew VPN
    /status: your subscription, link and QR code
    /trial: free trial
    /referral: invite friends
    /promo: apply a promo code
    /settings: language, email, auto-renewal
    /paysupport: help with a payment
    /terms: terms of service
help-support = Support: { $contact }
help-write-here = ✉️ Write your question right here (or press the button below): the shop's team reads it and answers in this chat.
paysupport-text = <b>Help with a payment</b>
    If you paid and your access was not extended within a few minutes, write to support with your order number (shown when you paid) — we check every payment by hand and refund anything charged by mistake.
terms-default = <b>Terms of service</b>
    Access is personal and for lawful use. The period you pay for starts when payment is confirmed; unused time is added to a renewal. Refunds of unused periods: write to support.

## Required channel

channel-required = To use this bot, join our channel first, then press "I have joined".
channel-join = 📢 Join the channel
channel-check = ✅ I have joined
channel-not-yet = You have not joined the channel yet.

## Middleware

banned = Your access to this bot has been blocked. If you think this is a mistake, contact support.
too-fast = Too many requests: please wait a couple of seconds.
error-apology = Sorry, something went wrong on our side. Please try again in a minute.
callback-expired = This button is out of date. Here is the menu again.

## Admin

admin-only = This command is for the shop's administrators.
admin-menu = <b>Admin</b>
    /stats: users and revenue
    /user &lt;telegram id | @username&gt;: a user's profile
    /grant &lt;telegram id&gt; &lt;days&gt;: give days
    /broadcast: message all users
    /alerts: alerts, and muting them
admin-stats = <b>Statistics</b>
    Users: { $users } (new today: { $new_today })
    Active subscriptions: { $active } (trials: { $trials })
    Paying users: { $paying }
    Revenue today: { $today }
    Revenue 30 days: { $month }
admin-stats-provider = { "  " }{ $provider }: { $amount }
admin-user-usage = Usage: /user &lt;telegram id | @username&gt;
admin-user-not-found = No user { $who }.
admin-user = <b>User { $name }</b> (id { $id }, Telegram { $telegram_id })
    Language: { $language }, joined { $joined }
    Email: { $email }
    Banned: { $banned }, blocked the bot: { $blocked }
    { $subscription }
    Payments: { $payments }
admin-user-no-sub = No subscription.
admin-user-sub = Subscription: { $state } until { $date }, traffic { $used }
admin-user-payment = { "  " }#{ $id } { $date } { $amount } { $provider } { $status }
admin-button-stats = 📈 Statistics
admin-button-broadcast = 📣 Broadcast
admin-broadcast-audience = Who should get it?
admin-button-grant = ➕ Grant days
admin-button-ban = 🚫 Ban
admin-button-unban = ✅ Unban
admin-button-reset = 🔄 Reset traffic
admin-button-revoke = 🔑 Revoke link
admin-grant-usage = Usage: /grant &lt;telegram id&gt; &lt;days&gt; (1-3650)
admin-grant-ask = How many days to give { $name }? Send a number (or /cancel).
admin-granted = { $name } got { $days_text }: active until { $date }.
admin-banned = { $name } is banned: their subscription is disabled on the panel.
admin-unbanned = { $name } is unbanned.
admin-traffic-reset = Traffic of { $name } will be reset on the panel.
admin-link-revoked = The link of { $name } will be replaced; the old one stops working.
admin-no-subscription = { $name } has no subscription.
admin-broadcast-ask = Send the message for all users (Telegram formatting is kept; or /cancel).
admin-broadcast-preview = <b>Preview</b> of the message:
admin-broadcast-audience-all = Everyone
admin-broadcast-audience-active = Active subscribers
admin-broadcast-audience-expired = Expired
admin-broadcast-audience-trial = Trial users
admin-broadcast-audience-never_paid = Never paid
admin-broadcast-confirm = Send to { $audience }: { $count } users?
admin-broadcast-send = ✅ Send
admin-broadcast-started = Broadcast #{ $id } started: { $count } users. Progress: GET /api/v1/broadcasts/{ $id }
admin-broadcast-invalid = The message cannot be sent: { $problem }
