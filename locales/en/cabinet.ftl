# The subscriber cabinet (/app), in a browser and as a Telegram Mini App. Plain text: the page
# escapes it.
app-name = My VPN
app-signout = Sign out
app-back = Back to my cabinet

app-signin-title = Sign in
app-signin-lead = Enter your email: we send you a link that signs you in. No password, no Telegram needed. A new address gets a new account.
app-signin-email = Email
app-signin-submit = Send me a sign-in link
app-signin-bad-email = This does not look like an email address. Check it and try again.
app-signin-too-many = Too many sign-in links asked for. Try again in { $n ->
    [one] a minute
   *[other] { $n } minutes
}.
app-signin-email-off = Sign-in by email is not available in this shop. Open the cabinet from the shop's Telegram bot.
app-signin-telegram = Signing you in with Telegram…

app-mail-sent-title = Check your mail
app-mail-sent-text = If the address is right, a sign-in link is on its way to it. The link works for 15 minutes, once.
app-mail-sent-hint = Nothing came? Look in the spam folder, or ask for a new link.
app-mail-sent-again = Ask for a new link
app-mail-subject = Your sign-in link
app-mail-text = Open this link to sign in to your VPN cabinet:
    { $link }
    It works for 15 minutes, once. If you did not ask for it, ignore this mail.

app-link-title = Sign in
app-link-text = Press the button to sign in on this device.
app-link-submit = Sign in
app-link-gone-title = This link does not work any more
app-link-gone-text = A sign-in link works for 15 minutes and only once. Ask for a new one.

app-hello = Hello
app-done-trial = Your trial has started. The link appears here in a moment; reload the page if it does not.
app-done-trial-used = The trial has already been taken on this account.

app-sub-title = My subscription
app-sub-none = You have no subscription yet.
app-sub-plan-trial = Trial
app-sub-until = Until
app-sub-days-left = { $n ->
    [one] { $n } day left
   *[other] { $n } days left
}
app-sub-ended = Ended
app-sub-traffic = Traffic
app-sub-traffic-of = of
app-sub-traffic-unlimited = no limit
app-sub-link = Subscription link
app-sub-link-pending = Your link is being prepared. Reload the page in a minute.
app-sub-link-secret = Anyone with this link can use your VPN: do not share it.
app-copy = Copy
app-copied = Copied
app-qr = Scan it with the VPN app on another device.
app-import-title = Add to an app in one tap
app-import-hint = The app must be installed. If nothing happens, copy the link and add it in the app by hand.
app-howto-title = How to connect
app-howto-android-1 = Install Hiddify, v2rayNG, v2RayTun or Happ from Google Play.
app-howto-android-2 = Tap the app's button above: it opens and adds your subscription.
app-howto-android-3 = Choose the new profile and tap Connect; allow the VPN connection when Android asks.
app-howto-ios-1 = Install Hiddify, Streisand, v2RayTun, Happ or FoXray from the App Store.
app-howto-ios-2 = Tap the app's button above: it opens and adds your subscription.
app-howto-ios-3 = Choose the profile and switch the VPN on; allow adding the VPN configuration when iOS asks.
app-howto-desktop-1 = Install Hiddify or Happ (Windows, macOS, Linux), or FoXray (macOS), from the app's site.
app-howto-desktop-2 = Click the app's button above, or copy the link and add it in the app as a new subscription from the clipboard.
app-howto-desktop-3 = Connect. On your phone, scan the QR code below with the app.
app-platform-android = Android
app-platform-ios = iPhone and iPad
app-platform-desktop = Computer

app-trial-title = Free trial
app-trial-text = { $n ->
    [one] Try the VPN free for { $n } day.
   *[other] Try the VPN free for { $n } days.
}
app-trial-submit = Start the free trial

app-payments-title = Payments
app-payments-none = No payments yet.
app-payment-days = { $n ->
    [one] { $n } day
   *[other] { $n } days
}

app-referral-title = Invite friends
app-referral-invitee = { $n ->
    [one] A friend who joins through your link gets { $n } bonus day.
   *[other] A friend who joins through your link gets { $n } bonus days.
}
app-referral-inviter = { $n ->
    [one] You get { $n } day when they first pay.
   *[other] You get { $n } days when they first pay.
}
app-referral-invited = Invited
app-referral-paid = Paid
app-referral-earned = Days earned
app-referral-off = The invitation link appears here once the shop's bot is running.

app-account-title = Account
app-account-email = Email
app-account-telegram = Telegram
app-account-linked = linked
app-account-not-linked = not linked
app-account-email-verified = signs you in
app-account-email-unverified = not confirmed: it does not sign you in
app-email-change-label = Change the sign-in email
app-email-add-label = An email to sign in without Telegram
app-email-change-submit = Send a link
app-email-change-hint = We mail a link to the address; it becomes your sign-in email when you open it.
app-done-email = Your email is confirmed: it now signs you in.
app-confirm-mail-subject = Confirm your email
app-confirm-mail-text = Open this link to make { $email } the sign-in email of your VPN cabinet:
    { $link }
    It works for 15 minutes, once. If you did not ask for it, ignore this mail.
app-confirm-title = Confirm your email
app-confirm-text = Press the button to make this address the sign-in email of your VPN account.
app-confirm-submit = Confirm
app-confirmed-title = Email confirmed
app-confirmed-text = You can now sign in to your VPN cabinet with this address.
app-confirm-taken-title = This email is taken
app-confirm-taken = Another account signs in with this address, so nothing was changed. Use another address, or write to support.

app-done-auto-renew-off = Auto-renewal is off. Your access lasts until its end date; renew by hand when you want.
app-account-auto-renew = Auto-renewal
app-account-auto-renew-on = on
app-account-auto-renew-off = off
app-account-auto-renew-turn-off = Turn auto-renewal off
app-account-other-language = Русский
app-account-other-language-code = ru

app-telegram-link = Link Telegram
app-telegram-title = Link your Telegram
app-telegram-text = { $n ->
    [one] Send this code to the shop's Telegram bot within { $n } minute:
   *[other] Send this code to the shop's Telegram bot within { $n } minutes:
}
app-telegram-open = Open the bot with this code
app-telegram-or = Or send the bot this message:
app-telegram-after = Once linked, the bot and this cabinet show the same subscription, and reminders come to Telegram as well. You keep signing in here with your email.

app-buy-title = Buy access
app-buy-renew = Renew or change plan
app-buy-plan = Plan
app-buy-promo = Promo code (if you have one)
app-buy-method = Payment method
app-buy-submit = Continue to payment
app-buy-stars-hint = Paid in Telegram: the price in Stars is on the next page.
app-buy-auto-renew = Renew automatically with this card
app-buy-auto-renew-hint = Only with a bank card (YooKassa): the card is saved and charged before the access ends. You can turn it off here at any time.
app-buy-off = Nothing can be bought here right now. Please try again later.
app-buy-choose-method = Choose a payment method.
app-buy-error-provider-off = This payment method is not available right now. Please choose another one.
app-buy-error-unknown-plan = This plan is no longer on sale. Please choose another one.
app-buy-error-banned = Your account is blocked. Please contact support.
app-buy-error-provider = The payment service is not answering. Please try again in a minute or choose another method.
app-buy-error-promo = Your promo code cannot be used for this order: { $reason }

app-order-title = Order
app-order-pay-text = Pay on the payment service's page; it brings you back here.
app-order-pay = Pay
app-order-waiting = Waiting for the payment to be confirmed.
app-order-reload = Check again
app-order-paid = Paid. Your access now lasts until
app-order-failed = This order was not paid. You can start a new one.
