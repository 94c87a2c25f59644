# Admin alerts (Telegram to ADMIN_TELEGRAM_IDS, email to ADMIN_EMAILS), English.
# alert-<kind> tells an alert as it is raised; alert-<kind>-resolved tells its end. The first line is
# also the email subject. Telegram HTML: <b>, <i>, <code> only. Variables are filled in by the program.

alert-none = —
alert-user = #{ $id } (Telegram { $telegram_id })

alert-payment_flagged = 🔴 <b>Payment flagged: { $anomaly }</b>
    Order #{ $order }, user { $user }, { $amount } through { $provider }.
    { $detail }
alert-payment_flagged-resolved = ✅ <b>Flagged payment reviewed</b>
    Order #{ $order } ({ $anomaly }), by { $by }.
alert-anomaly-promo_overuse = promo code over-use
alert-anomaly-paid_after_expiry = paid after the order expired
alert-anomaly-amount_mismatch = amount or currency mismatch
alert-anomaly-paid_closed_order = an order already closed was paid
alert-anomaly-refund_exceeds_payment = a refund over the payment
alert-anomaly-charge_without_order = a charge with no order

alert-refund_made = ↩️ <b>Refund of { $amount }</b>
    Order #{ $order } through { $provider }, user { $user }. { $origin }
alert-refund-by-shop = Made by { $actor }.
alert-refund-by-request = Asked through the shop, confirmed by { $provider }.
alert-refund-by-provider = Made in the { $provider } dashboard (not through the shop).

alert-job_dead = ⚠️ <b>{ $count ->
        [one] A { $kind } job is dead
       *[other] { $count } { $kind } jobs are dead
    }</b>
    Newest: job #{ $job }, user { $user }.
    Last error: { $error }

alert-panel_down = 🔴 <b>The panel is unreachable</b> since { $since }
    { $error }
    Provisioning waits until it is back.
alert-panel_down-resolved = ✅ <b>The panel is back</b> after { $minutes } min unreachable.

alert-sync_failing = ⚠️ <b>The { $sync } panel sync failed twice in a row</b>
    { $error }
alert-sync_failing-resolved = ✅ <b>The { $sync } panel sync works again</b>

alert-backup_failed = 🔴 <b>The backup failed</b>
    { $error }
alert-backup_failed-resolved = ✅ <b>The backup works again</b>

alert-webhook_probing = ⚠️ <b>{ $failures } forged payment webhooks in 5 minutes</b>
    The alert threshold is { $threshold }; most came from { $address }. Someone may be probing the webhooks.
alert-webhook_probing-resolved = ✅ <b>No forged payment webhooks for 5 minutes</b>

alert-paid_unprovisioned = 🔴 <b>{ $users ->
        [one] A paying user has
       *[other] { $users } paying users have
    } no access on the panel</b> for over 10 minutes
    The oldest: user { $user }. The shop keeps provisioning; check the panel.
alert-paid_unprovisioned-resolved = ✅ <b>Every paying user has their access on the panel again</b>

alert-sale = 💰 <b>New sale: { $plan }</b>
    { $amount } through { $provider }, user { $user }.

alert-digest = 📊 <b>Digest of { $day }</b>
    Sales: { $sales }
    Revenue: { $revenue }
    New users: { $new_users }
    Trials started: { $trials }
    Trial → paid: { $conversions }
    Renewals: { $renewals }
    Refunds: { $refunds } { $refunded }
    Expiring tomorrow: { $expiring }

alert-button-user = 👤 Open the user
alert-button-retry = 🔁 Retry the job
alert-button-reviewed = ✔️ Mark reviewed

# The bot's /alerts (admins only).
alerts-menu = <b>Alerts</b>
    Firing now: { $firing }
    { $list }
    Muted kinds are still recorded (GET /api/v1/alerts). Tap a kind to mute or unmute it.
alerts-firing-line = • { $title } (since { $since })
alerts-more = … and { $count } more: GET /api/v1/alerts?state=firing
alerts-kind-on = 🔔 { $kind }
alerts-kind-muted = 🔕 { $kind }
alerts-reviewed = ✅ Alert #{ $alert }: the payment is marked reviewed.
alerts-not-flagged = Alert #{ $alert } is not a flagged payment waiting for review (already reviewed?).
alerts-retried = 🔁 Job #{ $job } is pending again.
alerts-retry-refused = Job #{ $job } cannot be retried: { $reason }

alerts-kind-payment_flagged = Flagged payments
alerts-kind-refund_made = Refunds
alerts-kind-job_dead = Dead jobs
alerts-kind-panel_down = Panel unreachable
alerts-kind-sync_failing = Failing panel syncs
alerts-kind-backup_failed = Failed backups
alerts-kind-webhook_probing = Forged webhooks
alerts-kind-paid_unprovisioned = Paid, not on the panel
alerts-kind-sale = Sales
alerts-kind-digest = Daily digest
