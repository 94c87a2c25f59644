# Обращения в поддержку (src/actors/bot/support.rs, src/actors/notifier/support.rs), русский.
# Telegram HTML: только <b>, <i>, <code>. Переменные подставляет программа.

## Подписчик

button-support = ✉️ Написать в поддержку
support-prompt = ✉️ <b>Написать в поддержку</b>
    Опишите проблему одним или несколькими сообщениями прямо здесь; можно приложить скриншоты (чек об оплате очень помогает). Команда магазина ответит в этом чате.
support-unavailable = Магазин не принимает вопросы в боте.
support-received = ✅ Сообщение передано команде магазина. Ответ придёт в этот чат; пока можно дописать подробности или приложить скриншоты.
support-answer = 💬 <b>Поддержка:</b>
    { $text }
support-closed = ✅ Обращение в поддержку закрыто. Если что-то ещё не так, просто напишите сюда снова.

## Команда

support-header = 💬 <b>#{ $id }</b> · { $user }:
support-card = 🆘 <b>Обращение #{ $id }</b>: новое
    <b>Пользователь:</b> { $user } (Telegram <code>{ $telegram_id }</code>, #{ $user_id })
    <b>Язык:</b> { $language }
    <b>Подписка:</b> { $subscription }
    <b>Последний платёж:</b> { $payment }
    <b>Admin API:</b> { $link }
    <i>Чтобы ответить, ответьте (reply) на любое сообщение обращения (в теме — просто напишите); /close закрывает его.</i>
support-card-none = нет
support-card-subscription = { $status ->
        [active] активна
        [expired] истекла
        [disabled] отключена
       *[other] { $status }
    } ({ $trial ->
        [trial] пробная
       *[other] оплаченная
    }), до { $date }
support-card-payment = заказ #{ $id }, { $amount } за «{ $plan }» через { $provider }, { $status ->
        [pending] ожидает оплаты
        [succeeded] оплачен
        [canceled] отменён
        [expired] истёк
        [refunded] возвращён
       *[other] { $status }
    }, { $date }
support-media-left-out = <i>{ $count ->
        [one] Ещё { $count } файл не скопирован
        [few] Ещё { $count } файла не скопированы
       *[other] Ещё { $count } файлов не скопированы
    } сюда (слишком много сразу): см. обращение #{ $id } в admin API.</i>
support-tickets = 📋 <b>Открытые обращения: { $count }</b>
    { $list }
    <i>/close &lt;номер&gt; закрывает обращение.</i>
support-tickets-line = #{ $id } · { $user } · { $state }{ $waiting } · сообщений: { $messages }
support-tickets-waiting = , ждёт с { $since }
support-state-open = ждёт ответа
support-state-answered = отвечено
support-tickets-none = Открытых обращений нет.
support-close-usage = Какое обращение? Ответьте /close на одно из его сообщений, напишите в его теме или отправьте /close &lt;номер&gt;.
support-closed-by-team = ✅ Обращение #{ $id } закрыто; подписчику сообщено.
support-not-open = Обращения #{ $id } нет или оно уже закрыто.
support-already-closed = Обращение #{ $id } закрыто: ответ не отправлен. Следующее сообщение подписчика откроет новое.
