# The admin web console (/admin). Plain text: the page escapes it.
console-name = vpn-shop console
nav-label = Main menu
nav-dashboard = Dashboard
nav-users = Users
nav-logout = Log out
role-viewer = viewer
role-operator = operator
role-admin = admin
yes = yes
no = no

error-forbidden = Not allowed
error-not-found = Not found
error-conflict = Cannot do that now
error-invalid = Please check what you entered
error-too-many = Too many attempts
error-server = Something went wrong on our side
error-other = The request failed
error-back = Back to the dashboard

login-title = Log in
login-username = Username
login-password = Password
login-submit = Log in
login-hint = Accounts are made with “vpn-shop admin create” on the server.
login-wrong = Wrong username or password.
login-missing = Enter your username and password.
login-locked = Too many failed attempts. Try again in { $n ->
    [one] { $n } minute
   *[other] { $n } minutes
}.

dash-subscriptions = Subscriptions
dash-active = active subscriptions
dash-trials = running trials
dash-conversion = trial → paid
dash-expiring = end within 3 days
dash-alerts = Open alerts
dash-dead-jobs = dead jobs
dash-sales-chart = Sales per day, last 30 days
dash-no-sales = No sales in the last 30 days yet — share the bot’s link or a trial to get the first ones.
dash-chart-max = Top of the scale: { $n ->
    [one] { $n } sale
   *[other] { $n } sales
} a day.
dash-no-sales-period = No sales in this period.
dash-provider = Provider
dash-sales = Sales
dash-revenue = Revenue
dash-refunded = refunded
dash-total = Total
dash-panel = Panel syncs
dash-no-panel = No panel is connected: set MARZBAN_URL to provision subscribers.
dash-no-syncs = No sync has run yet.
dash-no-alerts = Nothing needs your attention.
dash-generated = As of
period-today = Today
period-7d = Last 7 days
period-30d = Last 30 days
provider-yookassa = YooKassa
provider-wata = Wata
provider-stars = Telegram Stars
provider-free = Free (promo)
sync-subscriptions = Subscriptions
sync-status = Status
sync-traffic = Traffic
sync-stats = Panel stats
sync-cleanup = Cleanup
run-running = running
run-succeeded = ok
run-failed = failed
alert-kind-payment-flagged = Payment flagged
alert-kind-refund-made = Refund made
alert-kind-job-dead = Job failed for good
alert-kind-panel-down = Panel down
alert-kind-sync-failing = Sync failing
alert-kind-backup-failed = Backup failed
alert-kind-webhook-probing = Webhook probing
alert-kind-paid-unprovisioned = Paid but not provisioned
alert-kind-sale = Sale
alert-kind-digest = Digest

