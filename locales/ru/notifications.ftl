# Уведомления магазина (Telegram и email), русский.
# У каждого уведомления есть -subject (тема письма) и -body (HTML для Telegram: только <b>, <i>,
# <a href>, <code>). Переменные подставляет программа; их имена менять нельзя.
# Кнопки под сообщениями в Telegram — сообщения button-* в конце.

## Общее

link-line = Ваша ссылка на подписку: <code>{ $link }</code>
link-pending = Ссылка на подписку готовится: откройте /status через минуту.
days = { $days ->
    [one] { $days } день
    [few] { $days } дня
   *[many] { $days } дней
}
greeting = Здравствуйте, { $name }!

## Пробный период

trial_started-subject = Пробный период начался
trial_started-body = <b>Пробный период начался.</b>
    У вас { $days_text } доступа к VPN, до { $date }.

trial_ending-subject = Пробный период заканчивается завтра
trial_ending-body = <b>Пробный период заканчивается { $date }.</b>
    Выберите тариф, чтобы остаться на связи: /buy

link_ready-subject = Ссылка на подписку готова
link_ready-body = <b>Ваша подписка готова.</b>
    Добавьте её в VPN-приложение по ссылке (или отсканируйте QR-код в /status).

## Подписка

subscription_expiring-subject = Подписка на VPN закончится через { $days_text }
subscription_expiring-body = <b>Подписка закончится через { $days_text }</b>, { $date }.
    Продлите сейчас, чтобы не остаться без VPN (и без Telegram там, где он заблокирован): /buy

subscription_expired-subject = Подписка на VPN закончилась
subscription_expired-body = <b>Подписка закончилась { $date }.</b>
    Продлите, чтобы вернуть доступ, — ссылка останется прежней: /buy

traffic_threshold-subject = Использовано { $percent }% трафика
traffic_threshold-body = { $percent ->
    [100] <b>Трафик закончился</b>: { $used } из { $limit }. VPN приостановлен до следующего периода или продления: /buy
   *[other] <b>Использовано { $percent }% трафика</b>: { $used } из { $limit }.
}

## Платежи

payment_succeeded-subject = Оплата получена: { $plan }
payment_succeeded-body = <b>Спасибо! Оплата { $amount } получена.</b>
    Тариф: { $plan } ({ $days_text }). Подписка действует до { $date }.

payment_failed-subject = Оплата не прошла
payment_failed-body = <b>Оплата { $amount } за тариф «{ $plan }» не прошла.</b>
    Причина: { $reason }
    Попробуйте ещё раз: /buy

auto_renewal_succeeded-subject = Подписка продлена
auto_renewal_succeeded-body = <b>Подписка продлена автоматически</b> за { $amount }.
    Тариф: { $plan }. Действует до { $date }.

auto_renewal_failed-subject = Автопродление не удалось
auto_renewal_failed-body = <b>Не удалось продлить подписку автоматически</b> ({ $amount }).
    Причина: { $reason }
    Продлите вручную до окончания: /buy

failure-insufficient_funds = на карте недостаточно средств.
failure-card_expired = срок действия карты истёк.
failure-declined = банк отклонил платёж.
failure-canceled = платёж отменён или не завершён вовремя.
failure-permission_revoked = автоплатежи по этой карте отключены.
failure-three_d_secure = не пройдено подтверждение карты (3-D Secure).
failure-fraud_suspected = банк заподозрил мошенничество и заблокировал платёж.
failure-other = платёжная система отклонила платёж.

## Рефералы и промокоды

referral_joined-subject = Друг присоединился по вашей ссылке
referral_joined-body = <b>{ $friend } присоединился по вашей ссылке.</b>
    Когда он впервые оплатит подписку, вы получите { $days_text } бесплатно.

referral_welcome-subject = Вам начислено { $days_text } за приглашение
referral_welcome-body = <b>Вы пришли по приглашению друга — вам начислено { $days_text } бесплатно.</b>
    Подписка активна до { $date }.

referral_bonus-subject = Вы получили { $days_text } за друга
referral_bonus-body = <b>Ваш друг оплатил подписку — вам начислено { $days_text }.</b>
    Подписка действует до { $date }.

promo_applied-subject = Промокод применён
promo_applied-body = { $effect ->
    [days] <b>Промокод { $code } применён:</b> добавлено { $days_text }. Подписка действует до { $date }.
    [percent] <b>Промокод { $code } применён:</b> скидка { $percent }% на следующую оплату.
   *[amount] <b>Промокод { $code } применён:</b> скидка { $amount } на следующую оплату.
}

## Кнопки

button-menu = Меню
button-renew = Продлить
button-status = Моя подписка

# The subject of a broadcast mailed to a subscriber without Telegram.
broadcast-email-subject = Новости вашего VPN-магазина
