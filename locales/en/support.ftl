# Support conversations (src/actors/bot/support.rs, src/actors/notifier/support.rs), English.
# Telegram HTML: <b>, <i>, <code> only. Variables are filled in by the program.

## The subscriber

button-support = ✉️ Write to support
support-prompt = ✉️ <b>Write to support</b>
    Describe the problem in one or more messages right here; screenshots are welcome (a payment receipt helps). The shop's team answers in this chat.
support-unavailable = The shop does not take questions in the bot.
support-received = ✅ Your message was passed on to the shop's team. The answer comes in this chat; you can add details or screenshots meanwhile.
support-answer = 💬 <b>Support:</b>
    { $text }
support-closed = ✅ Your conversation with support is closed. If something is still wrong, just write here again.

## The team

support-header = 💬 <b>#{ $id }</b> · { $user }:
support-card = 🆘 <b>Support #{ $id }</b>: a new conversation
    <b>User:</b> { $user } (Telegram <code>{ $telegram_id }</code>, #{ $user_id })
    <b>Language:</b> { $language }
    <b>Subscription:</b> { $subscription }
    <b>Last payment:</b> { $payment }
    <b>Admin API:</b> { $link }
    <i>Reply to a message of this conversation to answer (in a topic, just write); /close closes it.</i>
support-card-none = none
support-card-subscription = { $status } ({ $trial }), until { $date }
support-card-payment = order #{ $id }, { $amount } for { $plan } through { $provider }, { $status }, { $date }
support-media-left-out = <i>{ $count ->
        [one] One more file was
       *[other] { $count } more files were
    } not copied here (too many at once): see the conversation #{ $id } in the admin API.</i>
support-tickets = 📋 <b>Open support conversations: { $count }</b>
    { $list }
    <i>/close &lt;number&gt; closes one.</i>
support-tickets-line = #{ $id } · { $user } · { $state }{ $waiting } · { $messages ->
        [one] 1 message
       *[other] { $messages } messages
    }
support-tickets-waiting = , waiting since { $since }
support-state-open = open
support-state-answered = answered
support-tickets-none = No open support conversations.
support-close-usage = Which conversation? Reply /close to one of its messages, write it in its topic, or send /close &lt;number&gt;.
support-closed-by-team = ✅ Conversation #{ $id } closed; the subscriber was told.
support-not-open = Conversation #{ $id } does not exist or is already closed.
support-already-closed = Conversation #{ $id } is closed: the answer was not sent. The subscriber's next message opens a new one.