users-search-label = Search by user id (#12), Telegram id, username or email
users-search-placeholder = 123456789, @name, name@example.com
users-search = Search
users-id-match = User with this id:
users-found = { $n ->
    [one] { $n } user
   *[other] { $n } users
}
users-none-yet = No users yet — they appear here when they start the bot.
users-none-found = Nobody matches. Check the spelling, or search by Telegram id.
pager = Pages
pager-prev = Previous
pager-next = Next

user-title = User
user-id = Id
user-no-name = no username
user-name = Name
user-telegram = Telegram id
user-web-only = Web only (no Telegram)
user-subscription = Subscription
user-joined = Joined
user-banned = banned
user-bot-blocked = blocked the bot
user-trial = trial
user-until = until
user-no-subscription = No subscription.
user-status = Status
user-plan = Plan
user-expires = Ends
user-days-left = { $n ->
    [one] { $n } day left
   *[other] { $n } days left
}
user-traffic = Traffic this period
user-traffic-lifetime = Traffic in total
user-panel = Panel account
user-panel-unknown = not synced yet
user-online = Last online
user-synced = Last synced
user-auto-renew = Auto-renewal
user-link = Subscription link
user-profile = Profile
user-email = Email
user-last-seen = Last seen
user-trial-used = Trial taken
user-note = Note
user-referrals = Referrals
user-invited-by = Invited by
user-invited = Invited
user-invited-paid = paid
user-bonus-days = Bonus days (earned + received)
user-actions = Actions
user-payments = Payments
user-no-payments = No payments yet.
user-notifications = Notifications
user-no-notifications = Nothing was sent to this user yet.
status-active = active
status-expired = expired
status-disabled = disabled
payment-amount = Amount
payment-days = Days
payment-created = Created
payment-pending = pending
payment-succeeded = paid
payment-canceled = canceled
payment-expired = expired
payment-refunded = refunded
notification-kind = Kind
notification-channel = Channel

action-days = Days to add
action-reason = Reason (kept in the audit log)
action-extend = Extend…
action-email = Set email…
action-note = Save note…
action-ban = Ban…
action-unban = Unban…
action-reset-traffic = Reset traffic…
action-revoke-link = Revoke link…

confirm-title-extend = Extend the subscription?
confirm-title-ban = Ban this user?
confirm-title-unban = Unban this user?
confirm-title-reset-traffic = Reset the traffic?
confirm-title-revoke-link = Revoke the subscription link?
confirm-title-email = Change the email?
confirm-title-note = Change the note?
confirm-what-extend = The days are added to the time left (an ended subscription restarts from now); the panel follows.
confirm-what-ban = The subscription is disabled on the panel at once; the days stay and come back with an unban.
confirm-what-unban = The subscription is enabled again on the panel.
confirm-what-reset-traffic = The traffic counter of this period goes back to zero on the panel.
confirm-what-revoke-link = The old link stops working at once; the user needs the new one from the bot.
confirm-what-email = Receipts and notices go to this address; leave it empty to remove it.
confirm-what-note = The note is for the admins only: the user never sees it. Leave it empty to remove it.
confirm-do-extend = Yes, extend
confirm-do-ban = Yes, ban
confirm-do-unban = Yes, unban
confirm-do-reset-traffic = Yes, reset
confirm-do-revoke-link = Yes, revoke the link
confirm-do-email = Yes, change it
confirm-do-note = Yes, save it
confirm-expiry-now = Currently ends
confirm-expiry-after = Will end
confirm-email-now = Now
confirm-email-after = Will be
confirm-cancel = Cancel
done-extend = Extended. The panel is being updated.
done-ban = Banned.
done-unban = Unbanned.
done-reset-traffic = Traffic reset queued.
done-revoke-link = Link revocation queued.
done-email = Email saved.
done-note = Note saved.

# Operations: broadcasts, jobs, syncs, audit log, admin accounts
nav-broadcasts = Broadcasts
nav-jobs = Jobs
nav-syncs = Syncs
nav-audit = Audit log
nav-admins = Admins

bc-title = Broadcast
bc-compose = New broadcast
bc-none = No broadcasts yet — write the first one to tell your subscribers about new servers or a sale.
bc-message = Message
bc-audience = Audience
bc-segment = Who
bc-language = Language
bc-language-any = every language
bc-handled = Handled
bc-remaining = Not sent yet
bc-text = Text (Telegram HTML)
bc-text-hint = Allowed: <b>bold</b>, <i>italic</i>, <u>, <s>, <a href="…">link</a>, <code>, <pre>, <blockquote>, <tg-spoiler>. Write &lt; &gt; &amp; for < > &.
bc-button-text = Button label (optional)
bc-button-url = Button link
bc-preview = Preview
bc-preview-do = Preview
bc-preview-empty = Type the message and press Preview to see it as subscribers will, with how many will receive it.
bc-field-text = Text
bc-field-button-text = Button label
bc-field-button-url = Button link
bc-field-segment = Audience
bc-field-language = Language
bc-audience-size = { $n ->
    [one] { $n } user will receive it now
   *[other] { $n } users will receive it now
}
bc-audience-empty = Nobody is in this audience now: pick another one.
bc-send-what = Sending starts at once and cannot be undone; it can be canceled while it runs. Banned users and users who blocked the bot are skipped.
bc-send = { $n ->
    [one] Send to { $n } user
   *[other] Send to { $n } users
}
bc-status-draft = draft
bc-status-queued = queued
bc-status-running = sending
bc-status-completed = completed
bc-status-canceled = canceled
bc-total = Recipients
bc-sent = Sent
bc-failed = Failed
bc-blocked = Blocked the bot
bc-eta = Time left
bc-created = Created
bc-waiting = Waiting to start
bc-started = Started
bc-finished = Finished
bc-reload = Reload to see the latest numbers
bc-cancel = Cancel the broadcast…
bc-cancel-title = Cancel this broadcast?
bc-cancel-what = Nobody who has not received it yet will get it. Those who have, keep it.
bc-cancel-do = Yes, cancel it
bc-canceled = Canceled.
segment-all = everyone
segment-active = with a running subscription
segment-expired = whose subscription ended
segment-trial = on a trial now
segment-never-paid = who never paid
language-ru = Russian
language-en = English
eta-seconds = { $n ->
    [one] about { $n } second
   *[other] about { $n } seconds
}
eta-minutes = { $n ->
    [one] about { $n } minute
   *[other] about { $n } minutes
}

jobs-kind = Kind
jobs-found = { $n ->
    [one] { $n } job
   *[other] { $n } jobs
}
jobs-none-dead = No dead jobs — everything that had to happen did.
jobs-none = No jobs match the filter.
jobs-attempts = Attempts
jobs-finished = Stopped
jobs-run-at = Due
jobs-error = Last error
jobs-payload = Payload
jobs-retry = Retry
jobs-discard = Discard…
jobs-discard-title = Discard job
jobs-discard-what = The job is deleted and its work given up; only the audit log keeps it. Retry instead if its cause is fixed.
jobs-discard-do = Yes, discard it
jobs-done-retry = Queued again
jobs-done-discard = Discarded
job-pending = pending
job-running = running
job-done = done
job-dead = dead

syncs-run = Run now
syncs-done = finished
syncs-failed = failed — the error is in the history below
syncs-never = Not run yet.
syncs-history = History
syncs-started = Started
syncs-checked = checked
syncs-created = created
syncs-updated = updated
syncs-result = Result
syncs-errors = errors

audit-admin = Admin
audit-action = Action (user.ban, or user. for all of them)
audit-found = { $n ->
    [one] { $n } entry
   *[other] { $n } entries
}
audit-none = Nothing matches — clear the filter.
audit-details = Before and after
audit-before = Before
audit-after = After

admins-you = you
admins-active = active
admins-disabled = disabled
admins-last-login = Last login
admins-role = Role
admins-set-role = Change role
admins-new-password = New password
admins-set-password = Set password
admins-disable = Disable
admins-enable = Enable
admins-delete = Delete…
admins-delete-title = Delete this account?
admins-delete-what = The account can no longer log in and its sessions end. The audit log keeps its entries under its name.
admins-delete-do = Yes, delete it
admins-new = New account
admins-password-hint = At least 12 characters. A changed role or password, or disabling, logs the account out everywhere.
admins-create = Create account
admins-done-created = Account created
admins-done-role = Role changed
admins-done-active = Account updated
admins-done-password = Password changed
admins-done-deleted = Account deleted

# Payments
nav-payments = Payments
filter-any = any
payments-user = User id
payments-from = From
payments-to = Until (included)
payments-filter = Show
payments-found = { $n ->
    [one] { $n } payment
   *[other] { $n } payments
}
payments-none = No payments match — clear the filter, or wait for the first sale.
payment-title = Payment
payment-paid = Paid
payment-external = Provider's id
payment-reason = Why
payment-refunds = Refunds
payment-no-refunds = No refunds.
payment-days-back = { $n ->
    [one] { $n } day taken back
   *[other] { $n } days taken back
}
payment-events = Events from the provider
payment-no-events = No events received.

# Refunds
refund-title = Refund
refund-amount = Amount to refund
refund-amount-hint = Leave it empty to refund all that remains:
refund-submit = Refund…
refund-confirm-title = Refund this payment?
refund-confirm-what = The money goes back through the provider, and the paid days are taken back in proportion; the panel follows.
refund-of = of
refund-days = Days taken back
refund-do = Yes, refund
done-refund = Refunded. The days are taken back and the panel is being updated.

# Plans
nav-plans = Plans
plans-none = No plans yet — create the first one below; the bot offers active plans.
plan-title = Plan
plan-name = Default name
plan-name-ru = Name in Russian
plan-name-en = Name in English
plan-description-ru = Description in Russian
plan-description-en = Description in English
plan-days = Days
plan-price = Price, ₽
plan-price-stars = Price in Stars
plan-traffic = Traffic per period, GiB
plan-unlimited = unlimited
plan-sort = Order in the bot
plan-active = Offered in the bot
plan-on-sale = on sale
plan-off-sale = not offered
plan-new = New plan
plan-form-hint = Empty Stars price: not sold for Stars. Empty traffic: unlimited. The default name may stay empty when a name per language is given.
plan-create = Create the plan
plan-save = Save
plan-deactivate = Stop offering it
plan-deactivate-what = Subscribers keep what they bought; the bot no longer offers this plan.
plan-activate = Offer it again
plan-done-created = Plan created.
plan-done-saved = Saved.
plan-done-activated = The bot offers this plan again.
plan-done-deactivated = The bot no longer offers this plan.

# Promo codes
nav-promo-codes = Promo codes
promo-title = Promo code
promo-search-label = Codes starting with
promo-found = { $n ->
    [one] { $n } code
   *[other] { $n } codes
}
promo-none-yet = No promo codes yet — create one below and share it.
promo-none-found = No code starts with that.
promo-code = Code
promo-kind = Kind
promo-kind-percent = Percent off
promo-kind-fixed = Roubles off
promo-kind-bonus-days = Bonus days
promo-value = Value
promo-days = { $n ->
    [one] { $n } day
   *[other] { $n } days
}
promo-redemptions = Used
promo-reserved = { $n ->
    [one] { $n } held by an unpaid order
   *[other] { $n } held by unpaid orders
}
promo-reserved-label = held by unpaid orders
promo-valid = Valid
promo-valid-from = Valid from (UTC)
promo-valid-until = Valid until (UTC)
promo-min-plan = Only with plans at least as long as
promo-any-plan = any plan
promo-kept-days = { $n ->
    [one] { $n } day (as stored)
   *[other] { $n } days (as stored)
}
promo-max-uses = Uses allowed in total (empty: no limit)
promo-note = Note for admins
promo-once-per-user = Once per user
promo-new-users-only = Only for users who never paid
promo-active = Can be used
promo-on = active
promo-off = inactive
promo-new = New promo code
promo-form-hint = Value: percent (1–100), roubles off, or days added. Users may type the code in any case.
promo-create = Create the code
promo-save = Save
promo-deactivate = Deactivate
promo-activate = Activate
promo-redeemed-by = Redeemed by
promo-no-redemptions = Nobody has used this code yet.
promo-done-created = Promo code created.
promo-done-saved = Saved.
promo-done-activated = The code can be used again.
promo-done-deactivated = The code can no longer be used.
